/**
 * @llm-resilience/core: resilience policies for LLM provider calls, on Effect 4.
 *
 * @since 0.1.0
 */
export * as LlmError from "./LlmError.ts"
export * as LlmProvider from "./LlmProvider.ts"
export * as LlmRequest from "./LlmRequest.ts"
export * as LlmResponse from "./LlmResponse.ts"
export * as RateLimitSnapshot from "./RateLimitSnapshot.ts"
export * as Classification from "./Classification.ts"
export * as Timeouts from "./Timeouts.ts"
export * as Backoff from "./Backoff.ts"
export * as Retry from "./Retry.ts"
export * as RetryBudget from "./RetryBudget.ts"
export * as CircuitBreaker from "./CircuitBreaker.ts"
export * as PriceTable from "./PriceTable.ts"
export * as SpendGuard from "./SpendGuard.ts"
export * as FallbackPlan from "./FallbackPlan.ts"
export * as Hedge from "./Hedge.ts"

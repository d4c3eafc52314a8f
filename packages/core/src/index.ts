/**
 * @llm-resilience/core: resilience policies for LLM provider calls, on Effect 4.
 *
 * @since 0.1.0
 */

// the contracts: the provider interface, its request, response and errors
export * as LlmProvider from "./LlmProvider.ts"
export * as LlmRequest from "./LlmRequest.ts"
export * as LlmResponse from "./LlmResponse.ts"
export * as LlmError from "./LlmError.ts"
export * as Classification from "./Classification.ts"
export * as RateLimitSnapshot from "./RateLimitSnapshot.ts"

// the composed pipeline, the contract of its stages, and its telemetry
export * as Resilience from "./Resilience.ts"
export * as Stage from "./Stage.ts"
export * as Telemetry from "./Telemetry.ts"
export * as CallReport from "./CallReport.ts"
export * as Headroom from "./Headroom.ts"

// retries
export * as Backoff from "./Backoff.ts"
export * as Retry from "./Retry.ts"
export * as RetryBudget from "./RetryBudget.ts"

// admission control
export * as TokenEstimator from "./TokenEstimator.ts"
export * as Admission from "./Admission.ts"
export * as AdmissionStore from "./AdmissionStore.ts"
export * as AdmissionFallback from "./AdmissionFallback.ts"
export * as Bulkhead from "./Bulkhead.ts"

// breakers and guards
export * as CircuitBreaker from "./CircuitBreaker.ts"
export * as PriceTable from "./PriceTable.ts"
export * as SpendGuard from "./SpendGuard.ts"
export * as AgentGuard from "./AgentGuard.ts"
export * as QualityJudge from "./QualityJudge.ts"
export * as OutputMonitor from "./OutputMonitor.ts"
export * as QualityBreaker from "./QualityBreaker.ts"

// fallbacks, hedging, timeouts, validated output
export * as FallbackPlan from "./FallbackPlan.ts"
export * as DurableQueue from "./DurableQueue.ts"
export * as Hedge from "./Hedge.ts"
export * as Timeouts from "./Timeouts.ts"
export * as ValidatedOutput from "./ValidatedOutput.ts"

// adapters
export * as LanguageModelAdapter from "./LanguageModelAdapter.ts"

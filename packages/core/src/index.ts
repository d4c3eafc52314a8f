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

/**
 * What a provider said about its rate limits in one response's headers.
 *
 * Both header families map onto one shape: OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
 * (resets as Go durations such as `6m0s`) and Anthropic's
 * `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}` (resets as
 * RFC 3339 timestamps). All times are stored relative to the moment the response was observed, in
 * milliseconds, so the snapshot does not depend on the provider's clock.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * One limit window: the configured limit, what remains, and milliseconds until it resets.
 *
 * @since 0.1.0
 */
export const LimitWindow = Schema.Struct({
  limit: Schema.optional(Schema.Finite),
  remaining: Schema.optional(Schema.Finite),
  resetAfterMs: Schema.optional(Schema.Finite)
})

/**
 * @since 0.1.0
 */
export type LimitWindow = typeof LimitWindow.Type

/**
 * The rate-limit facts of one response.
 *
 * @example
 * ```ts
 * import type { RateLimitSnapshot } from "@llm-resilience/core"
 * const snapshot: RateLimitSnapshot.RateLimitSnapshot = {
 *   retryAfterMs: 2000,
 *   requests: { limit: 60, remaining: 0, resetAfterMs: 2000 }
 * }
 * ```
 * @since 0.1.0
 */
export const RateLimitSnapshot = Schema.Struct({
  /** From `retry-after-ms` or `retry-after` (seconds or HTTP date). */
  retryAfterMs: Schema.optional(Schema.Finite),
  /** From `x-should-retry`: the provider's own verdict, which overrides status-based classification. */
  shouldRetry: Schema.optional(Schema.Boolean),
  requests: Schema.optional(LimitWindow),
  tokens: Schema.optional(LimitWindow),
  inputTokens: Schema.optional(LimitWindow),
  outputTokens: Schema.optional(LimitWindow)
})

/**
 * @since 0.1.0
 */
export type RateLimitSnapshot = typeof RateLimitSnapshot.Type

/**
 * The errors a provider itself can produce: the transient ones a retry can cure and the fatal ones it cannot.
 * Each is a public class of `LlmError`, which re-exports this module (see `LlmError` for the whole union).
 *
 * @internal
 */
import { Schema } from "effect"
import type { LlmError } from "../LlmError.ts"
import { RateLimitSnapshot } from "../RateLimitSnapshot.ts"

const providerFields = {
  /** Human-readable detail, taken from the provider's error body where there is one. */
  message: Schema.String,
  provider: Schema.optional(Schema.String),
  model: Schema.optional(Schema.String),
  status: Schema.optional(Schema.Number),
  requestId: Schema.optional(Schema.String)
}

const retryHint = {
  /** How long the provider asked us to wait (`retry-after` / `retry-after-ms`), in milliseconds. */
  retryAfterMs: Schema.optional(Schema.Finite),
  rateLimit: Schema.optional(RateLimitSnapshot)
}

// ---------------------------------------------------------------------------------------------------------
// retryable
// ---------------------------------------------------------------------------------------------------------

/**
 * Which limit a 429 was about, when the provider said so.
 *
 * @since 0.1.0
 */
export const RateLimitKind = Schema.Literals(["requests", "tokens", "unknown"])

/**
 * @since 0.1.0
 */
export type RateLimitKind = typeof RateLimitKind.Type

/**
 * A transient 429: the request- or token-per-minute limit was hit. Retry after `retryAfterMs`.
 *
 * @example
 * ```ts
 * import { LlmError } from "@llm-resilience/core"
 * const e = new LlmError.RateLimited({ message: "slow down", limit: "tokens", retryAfterMs: 2000, status: 429 })
 * LlmError.isRetryable(e) // true
 * ```
 * @since 0.1.0
 */
export class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", {
  ...providerFields,
  ...retryHint,
  limit: RateLimitKind
}) {}

/**
 * The provider is overloaded (Anthropic 529 `overloaded_error`, or a 503).
 *
 * @since 0.1.0
 */
export class Overloaded extends Schema.TaggedError<Overloaded>()("Overloaded", {
  ...providerFields,
  ...retryHint
}) {}

/**
 * A 5xx (or an unrecognised failure that the provider marked retryable).
 *
 * @since 0.1.0
 */
export class ServerError extends Schema.TaggedError<ServerError>()("ServerError", {
  ...providerFields,
  ...retryHint
}) {}

/**
 * The phase in which a timeout fired: the whole call, the wait for the first streamed token, or the
 * silence between two chunks.
 *
 * @since 0.1.0
 */
export const TimeoutPhase = Schema.Literals(["total", "first-token", "idle"])

/**
 * @since 0.1.0
 */
export type TimeoutPhase = typeof TimeoutPhase.Type

/**
 * A timeout fired. `phase` says which one, `afterMs` how long it waited.
 *
 * @since 0.1.0
 */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  ...providerFields,
  phase: TimeoutPhase,
  afterMs: Schema.Finite
}) {}

/**
 * The connection failed or was reset before a complete response arrived.
 *
 * @since 0.1.0
 */
export class ConnectionError extends Schema.TaggedError<ConnectionError>()("ConnectionError", {
  ...providerFields
}) {}

/**
 * A stream ended before the model finished (neither a finish reason nor the end marker `[DONE]` /
 * `message_stop` arrived), or its connection was lost mid-way. `receivedChunks` text chunks had arrived.
 *
 * @since 0.1.0
 */
export class StreamTruncated extends Schema.TaggedError<StreamTruncated>()("StreamTruncated", {
  ...providerFields,
  receivedChunks: Schema.Finite
}) {}

// ---------------------------------------------------------------------------------------------------------
// fatal
// ---------------------------------------------------------------------------------------------------------

/**
 * The request is malformed (400, 413, 422 ...). Retrying the same request cannot help.
 *
 * @since 0.1.0
 */
export class BadRequest extends Schema.TaggedError<BadRequest>()("BadRequest", { ...providerFields }) {}

/**
 * The API key is missing or invalid (401).
 *
 * @since 0.1.0
 */
export class Authentication extends Schema.TaggedError<Authentication>()("Authentication", {
  ...providerFields
}) {}

/**
 * The key is valid but may not do this (403).
 *
 * @since 0.1.0
 */
export class PermissionDenied extends Schema.TaggedError<PermissionDenied>()("PermissionDenied", {
  ...providerFields
}) {}

/**
 * The model (or endpoint) does not exist for this key (404).
 *
 * @since 0.1.0
 */
export class ModelNotFound extends Schema.TaggedError<ModelNotFound>()("ModelNotFound", {
  ...providerFields
}) {}

/**
 * The prompt plus the output cap does not fit the model's context window. A fallback to a model with a
 * larger window can help; a retry cannot.
 *
 * @since 0.1.0
 */
export class ContextLengthExceeded extends Schema.TaggedError<ContextLengthExceeded>()("ContextLengthExceeded", {
  ...providerFields
}) {}

/**
 * The provider refused the content (prompt or output) on policy grounds.
 *
 * @since 0.1.0
 */
export class ContentFiltered extends Schema.TaggedError<ContentFiltered>()("ContentFiltered", {
  ...providerFields
}) {}

/**
 * A 429 that is not a rate limit: credits, spend limit or quota exhausted. Never retried; another
 * provider can help. `resetAt` (epoch ms) when the provider said when the quota comes back.
 *
 * @since 0.1.0
 */
export class QuotaExhausted extends Schema.TaggedError<QuotaExhausted>()("QuotaExhausted", {
  ...providerFields,
  resetAt: Schema.optional(Schema.Finite)
}) {}

/**
 * The errors a provider itself can produce.
 *
 * @since 0.1.0
 */
export const ProviderError = Schema.Union([
  RateLimited,
  Overloaded,
  ServerError,
  Timeout,
  ConnectionError,
  StreamTruncated,
  BadRequest,
  Authentication,
  PermissionDenied,
  ModelNotFound,
  ContextLengthExceeded,
  ContentFiltered,
  QuotaExhausted
])

/**
 * @since 0.1.0
 */
export type ProviderError = typeof ProviderError.Type

/**
 * The wait a provider asked for, if the error carries one.
 *
 * @example
 * ```ts
 * import { LlmError } from "@llm-resilience/core"
 * LlmError.retryAfterMs(new LlmError.RateLimited({ message: "", limit: "requests", retryAfterMs: 1500 })) // 1500
 * ```
 * @since 0.1.0
 */
export const retryAfterMs = (error: LlmError): number | undefined =>
  "retryAfterMs" in error ? error.retryAfterMs : undefined

/**
 * Whether an error is one a provider produced (as opposed to a toolkit rejection).
 *
 * @since 0.1.0
 */
export const isProviderError: (u: unknown) => u is ProviderError = Schema.is(ProviderError)

/**
 * The provider error behind a failure: the error itself when a provider produced it, else the one the
 * toolkit gave up after. It follows `lastError` through `RetryBudgetExhausted`,
 * `RetryAfterTooLong`, `DeadlineExceeded` and `AcceptedForLater` (a fallback plan that ran
 * out of model steps). A plan that runs out of steps fails with its last step's error, so the same call
 * covers it. `undefined` when no provider was reached: an open circuit, an admission or spend refusal, a
 * deadline that passed before the first answer.
 *
 * @example
 * ```ts
 * import { LlmError } from "@llm-resilience/core"
 * const overloaded = new LlmError.Overloaded({ message: "overloaded", provider: "anthropic", status: 529 })
 * const refused = new LlmError.RetryBudgetExhausted({ key: "anthropic/claude-sonnet-4-6", lastError: overloaded })
 * LlmError.rootCause(refused)?.status // 529
 * LlmError.rootCause(new LlmError.CircuitOpen({ key: "k", retryAfterMs: 500 })) // undefined
 * ```
 * @since 0.1.0
 */
export const rootCause = (error: LlmError): ProviderError | undefined => {
  let current: LlmError | undefined = error
  while (current !== undefined) {
    if (isProviderError(current)) return current
    current = "lastError" in current ? current.lastError : undefined
  }
  return undefined
}

/**
 * Everything a call through the toolkit can fail with, as one tagged union split by what the caller
 * should do about it.
 *
 * - Retryable provider errors: {@link RateLimited}, {@link Overloaded}, {@link ServerError},
 *   {@link Timeout}, {@link ConnectionError}, {@link StreamTruncated}.
 * - Fatal provider errors: {@link BadRequest}, {@link Authentication}, {@link PermissionDenied},
 *   {@link ModelNotFound}, {@link ContextLengthExceeded}, {@link ContentFiltered}, {@link QuotaExhausted}.
 * - Rejections by the toolkit itself: {@link CircuitOpen}, {@link AdmissionRejected},
 *   {@link RetryBudgetExhausted}, {@link RetryAfterTooLong}, {@link DeadlineExceeded},
 *   {@link BudgetExceeded}, {@link TurnLimitExceeded}, {@link LoopDetected}, {@link OutputInvalid}, and the
 *   degraded outcome {@link AcceptedForLater} (queued, not answered).
 *
 * Retryability is derived from the kind ({@link isRetryable}), never stored, so no error can claim to
 * be retryable by accident. Every provider error carries the provider, model, HTTP status and provider
 * request id where they are known; {@link rootCause} finds the provider error behind a give-up.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { ProviderError } from "./internal/providerErrors.ts"

export {
  /** @since 0.1.0 */
  Authentication,
  /** @since 0.1.0 */
  BadRequest,
  /** @since 0.1.0 */
  ConnectionError,
  /** @since 0.1.0 */
  ContentFiltered,
  /** @since 0.1.0 */
  ContextLengthExceeded,
  /** @since 0.1.0 */
  ModelNotFound,
  /** @since 0.1.0 */
  Overloaded,
  /** @since 0.1.0 */
  PermissionDenied,
  /** @since 0.1.0 */
  isProviderError,
  /** @since 0.1.0 */
  ProviderError,
  /** @since 0.1.0 */
  QuotaExhausted,
  /** @since 0.1.0 */
  RateLimited,
  /** @since 0.1.0 */
  RateLimitKind,
  /** @since 0.1.0 */
  retryAfterMs,
  /** @since 0.1.0 */
  rootCause,
  /** @since 0.1.0 */
  ServerError,
  /** @since 0.1.0 */
  StreamTruncated,
  /** @since 0.1.0 */
  Timeout,
  /** @since 0.1.0 */
  TimeoutPhase
} from "./internal/providerErrors.ts"

// ---------------------------------------------------------------------------------------------------------
// rejections by the toolkit
// ---------------------------------------------------------------------------------------------------------

/**
 * The circuit for `key` is open: the call was rejected without reaching the provider.
 *
 * @since 0.1.0
 */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>()("CircuitOpen", {
  key: Schema.String,
  retryAfterMs: Schema.Finite
}) {
  override get message(): string {
    return `circuit ${this.key} is open; retry after ${Math.round(this.retryAfterMs)} ms`
  }
}

/**
 * Why admission control turned a request away.
 *
 * - `queue-full`: the wait queue for the key is at its bound.
 * - `wait-too-long`: the request waited its path's maximum without being admitted.
 * - `never-admissible`: its token estimate exceeds the whole per-minute budget.
 * - `concurrency-queue-full`: the bulkhead's own queue is at its bound.
 *
 * @since 0.1.0
 */
export const AdmissionRejectionReason = Schema.Literals([
  "queue-full",
  "wait-too-long",
  "never-admissible",
  "concurrency-queue-full"
])

/**
 * @since 0.1.0
 */
export type AdmissionRejectionReason = typeof AdmissionRejectionReason.Type

/**
 * Admission control rejected the request before it reached the provider.
 *
 * @since 0.1.0
 */
export class AdmissionRejected extends Schema.TaggedError<AdmissionRejected>()("AdmissionRejected", {
  key: Schema.String,
  reason: AdmissionRejectionReason,
  retryAfterMs: Schema.optional(Schema.Finite)
}) {
  override get message(): string {
    return `admission for ${this.key} rejected: ${this.reason}`
  }
}

/**
 * An error that ended a call after retries: a provider error or a fail-fast rejection.
 *
 * @since 0.1.0
 */
export const AttemptError = Schema.Union([ProviderError, CircuitOpen, AdmissionRejected])

/**
 * @since 0.1.0
 */
export type AttemptError = typeof AttemptError.Type

/**
 * The shared retry budget for `key` is spent: the retry was refused and `lastError` surfaced at once.
 *
 * @since 0.1.0
 */
export class RetryBudgetExhausted extends Schema.TaggedError<RetryBudgetExhausted>()("RetryBudgetExhausted", {
  key: Schema.String,
  lastError: AttemptError
}) {
  override get message(): string {
    return `retry budget for ${this.key} exhausted after: ${this.lastError._tag}`
  }
}

/**
 * The provider asked for a wait longer than `maxRetryAfterMs`: we stop waiting on it now, so that a
 * fallback can act, instead of sleeping.
 *
 * @since 0.1.0
 */
export class RetryAfterTooLong extends Schema.TaggedError<RetryAfterTooLong>()("RetryAfterTooLong", {
  retryAfterMs: Schema.Finite,
  maxRetryAfterMs: Schema.Finite,
  lastError: AttemptError
}) {
  override get message(): string {
    return `provider asked to wait ${this.retryAfterMs} ms, above the maximum of ${this.maxRetryAfterMs} ms`
  }
}

/**
 * The call's total time budget would be crossed by the next wait (or was crossed).
 *
 * @since 0.1.0
 */
export class DeadlineExceeded extends Schema.TaggedError<DeadlineExceeded>()("DeadlineExceeded", {
  deadlineMs: Schema.Finite,
  lastError: Schema.optional(AttemptError)
}) {
  override get message(): string {
    return `deadline of ${this.deadlineMs} ms exceeded${this.lastError ? ` after ${this.lastError._tag}` : ""}`
  }
}

/**
 * A spend budget is used up. `scope` names it (e.g. `key:openai/gpt-5.4`, `tenant:acme`,
 * `conversation:c1`).
 *
 * @since 0.1.0
 */
export class BudgetExceeded extends Schema.TaggedError<BudgetExceeded>()("BudgetExceeded", {
  scope: Schema.String,
  spentUsd: Schema.Finite,
  limitUsd: Schema.Finite,
  retryAfterMs: Schema.optional(Schema.Finite)
}) {
  override get message(): string {
    return `spend budget ${this.scope} exceeded: $${this.spentUsd.toFixed(4)} of $${this.limitUsd.toFixed(4)}`
  }
}

/**
 * A conversation used more turns than allowed.
 *
 * @since 0.1.0
 */
export class TurnLimitExceeded extends Schema.TaggedError<TurnLimitExceeded>()("TurnLimitExceeded", {
  conversationId: Schema.String,
  turns: Schema.Finite,
  limit: Schema.Finite
}) {
  override get message(): string {
    return `conversation ${this.conversationId} reached turn ${this.turns}, limit ${this.limit}`
  }
}

/**
 * The same request was repeated `repeats` times within the detector's window: an agent stuck in a loop.
 *
 * @since 0.1.0
 */
export class LoopDetected extends Schema.TaggedError<LoopDetected>()("LoopDetected", {
  conversationId: Schema.optional(Schema.String),
  repeats: Schema.Finite
}) {
  override get message(): string {
    return `the same request was repeated ${this.repeats} times`
  }
}

/**
 * The response did not match the request's output schema (after any repair attempt).
 *
 * @since 0.1.0
 */
export class OutputInvalid extends Schema.TaggedError<OutputInvalid>()("OutputInvalid", {
  issue: Schema.String,
  text: Schema.String
}) {
  override get message(): string {
    return `output failed validation: ${this.issue}`
  }
}

/**
 * A stream that carried on after a failure by restarting its answer (see `Resilience.Config`'s
 * `midStream: "continue"`) got a different answer from the one already delivered: it ends here rather than
 * splice two answers. `delivered` is the text the caller has received; `lastError`, the failure that made
 * it restart.
 *
 * @example
 * ```ts
 * import { LlmError } from "@llm-resilience/core"
 * const e = new LlmError.StreamDiverged({ delivered: "The answer is", model: "gpt-5.4-mini" })
 * e.delivered // "The answer is"
 * ```
 * @since 0.1.0
 */
export class StreamDiverged extends Schema.TaggedError<StreamDiverged>()("StreamDiverged", {
  delivered: Schema.String,
  provider: Schema.optional(Schema.String),
  model: Schema.optional(Schema.String),
  lastError: Schema.optional(ProviderError)
}) {
  override get message(): string {
    return `the restarted stream diverged from the ${this.delivered.length} characters already delivered`
  }
}

/**
 * Every error a call can fail with before it is accepted for later: the errors a fallback step moves on
 * after, and the ones it returns as they are.
 *
 * @since 0.1.0
 */
export const StepError = Schema.Union([
  ProviderError,
  CircuitOpen,
  AdmissionRejected,
  RetryBudgetExhausted,
  RetryAfterTooLong,
  DeadlineExceeded,
  BudgetExceeded,
  TurnLimitExceeded,
  LoopDetected,
  OutputInvalid,
  StreamDiverged
])

/**
 * @since 0.1.0
 */
export type StepError = typeof StepError.Type

/**
 * The plan's answer when it ended in the accept-for-later step: the request is queued, not answered,
 * the analogue of an HTTP 202.
 * `from` and `reason` say which step failed, and how, before the request was accepted; `lastError` is that
 * step's error ({@link rootCause} finds the provider error behind it).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { LlmError } from "@llm-resilience/core"
 *
 * const reply = (answer: Effect.Effect<string, LlmError.AcceptedForLater>) =>
 *   answer.pipe(Effect.catchTag("AcceptedForLater", (a) => Effect.succeed(`We'll get back to you (${a.ticketId})`)))
 * ```
 * @since 0.1.0
 */
export class AcceptedForLater extends Schema.TaggedError<AcceptedForLater>()("AcceptedForLater", {
  ticketId: Schema.String,
  acceptedAt: Schema.Finite,
  from: Schema.String,
  reason: Schema.String,
  lastError: Schema.optional(StepError)
}) {
  override get message(): string {
    return `request accepted for later as ${this.ticketId} after ${this.from} failed with ${this.reason}`
  }
}

/**
 * Every error a call through the toolkit can fail with.
 *
 * @since 0.1.0
 */
export const LlmError = Schema.Union([...StepError.members, AcceptedForLater])

/**
 * @since 0.1.0
 */
export type LlmError = typeof LlmError.Type

/**
 * The error tags that retrying the same request against the same provider can cure: the transient
 * provider errors. {@link isRetryable} reads this set.
 *
 * @example
 * ```ts
 * import { LlmError } from "@llm-resilience/core"
 * LlmError.retryableTags.includes("Overloaded") // true
 * ```
 * @since 0.1.0
 */
export const retryableTags: ReadonlyArray<LlmError["_tag"]> = [
  "RateLimited",
  "Overloaded",
  "ServerError",
  "Timeout",
  "ConnectionError",
  "StreamTruncated"
]

/**
 * The error tags a circuit breaker counts as failures by default: the provider is unhealthy. A 429 is not
 * one (admission control reacts to it); fatal client errors are answers (the provider is up).
 *
 * @example
 * ```ts
 * import { LlmError } from "@llm-resilience/core"
 * LlmError.breakerFailureTags.includes("Timeout") // true
 * ```
 * @since 0.1.0
 */
export const breakerFailureTags: ReadonlyArray<LlmError["_tag"]> = [
  "Timeout",
  "ServerError",
  "Overloaded",
  "ConnectionError",
  "StreamTruncated"
]

/**
 * The toolkit's own rejections: the call never reached the provider, so they say nothing about its
 * health (a breaker ignores them).
 *
 * @example
 * ```ts
 * import { LlmError } from "@llm-resilience/core"
 * LlmError.rejectionTags.includes("CircuitOpen") // true
 * ```
 * @since 0.1.0
 */
export const rejectionTags: ReadonlyArray<LlmError["_tag"]> = [
  "CircuitOpen",
  "AdmissionRejected",
  "RetryBudgetExhausted",
  "RetryAfterTooLong",
  "DeadlineExceeded",
  "BudgetExceeded",
  "TurnLimitExceeded",
  "LoopDetected"
]

/**
 * The errors after which a fallback plan moves on to its next step by default: every retryable error,
 * the toolkit's rejections of this step (not the caller's budgets or turn limits), invalid output, a
 * context window too small, an exhausted quota. `BadRequest`, `Authentication`, `PermissionDenied`,
 * `ModelNotFound`, `ContentFiltered`, `BudgetExceeded`, `TurnLimitExceeded` and `LoopDetected` do not.
 *
 * @example
 * ```ts
 * import { LlmError } from "@llm-resilience/core"
 * LlmError.fallbackTags.includes("CircuitOpen") // true
 * ```
 * @since 0.1.0
 */
export const fallbackTags: ReadonlyArray<LlmError["_tag"]> = [
  ...retryableTags,
  "CircuitOpen",
  "AdmissionRejected",
  "RetryBudgetExhausted",
  "RetryAfterTooLong",
  "DeadlineExceeded",
  "OutputInvalid",
  "ContextLengthExceeded",
  "QuotaExhausted"
]

const retryable: ReadonlySet<string> = new Set(retryableTags)

/**
 * Whether retrying the same request against the same provider can succeed. True only for the transient
 * provider errors; fatal errors and the toolkit's own rejections are never retried.
 *
 * @example
 * ```ts
 * import { LlmError } from "@llm-resilience/core"
 * LlmError.isRetryable(new LlmError.QuotaExhausted({ message: "insufficient_quota", status: 429 })) // false
 * LlmError.isRetryable(new LlmError.Overloaded({ message: "overloaded", status: 529 })) // true
 * ```
 * @since 0.1.0
 */
export const isRetryable = (error: { readonly _tag: string }): boolean => retryable.has(error._tag)

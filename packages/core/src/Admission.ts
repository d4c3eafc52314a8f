/**
 * Admission control: requests-per-minute and tokens-per-minute limits per key (`provider/model`), a priority
 * queue for what does not fit yet, and an optional concurrency cap.
 *
 * A call is admitted only when every budget of its key allows it: requests, tokens (input estimate plus the
 * output cap) and, where configured, separate input- and output-token budgets. The check and the
 * reservation are one atomic {@link AdmissionStore} operation. After the call the reservation is reconciled
 * with the usage the provider reported; a call the provider never saw (a toolkit rejection, an interruption
 * before the provider was called) is refunded in full, and every refund admits waiting calls at once. A call
 * that reached the provider keeps its estimate when nothing reports its usage (a provider error, a timeout,
 * an interruption or a defect once it was sent): the provider counted it.
 *
 * What does not fit waits in a queue:
 * - order: `interactive` before `background`, FIFO within a priority; a background waiter that has waited
 *   `agingMs` ranks with interactive ones by arrival time (no starvation of background work);
 * - head-of-line reservation: when the head cannot fit, nothing behind it may take budget that the head
 *   needs at the earliest time it can fit (computed from the reservation log). Smaller requests behind it
 *   may only backfill from the slack left over at that time (scanning at most `backfillScan` waiters), so a
 *   large request is never starved by small ones: each backfill provably leaves its admission time unchanged;
 * - bounds: `maxQueueLength` per key (`queue-full`), `maxWaitMs` per path (`wait-too-long`), each with a
 *   `retryAfterMs` hint; a request whose estimate exceeds a whole per-window budget fails at once
 *   (`never-admissible`).
 *
 * Waiting is driven by `Clock`: one timer per key sleeps until the earliest moment the window frees enough
 * for the head, or the earliest waiter deadline, whichever comes first. There is no polling. With budget
 * available and an empty queue the reservation is synchronous: no fiber, no `Deferred`, no timer.
 *
 * Provider feedback corrects the local view: a response's {@link RateLimitSnapshot} moves the budget toward
 * the provider's `remaining` until its reset (never above the configured limit), and a 429 that names
 * requests or tokens drains that budget until its reset.
 *
 * Metrics (attribute `key`): `llm_admission_admitted`, `llm_admission_rejected` (attribute `reason`),
 * `llm_admission_queue_depth`, `llm_admission_wait_ms`, `llm_admission_tokens_reserved`,
 * `llm_admission_tokens_actual`.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Schema, Stream } from "effect"
import * as AdmissionStore from "./AdmissionStore.ts"
import * as internal from "./internal/admission.ts"
import { millis } from "./internal/duration.ts"
import type { AdmissionRejected } from "./LlmError.ts"
import type { LlmProvider } from "./LlmProvider.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse, StreamChunk, Usage } from "./LlmResponse.ts"
import type { RateLimitSnapshot } from "./RateLimitSnapshot.ts"
import type { Stage } from "./Stage.ts"

// ---------------------------------------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------------------------------------

const Positive = Schema.Finite.check(Schema.isGreaterThan(0))
/** A token budget below one token per window would admit no request at all. */
const TokenLimit = Schema.Finite.check(
  Schema.isGreaterThanOrEqualTo(1, {
    message: "a token budget below 1 per window admits no request: give at least 1, or leave it out (no limit)"
  })
)
const NonNegative = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * The limits of one key. A budget left out is not limited.
 *
 * @since 0.1.0
 */
export const KeyLimits = Schema.Struct({
  requestsPerMinute: Schema.optional(PositiveInt),
  /** Input plus output tokens (OpenAI's TPM, Anthropic's combined limit). */
  tokensPerMinute: Schema.optional(TokenLimit),
  /** Anthropic's ITPM. */
  inputTokensPerMinute: Schema.optional(TokenLimit),
  /** Anthropic's OTPM, charged with the output cap and reconciled with real output. */
  outputTokensPerMinute: Schema.optional(TokenLimit),
  /** Concurrency cap (bulkhead) for the key. */
  maxConcurrency: Schema.optional(PositiveInt),
  /** Waiters allowed in the bulkhead's own queue. Default 1000. */
  maxConcurrencyQueue: Schema.optional(NonNegativeInt),
  /** Limit groups (names in `limitGroups`) the key also draws on: a call must fit the key and each group. */
  groups: Schema.optional(Schema.Array(Schema.NonEmptyString))
})

/**
 * @since 0.1.0
 */
export type KeyLimits = typeof KeyLimits.Type

/**
 * The limits of a limit group: a budget several keys share (a regional quota over several deployments).
 *
 * @since 0.1.0
 */
export const GroupLimits = Schema.Struct({
  requestsPerMinute: Schema.optional(PositiveInt),
  tokensPerMinute: Schema.optional(TokenLimit),
  inputTokensPerMinute: Schema.optional(TokenLimit),
  outputTokensPerMinute: Schema.optional(TokenLimit)
})

/**
 * @since 0.1.0
 */
export type GroupLimits = typeof GroupLimits.Type

/** Every group a key names must be declared. */
const knownGroups = Schema.makeFilter(
  (o: {
    readonly keys?: Readonly<Record<string, KeyLimits>> | undefined
    readonly defaults?: KeyLimits | undefined
    readonly limitGroups?: Readonly<Record<string, GroupLimits>> | undefined
  }) => {
    const declared = o.limitGroups ?? {}
    const entries: Array<[Array<string>, KeyLimits]> = Object.entries(o.keys ?? {}).map(([k, l]) => [["keys", k], l])
    if (o.defaults !== undefined) entries.push([["defaults"], o.defaults])
    for (const [path, l] of entries) {
      const i = (l.groups ?? []).findIndex((g) => !Object.hasOwn(declared, g))
      if (i >= 0) {
        return {
          path: [...path, "groups", i],
          issue: `no limit group named ${l.groups![i]} (declare it in limitGroups)`
        }
      }
    }
    return true
  }
)

/**
 * Admission options. Every field is optional except that a key needs limits to be controlled: a key with
 * neither an entry in `keys` nor `defaults` passes through untouched.
 *
 * @since 0.1.0
 */
export const AdmissionOptions = Schema.Struct({
  /** Limits per key (`provider/model`). */
  keys: Schema.optional(Schema.Record(Schema.String, KeyLimits)),
  /** Limits for keys not listed in `keys`. Default: none (unlisted keys pass through). */
  defaults: Schema.optional(KeyLimits),
  /** Limit groups by name, which keys join with their `groups`. */
  limitGroups: Schema.optional(Schema.Record(Schema.String, GroupLimits)),
  /** Length of the rate window; the `...PerMinute` limits apply per window. Default 60000 (one minute). */
  windowMs: Schema.optional(Positive),
  /** Waiters allowed per key before `queue-full`. Default 10000. */
  maxQueueLength: Schema.optional(NonNegativeInt),
  /** Longest wait before `wait-too-long`. Default 60000. */
  maxWaitMs: Schema.optional(NonNegative),
  /** Per-path overrides of `maxWaitMs`, keyed by `request.metadata.path`. */
  paths: Schema.optional(Schema.Record(Schema.String, Schema.Struct({ maxWaitMs: NonNegative }))),
  /** A background waiter older than this ranks with interactive ones by arrival. Default 30000. */
  agingMs: Schema.optional(NonNegative),
  /** Waiters behind a blocked head examined for backfill. Default 16; 0 = strict head-of-line. */
  backfillScan: Schema.optional(NonNegativeInt)
}).check(knownGroups)

/**
 * @since 0.1.0
 */
export type AdmissionOptions = typeof AdmissionOptions.Type

// ---------------------------------------------------------------------------------------------------------
// service
// ---------------------------------------------------------------------------------------------------------

/**
 * What admission knows about one key right now.
 *
 * @since 0.1.0
 */
export interface AdmissionStats {
  readonly key: string
  /** Calls waiting for rate budget. */
  readonly queued: number
  /** Calls waiting for a concurrency permit. */
  readonly concurrencyQueued: number
  /** Free concurrency permits (`Infinity` without a cap). */
  readonly availablePermits: number
  /** Reserved in the current window. */
  readonly reserved: AdmissionStore.Cost
}

/**
 * How a finished call settles its reservation: the usage the provider reported, or `undefined` to keep
 * the estimate. The snapshot, when present, corrects the local budget.
 *
 * @since 0.1.0
 */
export interface Settlement {
  readonly usage?: Usage | undefined
  readonly rateLimit?: RateLimitSnapshot | undefined
}

/**
 * @since 0.1.0
 */
export interface AdmissionShape {
  /**
   * Reserves for `request` under `key`, runs `self`, then settles: with `settle(a)` on success, in full
   * (refund) on a failure that is not a provider error, keeping the estimate on a provider error (reading
   * any 429 or snapshot), on an interruption or a defect (`self` counts as the provider call).
   */
  readonly run: <A, E, R>(
    request: LlmRequest,
    key: string,
    self: Effect.Effect<A, E, R>,
    settle: (a: A) => Settlement
  ) => Effect.Effect<A, E | AdmissionRejected, R>
  /** Like `run` for a stream: settles from the `Finish` chunk's usage, holds any permit until the end. */
  readonly runStream: <E, R>(
    request: LlmRequest,
    key: string,
    self: Stream.Stream<StreamChunk, E, R>
  ) => Stream.Stream<StreamChunk, E | AdmissionRejected, R>
  /** Applies a response's rate-limit snapshot to `key`. */
  readonly observe: (key: string, snapshot: RateLimitSnapshot) => Effect.Effect<void>
  /** Applies what a failure says about `key`'s limits (a 429 drains the budget it names). */
  readonly observeError: (key: string, error: unknown) => Effect.Effect<void>
  readonly stats: (key: string) => Effect.Effect<AdmissionStats>
  /**
   * Admission as a stage ({@link Stage.Stage}): reserves for the attempt's request under its key (at once
   * when nobody waits and the budget allows, else through the queue), then settles with the response's
   * usage. `run` is this stage run alone.
   */
  readonly stage: Stage<unknown>
}

/**
 * The admission service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Admission } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const admission = yield* Admission.Admission
 *   return yield* admission.stats("openai/gpt-5.4-mini")
 * }).pipe(Effect.provide(Admission.layerMemory({ defaults: { requestsPerMinute: 500, tokensPerMinute: 200_000 } })))
 * ```
 * @since 0.1.0
 */
export class Admission extends Context.Service<Admission, AdmissionShape>()("@llm-resilience/core/Admission") {}

/**
 * The key admission uses for a provider and model.
 *
 * @example
 * ```ts
 * import { Admission } from "@llm-resilience/core"
 * Admission.key("openai", "gpt-5.4-mini") // "openai/gpt-5.4-mini"
 * ```
 * @since 0.1.0
 */
export const key = (provider: string, model: string): string => `${provider}/${model}`

// ---------------------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------------------
// implementation (internal/admission.ts)
// ---------------------------------------------------------------------------------------------------------

/**
 * The metrics admission records, each with a `key` attribute (and `reason` for rejections). Read them with
 * `Metric.value(Metric.withAttributes(metric, { key }))` or export them with `PrometheusMetrics`.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { Admission } from "@llm-resilience/core"
 * const depth = Metric.value(Metric.withAttributes(Admission.metrics.queueDepth, { key: "openai/gpt-5.4" }))
 * ```
 * @since 0.1.0
 */
export const metrics = internal.metrics

/**
 * The `admission` section of `Resilience.Config`: the queue bounds of {@link AdmissionOptions}, durations in
 * milliseconds or as duration strings such as `"2 minutes"`. The limits themselves are set per key in the
 * configuration's `models`.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Admission } from "@llm-resilience/core"
 * const section = Schema.decodeUnknownSync(Admission.Config)({ maxQueueLength: 500, maxWaitMs: "30 seconds" })
 * ```
 * @since 0.1.0
 */
export const Config = Schema.Struct({
  maxQueueLength: AdmissionOptions.fields.maxQueueLength,
  maxWaitMs: Schema.optional(millis(NonNegative)),
  agingMs: Schema.optional(millis(NonNegative)),
  /** The rate window of every `...PerMinute` limit. Default one minute; shorter only for drills and tests. */
  windowMs: Schema.optional(millis(Positive))
})

/**
 * Builds the admission service. Needs an {@link AdmissionStore.AdmissionStore} and a `Scope` (for the
 * per-key wake-up timers); fails with a `SchemaError` naming the field when the options are invalid.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Admission, AdmissionStore } from "@llm-resilience/core"
 * const admission = Admission.make({ defaults: { requestsPerMinute: 60 } }).pipe(
 *   Effect.provide(AdmissionStore.layerMemory),
 *   Effect.scoped
 * )
 * ```
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (options: AdmissionOptions) {
  const opts = yield* Schema.decodeUnknownEffect(AdmissionOptions)(options)
  const store = yield* AdmissionStore.AdmissionStore
  const { admission, reexamine } = internal.make(opts, store, yield* Effect.scope)
  // a store that switches between shared and local answers: waiters parked on the old answers look again
  if (store.onSwitch !== undefined) yield* store.onSwitch(reexamine)
  return Admission.of(admission)
})

/**
 * The admission layer over a given store.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Admission, AdmissionStore } from "@llm-resilience/core"
 * const AdmissionLive = Admission.layer({
 *   keys: { "anthropic/claude-sonnet-4-6": { requestsPerMinute: 50, inputTokensPerMinute: 30_000, outputTokensPerMinute: 8_000 } }
 * }).pipe(Layer.provide(AdmissionStore.layerMemory))
 * ```
 * @since 0.1.0
 */
export const layer = (
  options: AdmissionOptions
): Layer.Layer<Admission, Schema.SchemaError, AdmissionStore.AdmissionStore> => Layer.effect(Admission, make(options))

/**
 * The admission layer with its own in-memory store.
 *
 * @example
 * ```ts
 * import { Admission } from "@llm-resilience/core"
 * const AdmissionLive = Admission.layerMemory({ defaults: { requestsPerMinute: 500, tokensPerMinute: 200_000 } })
 * ```
 * @since 0.1.0
 */
export const layerMemory = (options: AdmissionOptions): Layer.Layer<Admission, Schema.SchemaError> =>
  layer(options).pipe(Layer.provide(AdmissionStore.layerMemory))

// ---------------------------------------------------------------------------------------------------------
// pipeable stages
// ---------------------------------------------------------------------------------------------------------

/**
 * Runs a completion under admission for `key`: waits for (or is refused) budget, runs the call, then
 * reconciles the reservation with `response.usage` and applies `response.rateLimit`.
 *
 * @example
 * ```ts
 * import { Effect, pipe } from "effect"
 * import { Admission, LlmProvider } from "@llm-resilience/core"
 *
 * const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }], maxOutputTokens: 64 }
 * const program = Effect.gen(function*() {
 *   const llm = yield* LlmProvider.LlmProvider
 *   return yield* pipe(llm.complete(request), Admission.admit(request, "openai/gpt-5.4-mini"))
 * })
 * ```
 * @since 0.1.0
 */
export const admit =
  (request: LlmRequest, key: string) =>
  <E, R>(self: Effect.Effect<LlmResponse, E, R>): Effect.Effect<LlmResponse, E | AdmissionRejected, R | Admission> =>
    Effect.flatMap(Admission, (a) => a.run(request, key, self, internal.settleResponse))

/**
 * Runs a stream under admission for `key`; the reservation is reconciled from the `Finish` chunk's usage.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Admission, LlmProvider } from "@llm-resilience/core"
 *
 * const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }
 * const chunks = Stream.unwrap(Effect.map(LlmProvider.LlmProvider, (llm) => llm.stream(request))).pipe(
 *   Admission.admitStream(request, "openai/gpt-5.4-mini")
 * )
 * ```
 * @since 0.1.0
 */
export const admitStream =
  (request: LlmRequest, key: string) =>
  <E, R>(self: Stream.Stream<StreamChunk, E, R>): Stream.Stream<StreamChunk, E | AdmissionRejected, R | Admission> =>
    Stream.unwrap(Effect.map(Admission, (a) => a.runStream(request, key, self)))

/**
 * Wraps a provider so that every call goes through admission under `provider.name/request.model`.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Admission, LlmProvider } from "@llm-resilience/core"
 *
 * const Admitted = Layer.effect(
 *   LlmProvider.LlmProvider,
 *   Effect.flatMap(LlmProvider.LlmProvider, Admission.wrapProvider)
 * )
 * ```
 * @since 0.1.0
 */
export const wrapProvider = (
  provider: LlmProvider["Service"]
): Effect.Effect<LlmProvider["Service"], never, Admission> =>
  Effect.map(Admission, (a) => ({
    name: provider.name,
    complete: (request) =>
      a.run(request, key(provider.name, request.model), provider.complete(request), internal.settleResponse),
    stream: (request) => a.runStream(request, key(provider.name, request.model), provider.stream(request))
  }))

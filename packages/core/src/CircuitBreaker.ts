/**
 * Keyed circuit breakers for LLM calls: one circuit per `provider/model`, Closed / Open / HalfOpen.
 *
 * - Trips on consecutive failures, on the failure rate or the slow-call rate over a rolling window (a call
 *   still running past the slow-call threshold counts as slow from that moment, so a hang opens the circuit
 *   seconds after it starts). Which errors count is data (`failureTags`); 429s, the toolkit's own rejections
 *   and interruptions do not count.
 * - Open lasts a fixed `openDuration`, or a `Schedule`'s n-th delay capped at `maxOpenDuration` (default:
 *   from 10 s, doubling, at most 30 s), lengthened by a provider's Retry-After (up to `maxRetryAfter`).
 * - HalfOpen admits `halfOpenProbes` probes; all must succeed to close, one failure reopens; a probe that
 *   outlives `probeTimeout` is released and the circuit reopens.
 * - A rejection is {@link LlmError.CircuitOpen} with a `retryAfterMs`. `status` / `check` read a circuit,
 *   `transitions` streams every transition; `isolate`, `forceClosed`, `reset` are manual controls;
 *   `mode: "metrics-only"` never rejects.
 *
 * State is kept in process memory, or shared between instances through a {@link Store}. How it compares
 * with Effect's `effect/persistence` breaker: docs/breakers.md.
 *
 * @since 0.1.0
 */
import { Context, type Duration, Effect, type Exit, Layer, type Schedule, Schema, type Stream } from "effect"
import type { CircuitOpen } from "./LlmError.ts"
import type { Stage } from "./Stage.ts"
import * as internal from "./internal/breaker.ts"
import * as BreakerOptions from "./internal/breakerOptions.ts"
import * as BreakerStore from "./internal/breakerStore.ts"
import type * as circuit from "./internal/circuit.ts"

// -----------------------------------------------------------------------------------------------------
// models
// -----------------------------------------------------------------------------------------------------

/**
 * How one call (or one report from another stage) went, as far as the breaker is concerned.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@llm-resilience/core"
 * const outcomes: Array<CircuitBreaker.Outcome> = [
 *   CircuitBreaker.success,
 *   CircuitBreaker.failure({ retryAfterMs: 30_000 }),
 *   CircuitBreaker.ignored
 * ]
 * ```
 * @since 0.1.0
 */
export type Outcome =
  | { readonly _tag: "Success" }
  | { readonly _tag: "Failure"; readonly retryAfterMs?: number | undefined }
  | { readonly _tag: "Ignored" }

/**
 * The call succeeded (or the provider answered with a client error: it is up).
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@llm-resilience/core"
 * CircuitBreaker.success._tag // "Success"
 * ```
 * @since 0.1.0
 */
export const success: Outcome = internal.success

/**
 * The call counts neither way (interrupted, rejected by the toolkit). A slow ignored call still counts as
 * slow.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@llm-resilience/core"
 * CircuitBreaker.ignored._tag // "Ignored"
 * ```
 * @since 0.1.0
 */
export const ignored: Outcome = internal.ignored

/**
 * The call failed. `retryAfterMs`, when the provider sent one, can lengthen the next opening.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@llm-resilience/core"
 * CircuitBreaker.failure({ retryAfterMs: 60_000 })
 * ```
 * @since 0.1.0
 */
export const failure = (options?: { readonly retryAfterMs?: number | undefined }): Outcome =>
  options?.retryAfterMs === undefined
    ? internal.failureOutcome
    : { _tag: "Failure", retryAfterMs: options.retryAfterMs }

/**
 * The state of one circuit as `status` reports it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "@llm-resilience/core"
 * const skipIfOpen = (breaker: CircuitBreaker.CircuitBreaker) =>
 *   Effect.map(breaker.status("openai/gpt-5.4"), (s) => s._tag === "Open" || s._tag === "Isolated")
 * ```
 * @since 0.1.0
 */
export type Status =
  | {
      readonly _tag: "Closed"
      readonly key: string
      /** Calls in the window, in-flight calls already slow included. */
      readonly calls: number
      readonly failures: number
      readonly slowCalls: number
      readonly consecutiveFailures: number
    }
  | { readonly _tag: "Open"; readonly key: string; readonly retryAfterMs: number; readonly openings: number }
  | { readonly _tag: "HalfOpen"; readonly key: string; readonly probesInFlight: number; readonly openings: number }
  | { readonly _tag: "Isolated"; readonly key: string }
  | { readonly _tag: "ForcedClosed"; readonly key: string }

/**
 * One state change. `at` is the logical time (epoch ms from `Clock`) at which it happened, which for
 * time-driven transitions can be earlier than the moment the breaker noticed it.
 *
 * @example
 * ```ts
 * import type { CircuitBreaker } from "@llm-resilience/core"
 * const t: CircuitBreaker.Transition = {
 *   key: "openai/gpt-5.4", from: "Closed", to: "Open", at: 0, reason: "failure-rate", openForMs: 10_000, openings: 1
 * }
 * ```
 * @since 0.1.0
 */
export type Transition = circuit.Transition

/**
 * Proof that a call was admitted; hand it back to `complete` exactly once (further calls are no-ops).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "@llm-resilience/core"
 * const manual = (breaker: CircuitBreaker.CircuitBreaker) =>
 *   Effect.gen(function*() {
 *     const permit = yield* breaker.admit("openai/gpt-5.4")
 *     yield* breaker.complete(permit, CircuitBreaker.success)
 *   })
 * ```
 * @since 0.1.0
 */
export interface Permit {
  readonly [internal.PermitTypeId]: typeof internal.PermitTypeId
  readonly key: string
  /** When the call was admitted (epoch ms). */
  readonly startedAt: number
  /** Whether this call is a HalfOpen probe. */
  readonly probe: boolean
}

// -----------------------------------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------------------------------

/**
 * The `breaker` section of `Resilience.Config`: the {@link Options} that plain data can hold, durations as
 * `...Ms` fields (milliseconds, or a duration string such as `"10 seconds"`). `openDurationMs` fixes how long
 * every opening lasts; without it, openings grow from 10 s (doubling) up to `maxOpenDurationMs` (30 s).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { CircuitBreaker } from "@llm-resilience/core"
 * const section = Schema.decodeUnknownSync(CircuitBreaker.Config)({ failureRateThreshold: 0.2, windowMs: "1 minute" })
 * ```
 * @since 0.1.0
 */
export const Config = BreakerOptions.Config

/**
 * Breaker configuration. Every field is optional; defaults in brackets.
 *
 * @example
 * ```ts
 * import { Schedule } from "effect"
 * import type { CircuitBreaker } from "@llm-resilience/core"
 * // the seeds' policy: more than 20% failures over 60 s, slow calls at 3 s
 * const options: CircuitBreaker.Options = {
 *   failureRateThreshold: 0.2,
 *   window: "60 seconds",
 *   minimumCalls: 10,
 *   slowCallThreshold: "3 seconds",
 *   openDuration: Schedule.exponential("15 seconds"),
 *   maxOpenDuration: "60 seconds"
 * }
 * ```
 * @since 0.1.0
 */
export interface Options {
  /** Open after this many failed or slow calls in a row; 0 turns the policy off. [5] */
  readonly consecutiveFailures?: number | undefined
  /** Open when failures / calls in the window reach this fraction. [0.5] */
  readonly failureRateThreshold?: number | undefined
  /** A call running at least this long is slow (also while still in flight). [off] */
  readonly slowCallThreshold?: Duration.Input | undefined
  /** Open when slow calls / calls in the window reach this fraction. [0.5] */
  readonly slowCallRateThreshold?: number | undefined
  /** The rolling window of the rate policies. ["60 seconds"] */
  readonly window?: Duration.Input | undefined
  /** How many buckets the window is kept in (its time resolution). [60] */
  readonly windowBuckets?: number | undefined
  /** The rate policies wait for this many calls in the window. [10] */
  readonly minimumCalls?: number | undefined
  /**
   * How long the n-th consecutive opening lasts: a fixed duration, or a Schedule of durations.
   * [exponential from 10 s, capped by `maxOpenDuration`]
   */
  readonly openDuration?: Duration.Input | Schedule.Schedule<unknown, unknown> | undefined
  /** Cap on every delay of an `openDuration` Schedule (a fixed duration is used as given). ["30 seconds"] */
  readonly maxOpenDuration?: Duration.Input | undefined
  /** Cap on a provider's Retry-After when it lengthens an opening. ["5 minutes"] */
  readonly maxRetryAfter?: Duration.Input | undefined
  /** Probes admitted in HalfOpen; all must succeed to close. [1] */
  readonly halfOpenProbes?: number | undefined
  /** A probe running this long is released and the circuit reopens. [slowCallThreshold, else 30 s] */
  readonly probeTimeout?: Duration.Input | undefined
  /** Error `_tag`s that count as failures. [`LlmError.breakerFailureTags`] */
  readonly failureTags?: ReadonlyArray<string> | undefined
  /** Whether a `RateLimited` (429) counts as a failure. [false] */
  readonly countRateLimited?: boolean | undefined
  /** `"metrics-only"` computes states, transitions and metrics but never rejects. ["enforce"] */
  readonly mode?: "enforce" | "metrics-only" | undefined
  /**
   * Bounds on the circuits kept: at most `maxKeys` [10,000]; a circuit unused for `idleMs` [600,000] is
   * dropped. Only closed circuits are dropped; an open, half-open, isolated or forced circuit stays. At the
   * cap with every circuit in use, a new key's circuit is not kept (each call of that key starts Closed).
   */
  readonly keys?: { readonly maxKeys?: number | undefined; readonly idleMs?: number | undefined } | undefined
  /** Models whose keys label metric series; other keys are labelled `provider/other`. [every key] */
  readonly metricModels?: ReadonlySet<string> | undefined
  /** Where openings, probe leases and closes are shared with other instances. [none: this process only] */
  readonly store?: Store | undefined
}

/**
 * Breaker state shared between instances: openings, half-open probe leases (at most `halfOpenProbes` in
 * total, each expiring after `probeTimeout`) and closes; each instance still counts on its own. In memory:
 * {@link memoryStore}; on Redis: `@llm-resilience/redis`.
 *
 * @since 0.1.0
 */
export type Store = BreakerStore.Store

/**
 * A {@link Store} in this process: breakers sharing it behave like instances sharing Redis.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@llm-resilience/core"
 * const store = CircuitBreaker.memoryStore()
 * const pair = [CircuitBreaker.make({ store }), CircuitBreaker.make({ store })]
 * ```
 * @since 0.1.0
 */
export const memoryStore: () => Store = BreakerStore.memoryStore

// -----------------------------------------------------------------------------------------------------
// service
// -----------------------------------------------------------------------------------------------------

/**
 * A set of circuits, one per key, sharing one policy.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ failureRateThreshold: 0.2, slowCallThreshold: "3 seconds" })
 *   const answer = yield* Effect.succeed("hi").pipe(breaker.protect("openai/gpt-5.4"))
 *   const status = yield* breaker.status("openai/gpt-5.4")
 *   return [answer, status._tag]
 * })
 * ```
 * @since 0.1.0
 */
export interface CircuitBreaker {
  /**
   * Runs `self` through the circuit for `key`: rejected with `CircuitOpen` when the circuit does not
   * admit, otherwise its exit is classified and recorded. `classify` overrides the default classification.
   */
  readonly protect: (
    key: string,
    options?: { readonly classify?: ((exit: Exit.Exit<unknown, unknown>) => Outcome) | undefined }
  ) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | CircuitOpen, R>
  /** Admits one call by hand (streams, custom wrappers). Pair with `complete`. */
  readonly admit: (key: string) => Effect.Effect<Permit, CircuitOpen>
  /** Records the outcome of an admitted call; its latency is measured from the permit. */
  readonly complete: (permit: Permit, outcome: Outcome) => Effect.Effect<void>
  /**
   * Records an outcome reported by another stage (cost above a threshold, a poor quality score) for
   * `key`, with the call's latency when known. A failure reported while HalfOpen reopens the circuit.
   */
  readonly record: (key: string, outcome: Outcome, latency?: Duration.Input) => Effect.Effect<void>
  /**
   * A later stage (cost above a threshold, a poor quality score) judged a call that the breaker recorded
   * as a success to be a failure: the latest such success for `key` counts as a failure instead (in the
   * window and in the consecutive streak). If the breaker has not recorded that success yet (the stage
   * runs inside `protect`), the next success for `key` is counted as a failure. While HalfOpen, it reopens.
   */
  readonly downgrade: (key: string) => Effect.Effect<void>
  /** Succeeds when a call to `key` would be admitted now, without admitting one. */
  readonly check: (key: string) => Effect.Effect<void, CircuitOpen>
  /** The state of the circuit for `key`. */
  readonly status: (key: string) => Effect.Effect<Status>
  /** Every transition of every circuit of this breaker, from the moment of subscription. */
  readonly transitions: Stream.Stream<Transition>
  /** Forces the circuit open until `reset`. */
  readonly isolate: (key: string) => Effect.Effect<void>
  /** Keeps the circuit closed (outcomes are still recorded) until `reset`. */
  readonly forceClosed: (key: string) => Effect.Effect<void>
  /** Back to automatic: Closed, with fresh counters and backoff. */
  readonly reset: (key: string) => Effect.Effect<void>
  /**
   * How this breaker classifies an attempt's exit (with its own `failureTags`): the one classification,
   * used by `protect`, `stage` and the pipeline alike.
   */
  readonly classify: (exit: Exit.Exit<unknown, unknown>) => Outcome
  /**
   * The breaker as a stage ({@link Stage.Stage}): admits the attempt under its key or refuses it with
   * `CircuitOpen`, and records its outcome. `protect` is this stage run alone.
   */
  readonly stage: Stage<unknown>
  /**
   * A stage that refuses an attempt with `CircuitOpen` when the circuit would not admit it, taking nothing
   * (like `check`). A pipeline puts it before a stage that may make the attempt wait (admission), so that an
   * open circuit never queues, and `stage` after it, so that waiting never counts as a slow call.
   */
  readonly gate: Stage<unknown>
}

/**
 * The breaker as a service, for `withBreaker` and layers.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "@llm-resilience/core"
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.CircuitBreaker
 *   return yield* breaker.status("anthropic/claude-sonnet-4-6")
 * }).pipe(Effect.provide(CircuitBreaker.layer({ minimumCalls: 20 })))
 * ```
 * @since 0.1.0
 */
export const CircuitBreaker: Context.Service<CircuitBreaker, CircuitBreaker> = Context.Service<CircuitBreaker>(
  "@llm-resilience/core/CircuitBreaker"
)

/**
 * Breaker metrics. State gauge per key: 0 Closed, 1 Open, 2 HalfOpen, 3 Isolated, 4 ForcedClosed.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { CircuitBreaker } from "@llm-resilience/core"
 * const openNow = Metric.value(Metric.withAttributes(CircuitBreaker.metrics.state, { key: "openai/gpt-5.4" }))
 * ```
 * @since 0.1.0
 */
export const metrics = internal.metrics

/**
 * Builds a breaker. Fails with a `SchemaError` naming the field when an option is invalid.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { CircuitBreaker, LlmError } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({
 *     consecutiveFailures: 3,
 *     openDuration: Schedule.exponential("5 seconds"),
 *     maxOpenDuration: "1 minute"
 *   })
 *   const down = Effect.fail(new LlmError.Overloaded({ message: "overloaded", status: 529 }))
 *   for (let i = 0; i < 3; i++) yield* Effect.flip(down.pipe(breaker.protect("anthropic/claude")))
 *   return yield* Effect.flip(down.pipe(breaker.protect("anthropic/claude"))) // CircuitOpen, no call made
 * })
 * ```
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (options: Options = {}) {
  yield* Schema.decodeUnknownEffect(BreakerOptions.OptionsSchema)(options, { errors: "all" })
  return CircuitBreaker.of(yield* internal.make(options))
})

/**
 * A layer providing {@link CircuitBreaker}. Fails at construction when an option is invalid.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "@llm-resilience/core"
 * const BreakerLive = CircuitBreaker.layer({ failureRateThreshold: 0.2, window: "60 seconds", slowCallThreshold: "3 seconds" })
 * ```
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<CircuitBreaker, Schema.SchemaError> =>
  Layer.effect(CircuitBreaker, make(options))

/**
 * Runs an effect through the circuit for `key` of the {@link CircuitBreaker} in context.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "@llm-resilience/core"
 * const call = Effect.succeed("answer").pipe(CircuitBreaker.withBreaker("openai/gpt-5.4-mini"))
 * ```
 * @since 0.1.0
 */
export const withBreaker =
  (key: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | CircuitOpen, R | CircuitBreaker> =>
    Effect.flatMap(CircuitBreaker, (breaker) => breaker.protect(key)(self))

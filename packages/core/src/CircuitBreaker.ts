/**
 * Keyed circuit breakers for LLM calls: one circuit per `provider/model`, Closed / Open / HalfOpen.
 *
 * - Trip policies combine: consecutive failures; failure rate over a rolling time window with a minimum
 *   number of calls; slow-call rate over the same window. A call still running past the slow-call
 *   threshold counts as slow from that moment, not only when it ends, so a provider that hangs opens the
 *   circuit seconds after the hang starts instead of after the first 30 s timeout.
 * - Which errors count is data (`failureTags`); by default timeouts, 5xx, overload, connection errors
 *   and truncated streams count, fatal client errors count as answers (the provider is up), 429s do not
 *   trip (admission control reacts to them) unless `countRateLimited` is set, and the toolkit's own
 *   rejections and interruptions are ignored.
 * - Open lasts a fixed `openDuration`, or the n-th delay of a `Schedule` capped at `maxOpenDuration`
 *   (default: exponential from 10 s, capped at 30 s, so a recovered provider is tried again within 30 s),
 *   lengthened by a provider's Retry-After (capped at `maxRetryAfter`).
 * - HalfOpen admits `halfOpenProbes` probes; all must succeed to close, one failure reopens, other
 *   callers fail fast. A probe that outlives `probeTimeout` is released and the circuit reopens, so a
 *   hung probe cannot wedge the circuit.
 * - A rejection is {@link LlmError.CircuitOpen} with the key and a `retryAfterMs`, decided synchronously.
 * - `status` / `check` read a circuit without making a call (a fallback plan uses them to skip a step),
 *   `transitions` streams every transition, and metrics report the state gauge, transitions and
 *   rejections. `isolate`, `forceClosed` and `reset` are manual controls; `mode: "metrics-only"` runs
 *   the whole state machine but never rejects, for rollout.
 *
 * The Closed happy path reads the clock once, compares two numbers and updates a counter when the call
 * ends: no fiber, no timer, no Schedule. Time-driven transitions are evaluated whenever the circuit is
 * consulted (admission, an outcome, a status query).
 *
 * Compared with Effect's `effect/persistence` CircuitBreaker (keyed, consecutive or count-ring rate
 * policy, schedule-driven open duration, Retry-After hint, one probe, memory/Redis stores), this one adds
 * the time window, slow calls counted while in flight, N probes with a probe timeout, metrics, manual
 * controls and a metrics-only mode. It keeps state in process memory.
 *
 * @since 0.1.0
 */
import {
  Cause,
  Clock,
  Context,
  Duration,
  Effect,
  type Exit,
  type Fiber,
  Layer,
  Metric,
  Option,
  PubSub,
  Schedule,
  Schema,
  Stream
} from "effect"
import * as internal from "./internal/circuit.ts"
import { keyOnly } from "./internal/keyOnly.ts"
import { KeyedState } from "./internal/keyedState.ts"
import * as Attempts from "./internal/attempt.ts"
import { breakerFailureTags, CircuitOpen, rejectionTags as rejectionTagList } from "./LlmError.ts"
import type { Stage } from "./Stage.ts"
import { DurationInput, millis } from "./internal/duration.ts"
import { tagged } from "./internal/metrics.ts"
import * as CallReport from "./CallReport.ts"

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
export const success: Outcome = { _tag: "Success" }

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
export const ignored: Outcome = { _tag: "Ignored" }

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
  options?.retryAfterMs === undefined ? failureOutcome : { _tag: "Failure", retryAfterMs: options.retryAfterMs }

const failureOutcome: Outcome = { _tag: "Failure" }

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
export type Transition = internal.Transition

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
  readonly [PermitTypeId]: typeof PermitTypeId
  readonly key: string
  /** When the call was admitted (epoch ms). */
  readonly startedAt: number
  /** Whether this call is a HalfOpen probe. */
  readonly probe: boolean
}

const PermitTypeId = "~@llm-resilience/core/CircuitBreaker/Permit" as const

const rejectionTags: ReadonlySet<string> = new Set(rejectionTagList)

// -----------------------------------------------------------------------------------------------------
// options
// -----------------------------------------------------------------------------------------------------

const Fraction = Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

const OptionsSchema = Schema.Struct({
  consecutiveFailures: Schema.optional(NonNegativeInt),
  failureRateThreshold: Schema.optional(Fraction),
  slowCallThreshold: Schema.optional(DurationInput),
  slowCallRateThreshold: Schema.optional(Fraction),
  window: Schema.optional(DurationInput),
  windowBuckets: Schema.optional(PositiveInt.check(Schema.isLessThanOrEqualTo(3600))),
  minimumCalls: Schema.optional(PositiveInt),
  openDuration: Schema.optional(
    Schema.Unknown.check(
      Schema.makeFilter(
        (u) =>
          Schedule.isSchedule(u) ||
          Option.isSome(Duration.fromInput(u as Duration.Input)) ||
          "expected a duration or a Schedule of durations"
      )
    )
  ),
  maxOpenDuration: Schema.optional(DurationInput),
  maxRetryAfter: Schema.optional(DurationInput),
  halfOpenProbes: Schema.optional(PositiveInt),
  probeTimeout: Schema.optional(DurationInput),
  failureTags: Schema.optional(Schema.Array(Schema.String)),
  countRateLimited: Schema.optional(Schema.Boolean),
  mode: Schema.optional(Schema.Literals(["enforce", "metrics-only"]))
})

const Ms = Schema.optional(millis(Schema.Finite.check(Schema.isGreaterThan(0))))
const { consecutiveFailures, failureRateThreshold, slowCallRateThreshold, minimumCalls, halfOpenProbes } =
  OptionsSchema.fields

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
export const Config = Schema.Struct({
  consecutiveFailures,
  failureRateThreshold,
  slowCallThresholdMs: Ms,
  slowCallRateThreshold,
  windowMs: Ms,
  minimumCalls,
  openDurationMs: Ms,
  maxOpenDurationMs: Ms,
  halfOpenProbes,
  probeTimeoutMs: Ms,
  countRateLimited: OptionsSchema.fields.countRateLimited,
  mode: OptionsSchema.fields.mode
})

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
}

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
export const metrics = {
  state: Metric.gauge("llm_breaker_state", {
    description: "0 closed, 1 open, 2 half-open, 3 isolated, 4 forced closed"
  }),
  transitions: Metric.counter("llm_breaker_transitions", {
    description: "breaker state transitions by key, from and to",
    incremental: true
  }),
  rejections: Metric.counter("llm_breaker_rejections", {
    description: "calls rejected by an open breaker (or that would have been, in metrics-only mode)",
    incremental: true
  })
}

interface CircuitMetrics {
  readonly state: Metric.Metric<number, unknown>
  readonly rejections: Metric.Metric<number, unknown>
}

const stackTraceLimitWritable = (() => {
  const descriptor = Object.getOwnPropertyDescriptor(Error, "stackTraceLimit")
  return descriptor === undefined || descriptor.writable === true || descriptor.set !== undefined
})()

/**
 * Builds a rejection without capturing a stack trace: it would only point into the breaker, and capturing
 * it costs several microseconds, the bulk of a rejection (as Effect does for its own internal errors).
 */
const withoutStackTrace = <A>(f: () => A): A => {
  if (!stackTraceLimitWritable) return f()
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return f()
  } finally {
    Error.stackTraceLimit = limit
  }
}

const durationMs = (input: unknown, fallback: number): number =>
  input === undefined ? fallback : Duration.toMillis(Duration.fromInputUnsafe(input as Duration.Input))

/** A fixed duration is used as given; a schedule is replayed once, against a simulated clock, for the first 32 openings. */
const openDurations = (
  input: Duration.Input | Schedule.Schedule<unknown, unknown> | undefined,
  capMs: number
): Effect.Effect<ReadonlyArray<number>> =>
  Effect.gen(function* () {
    if (input !== undefined && !Schedule.isSchedule(input)) return [durationMs(input, 0)]
    const schedule = (input ?? Schedule.exponential("10 seconds")) as Schedule.Schedule<unknown, unknown>
    const step = yield* Schedule.toStep(schedule)
    const out: Array<number> = []
    let now = 0
    for (let attempt = 1; attempt <= 32; attempt++) {
      const result = yield* Effect.exit(step(now, attempt))
      if (result._tag === "Failure") break
      const ms = Math.min(Duration.toMillis(result.value[1]), capMs)
      out.push(ms)
      now += ms
      if (ms >= capMs) break
    }
    return out.length === 0 ? [capMs] : out
  })

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
  yield* Schema.decodeUnknownEffect(OptionsSchema)(options, { errors: "all" })
  const slowCallMs = durationMs(options.slowCallThreshold, Number.POSITIVE_INFINITY)
  const maxOpenMs = durationMs(options.maxOpenDuration, 30_000)
  const windowMs = durationMs(options.window, 60_000)
  const policy: internal.Policy = {
    consecutiveFailures:
      options.consecutiveFailures === 0 ? Number.POSITIVE_INFINITY : (options.consecutiveFailures ?? 5),
    failureRateThreshold: options.failureRateThreshold ?? 0.5,
    slowCallRateThreshold: options.slowCallRateThreshold ?? 0.5,
    slowCallMs,
    windowMs: Math.max(1, windowMs),
    buckets: options.windowBuckets ?? 60,
    minimumCalls: options.minimumCalls ?? 10,
    probes: options.halfOpenProbes ?? 1,
    probeTimeoutMs: durationMs(options.probeTimeout, slowCallMs === Number.POSITIVE_INFINITY ? 30_000 : slowCallMs),
    openDurationsMs: yield* openDurations(options.openDuration, maxOpenMs),
    maxRetryAfterMs: durationMs(options.maxRetryAfter, 300_000),
    isolateRetryAfterMs: maxOpenMs,
    metricsOnly: options.mode === "metrics-only"
  }
  const failureTags = new Set(options.failureTags ?? breakerFailureTags)
  if (options.countRateLimited) failureTags.add("RateLimited")

  const pubsub = yield* PubSub.sliding<Transition>(1024)
  const circuits = new KeyedState<internal.Circuit>(options.keys, (c) => c.state === internal.CLOSED)
  const circuitMetrics = new WeakMap<internal.Circuit, CircuitMetrics>()
  const outbox: Array<Transition> = []
  const sink: internal.Sink = (t) => {
    outbox.push(t)
  }

  const circuitFor = (key: string, now: number): internal.Circuit => {
    return circuits.getOrCreate(key, now, () => {
      const circuit = new internal.Circuit(key, policy, sink, now)
      circuitMetrics.set(circuit, {
        state: Metric.withAttributes(metrics.state, { key }),
        rejections: Metric.withAttributes(metrics.rejections, { key })
      })
      return circuit
    })
  }

  const flush = (fiber: Fiber.Fiber<unknown, unknown>): void => {
    const context = fiber.context
    for (let i = 0; i < outbox.length; i++) {
      const t = outbox[i]
      PubSub.publishUnsafe(pubsub, t)
      const m = circuits.get(t.key)
      if (m !== undefined) circuitMetrics.get(m)?.state.updateUnsafe(internal.stateNames.indexOf(t.to), context)
      tagged(metrics.transitions, { key: t.key, from: t.from, to: t.to }).updateUnsafe(1, context)
      CallReport.emitUnsafe(fiber, () => ({ _tag: "BreakerTransition", key: t.key, from: t.from, to: t.to }))
    }
    outbox.length = 0
  }

  const rejectWith = (circuit: internal.Circuit, fiber: Fiber.Fiber<unknown, unknown>): void => {
    circuitMetrics.get(circuit)?.rejections.updateUnsafe(1, fiber.context)
  }

  const classifyError = (error: unknown): Outcome => {
    const tag =
      typeof error === "object" && error !== null && "_tag" in error ? (error as { _tag: unknown })._tag : undefined
    if (typeof tag !== "string") return failureOutcome
    if (failureTags.has(tag)) {
      const ra = (error as { retryAfterMs?: unknown }).retryAfterMs
      return typeof ra === "number" ? { _tag: "Failure", retryAfterMs: ra } : failureOutcome
    }
    return rejectionTags.has(tag) ? ignored : success
  }

  const classifyExit = (exit: Exit.Exit<unknown, unknown>): Outcome => {
    if (exit._tag === "Success") return success
    if (Cause.hasInterruptsOnly(exit.cause)) return ignored
    const error = Cause.findErrorOption(exit.cause)
    return error._tag === "None" ? failureOutcome : classifyError(error.value)
  }

  const outcomeCode = (o: Outcome): internal.OutcomeCode =>
    o._tag === "Success" ? internal.SUCCESS : o._tag === "Failure" ? internal.FAILURE : internal.IGNORED

  const finish = (call: internal.Call, outcome: Outcome, now: number, fiber: Fiber.Fiber<unknown, unknown>) => {
    call.circuit.complete(
      call,
      outcomeCode(outcome),
      now,
      outcome._tag === "Failure" ? outcome.retryAfterMs : undefined
    )
    if (outbox.length > 0) flush(fiber)
  }

  const rejection = (circuit: internal.Circuit, fiber: Fiber.Fiber<unknown, unknown>): CircuitOpen => {
    rejectWith(circuit, fiber)
    return withoutStackTrace(() => new CircuitOpen({ key: circuit.key, retryAfterMs: circuit.rejectRetryAfterMs }))
  }

  const admitUnsafe = (key: string, now: number, fiber: Fiber.Fiber<unknown, unknown>): internal.Call | CircuitOpen => {
    const circuit = circuitFor(key, now)
    const call = circuit.admit(now)
    if (outbox.length > 0) flush(fiber)
    if (call === undefined) return rejection(circuit, fiber)
    if (call.kind === internal.UNTRACKED) rejectWith(circuit, fiber)
    return call
  }

  const stageWith = (classify: (exit: Exit.Exit<unknown, unknown>) => Outcome): Stage<internal.Call> => ({
    name: "circuit-breaker",
    enter: (attempt) => {
      const fiber = attempt.fiber
      const call = admitUnsafe(attempt.key, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe(), fiber)
      return call instanceof internal.Call ? call : Effect.fail(call)
    },
    exit: (call, exit, attempt) => finish(call, classify(exit), attempt.endMs, attempt.fiber)
  })
  const stage = stageWith(classifyExit)

  const gate: Stage<undefined> = {
    name: "circuit-breaker-gate",
    enter: (attempt) => {
      if (policy.metricsOnly) return undefined
      const fiber = attempt.fiber
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const circuit = circuitFor(attempt.key, now)
      const open = !circuit.wouldAdmit(now)
      if (outbox.length > 0) flush(fiber)
      return open ? Effect.fail(rejection(circuit, fiber)) : undefined
    },
    exit: () => undefined
  }

  const protect: CircuitBreaker["protect"] = (key, protectOptions) => {
    const stages = [protectOptions?.classify === undefined ? stage : stageWith(protectOptions.classify)]
    const request = keyOnly(key)
    return (self) => Attempts.run(stages, request, key, self)
  }

  const permits = new WeakMap<Permit, internal.Call>()

  const admit = (key: string): Effect.Effect<Permit, CircuitOpen> =>
    Effect.withFiber((fiber) => {
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const call = admitUnsafe(key, now, fiber)
      if (!(call instanceof internal.Call)) return Effect.fail(call)
      const permit: Permit = { [PermitTypeId]: PermitTypeId, key, startedAt: now, probe: call.kind === internal.PROBE }
      permits.set(permit, call)
      return Effect.succeed(permit)
    })

  const complete = (permit: Permit, outcome: Outcome): Effect.Effect<void> =>
    Effect.withFiber((fiber) => {
      const call = permits.get(permit)
      if (call !== undefined) finish(call, outcome, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe(), fiber)
      return Effect.void
    })

  const withCircuit = <A>(key: string, f: (circuit: internal.Circuit, now: number) => A): Effect.Effect<A> =>
    Effect.withFiber((fiber) => {
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const result = f(circuitFor(key, now), now)
      if (outbox.length > 0) flush(fiber)
      return Effect.succeed(result)
    })

  const record: CircuitBreaker["record"] = (key, outcome, latency) =>
    withCircuit(key, (circuit, now) =>
      circuit.report(
        outcomeCode(outcome),
        now,
        latency === undefined ? undefined : durationMs(latency, 0),
        outcome._tag === "Failure" ? outcome.retryAfterMs : undefined
      )
    )

  const downgrade = (key: string): Effect.Effect<void> => withCircuit(key, (circuit, now) => circuit.downgrade(now))

  // one step (it runs before admission on every call): read the circuit, flush its transitions, answer
  const check = (key: string): Effect.Effect<void, CircuitOpen> =>
    Effect.withFiber((fiber) => {
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const circuit = circuitFor(key, now)
      const retryAfterMs = circuit.wouldAdmit(now) ? undefined : circuit.rejectRetryAfterMs
      if (outbox.length > 0) flush(fiber)
      return retryAfterMs === undefined || policy.metricsOnly
        ? Effect.void
        : Effect.fail(withoutStackTrace(() => new CircuitOpen({ key, retryAfterMs })))
    })

  const status = (key: string): Effect.Effect<Status> =>
    withCircuit(key, (c, now): Status => {
      c.refresh(now)
      switch (c.state) {
        case internal.CLOSED:
          return {
            _tag: "Closed",
            key,
            calls: c.calls + c.pendingSlow,
            failures: c.failures,
            slowCalls: c.slowCalls + c.pendingSlow,
            consecutiveFailures: c.streak
          }
        case internal.OPEN:
          return { _tag: "Open", key, retryAfterMs: Math.max(0, c.openUntil - now), openings: c.openings }
        case internal.HALF_OPEN:
          return { _tag: "HalfOpen", key, probesInFlight: c.probes.length, openings: c.openings }
        case internal.ISOLATED:
          return { _tag: "Isolated", key }
        default:
          return { _tag: "ForcedClosed", key }
      }
    })

  return CircuitBreaker.of({
    protect,
    admit,
    complete,
    record,
    downgrade,
    check,
    status,
    transitions: Stream.fromPubSub(pubsub),
    isolate: (key) => withCircuit(key, (c, now) => c.isolate(now)),
    forceClosed: (key) => withCircuit(key, (c, now) => c.forceClose(now)),
    reset: (key) => withCircuit(key, (c, now) => c.reset(now)),
    classify: classifyExit,
    stage,
    gate
  })
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

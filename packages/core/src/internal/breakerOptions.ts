/**
 * The breaker's options: their schema, the `breaker` section of `Resilience.Config`, and the validated
 * {@link internal.Policy} the circuits run on (durations in milliseconds, the open-duration schedule
 * replayed once into a list).
 *
 * @internal
 */
import { Duration, Effect, Option, Schedule, Schema } from "effect"
import type * as CB from "../CircuitBreaker.ts"
import type * as internal from "./circuit.ts"
import { DurationInput, millis } from "./duration.ts"

const Fraction = Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/** @internal */
export const OptionsSchema = Schema.Struct({
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

/** @internal */
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

/** @internal */
export const durationMs = (input: unknown, fallback: number): number =>
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
 * The policy of `options` (already validated).
 *
 * @internal
 */
export const policyOf = Effect.fnUntraced(function* (options: CB.Options) {
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
  return policy
})

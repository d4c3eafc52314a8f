/**
 * The retry stage: retries only retryable provider errors ({@link LlmError.isRetryable}), with jittered
 * backoff ({@link Backoff}), a Retry-After floor, a total deadline, a shared {@link RetryBudget}, and one rule
 * that keeps retries from multiplying: only the outermost retry stage retries.
 *
 * ```ts
 * call.pipe(Retry.retry({ profile: "interactive", budget, key: "openai/gpt-5.4-mini" }))
 * llm.stream(request).pipe(Retry.retryStream({ profile: "interactive", budget, key: "openai/gpt-5.4-mini" }))
 * ```
 *
 * After a failed attempt the stage, in order:
 * 1. gives up with the error itself if it is not retryable (400/401/403/404, context length, content filter,
 *    quota exhaustion, toolkit rejections) or the profile's `maxRetries` are spent;
 * 2. draws the backoff delay, then applies the provider's Retry-After as a floor; a Retry-After above
 *    `maxRetryAfter` fails at once with {@link LlmError.RetryAfterTooLong};
 * 3. fails with {@link LlmError.DeadlineExceeded} (carrying the last error) if that wait would cross the
 *    profile's total `deadline`, counted from the start of the call;
 * 4. asks the budget for a retry; a refusal fails at once with {@link LlmError.RetryBudgetExhausted};
 * 5. sleeps, and tries again.
 *
 * One layer only: the stage marks its attempts with {@link InsideRetry}; a retry stage that finds the mark
 * (nested services, wrapped providers) passes errors straight through, so five nested stages of three
 * retries make at most four calls, not 4^5 = 1,024.
 *
 * Streams are retried only until their first chunk has been emitted downstream: after that, a failure is
 * the caller's to see (the text already delivered cannot be taken back). `Resilience` can carry a stream on
 * past its first chunk (a path's `midStream` mode).
 *
 * The happy path reads the clock, marks the context and (with a budget) records the request; no schedule,
 * retry state or timer exists until the first failure.
 *
 * Telemetry: every failed attempt adds a `llm.retry` event to the current span with the attempt number,
 * the error, the decision, the delay and why (`backoff`, `retry-after`, or the reason for giving up:
 * `not-retryable`, `max-retries`, `retry-after-too-long`, `deadline`, `budget`); the counters
 * {@link retriesTotal}, {@link giveUpsTotal} and {@link budgetRejectionsTotal} count them.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Schema, type Stream } from "effect"
import * as Backoff from "./Backoff.ts"
import { millis } from "./internal/duration.ts"
import * as internal from "./internal/retry.ts"
import type { DeadlineExceeded, RetryAfterTooLong, RetryBudgetExhausted } from "./LlmError.ts"
import type { RetryBudget } from "./RetryBudget.ts"

// ---------------------------------------------------------------------------------------------------------
// profiles
// ---------------------------------------------------------------------------------------------------------

/**
 * A validated retry profile: how one path (interactive chat, background batch ...) retries. Durations are in
 * milliseconds; `deadlineMs` may be `Infinity` (no deadline). Build one with {@link profile}.
 *
 * @since 0.1.0
 */
export interface Profile {
  readonly name: string
  /** Retries after the first attempt (so `maxRetries + 1` attempts at most). */
  readonly maxRetries: number
  readonly jitter: Backoff.Jitter
  readonly baseMs: number
  readonly capMs: number
  /** Total time budget of the call, counted from its start; no retry wait may cross it. */
  readonly deadlineMs: number
  /** A Retry-After above this fails at once with `RetryAfterTooLong` instead of waiting. */
  readonly maxRetryAfterMs: number
}

/**
 * For user-facing calls: someone is waiting. At most 2 retries, full jitter from 250 ms capped at 2 s, a
 * total deadline of 10 s, and no waiting on a Retry-After above 5 s (fall back instead).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "@llm-resilience/core"
 * const program = Effect.succeed("hi").pipe(Retry.retry({ profile: Retry.interactive }))
 * ```
 * @since 0.1.0
 */
export const interactive: Profile = {
  name: "interactive",
  maxRetries: 2,
  jitter: "full",
  baseMs: 250,
  capMs: 2_000,
  deadlineMs: 10_000,
  maxRetryAfterMs: 5_000
}

/**
 * For batch and background work: nobody is waiting, finishing matters more than latency. At most 5
 * retries, full jitter from 1 s capped at 60 s, a total deadline of 10 minutes, Retry-After honoured up to
 * 60 s.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "@llm-resilience/core"
 * const program = Effect.succeed("summary").pipe(Retry.retry({ profile: "background" }))
 * ```
 * @since 0.1.0
 */
export const background: Profile = {
  name: "background",
  maxRetries: 5,
  jitter: "full",
  baseMs: 1_000,
  capMs: 60_000,
  deadlineMs: 600_000,
  maxRetryAfterMs: 60_000
}

/**
 * Options of a user-defined profile. Every field not given is taken from `extends` (default
 * {@link interactive}).
 *
 * @example
 * ```ts
 * import type { Retry } from "@llm-resilience/core"
 * const options: Retry.ProfileOptions = { name: "agent-step", extends: "background", maxRetries: 3, deadline: "2 minutes" }
 * ```
 * @since 0.1.0
 */
export interface ProfileOptions {
  readonly name?: string | undefined
  readonly extends?: Profile | "interactive" | "background" | undefined
  readonly maxRetries?: number | undefined
  readonly jitter?: Backoff.Jitter | undefined
  readonly base?: Duration.Input | undefined
  readonly cap?: Duration.Input | undefined
  readonly deadline?: Duration.Input | undefined
  readonly maxRetryAfter?: Duration.Input | undefined
}

const nonNegativeMs = Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))

/** The profile options as decoded, under the names the user wrote (durations in milliseconds). */
const ProfileOptionsSchema = Schema.Struct({
  name: Schema.String,
  maxRetries: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 100 })),
  jitter: Schema.Literals(["none", "full", "equal", "decorrelated"]),
  base: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  cap: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)),
  deadline: Schema.Number.check(Schema.isGreaterThan(0)),
  maxRetryAfter: nonNegativeMs
})

const NonNegativeMs = Schema.optional(millis(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))))

/**
 * A path's `retry` in `Resilience.Config`: a built-in profile's name, or {@link ProfileOptions} as plain data
 * extending one, durations as `...Ms` fields (milliseconds, or a duration string such as `"2 minutes"`).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Retry } from "@llm-resilience/core"
 * const retry = Schema.decodeUnknownSync(Retry.Config)({ extends: "background", maxRetries: 3, deadlineMs: "2 minutes" })
 * ```
 * @since 0.1.0
 */
export const Config = Schema.Union([
  Schema.Literals(["interactive", "background", "none"]),
  Schema.Struct({
    extends: Schema.optional(Schema.Literals(["interactive", "background"])),
    maxRetries: Schema.optional(ProfileOptionsSchema.fields.maxRetries),
    jitter: Schema.optional(ProfileOptionsSchema.fields.jitter),
    baseMs: NonNegativeMs,
    capMs: NonNegativeMs,
    deadlineMs: Schema.optional(millis(Schema.Finite.check(Schema.isGreaterThan(0)))),
    maxRetryAfterMs: NonNegativeMs
  })
])

const durationOrNaN = (input: Duration.Input | undefined, fallback: number): number => {
  if (input === undefined) return fallback
  const d = Duration.fromInput(input)
  return d._tag === "Some" ? Duration.toMillis(d.value) : Number.NaN
}

const namedProfile = (p: Profile | "interactive" | "background" | undefined): Profile =>
  p === undefined || p === "interactive" ? interactive : p === "background" ? background : p

/**
 * Builds a profile from options, filling the rest from `extends`. Invalid options fail with a `SchemaError`
 * naming the field (e.g. `maxRetries` negative, `deadline` zero, an unknown `jitter`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const agentStep = yield* Retry.profile({ name: "agent-step", extends: "background", maxRetries: 3, deadline: "2 minutes" })
 *   return yield* Effect.succeed("ok").pipe(Retry.retry({ profile: agentStep }))
 * })
 * ```
 * @since 0.1.0
 */
export const profile = Effect.fnUntraced(function* (options: ProfileOptions) {
  const from = namedProfile(options.extends)
  const decoded = yield* Schema.decodeUnknownEffect(ProfileOptionsSchema)({
    name: options.name ?? from.name,
    maxRetries: options.maxRetries ?? from.maxRetries,
    jitter: options.jitter ?? from.jitter,
    base: durationOrNaN(options.base, from.baseMs),
    cap: durationOrNaN(options.cap, from.capMs),
    deadline: durationOrNaN(options.deadline, from.deadlineMs),
    maxRetryAfter: durationOrNaN(options.maxRetryAfter, from.maxRetryAfterMs)
  })
  const result: Profile = {
    name: decoded.name,
    maxRetries: decoded.maxRetries,
    jitter: decoded.jitter,
    baseMs: decoded.base,
    capMs: decoded.cap,
    deadlineMs: decoded.deadline,
    maxRetryAfterMs: decoded.maxRetryAfter
  }
  return result
})

export {
  /** @since 0.1.0 */
  budgetRejectionsTotal,
  /** @since 0.1.0 */
  giveUpsTotal,
  /** @since 0.1.0 */
  InsideRetry,
  /** @since 0.1.0 */
  retriesTotal
} from "./internal/retry.ts"

// ---------------------------------------------------------------------------------------------------------
// the stage
// ---------------------------------------------------------------------------------------------------------

/**
 * The errors the retry stage adds to those of the effect it wraps.
 *
 * @since 0.1.0
 */
export type Rejection = RetryBudgetExhausted | RetryAfterTooLong | DeadlineExceeded

/**
 * Options of the retry stage.
 *
 * - `profile` (default `"interactive"`): a {@link Profile} or the name of a built-in one.
 * - `budget`: a shared {@link RetryBudget.RetryBudget}; every call deposits, every retry withdraws.
 * - `key` (default `"default"`): the budget key and metric attribute, conventionally `provider/model`.
 *
 * @example
 * ```ts
 * import type { Retry } from "@llm-resilience/core"
 * const options: Retry.Options = { profile: "background", key: "anthropic/claude-sonnet-4-6" }
 * ```
 * @since 0.1.0
 */
export interface Options {
  readonly profile?: Profile | "interactive" | "background" | undefined
  readonly budget?: RetryBudget | undefined
  readonly key?: string | undefined
}

const configOf = (options: Options | undefined): internal.Config =>
  internal.configFor(namedProfile(options?.profile), options?.budget, options?.key ?? "default")

/**
 * Retries an effect (typically `LlmProvider.complete`) according to a profile, a shared budget and a
 * deadline. See the module documentation for the decision order.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmProvider, Retry, RetryBudget } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const llm = yield* LlmProvider.LlmProvider
 *   const budget = yield* RetryBudget.make()
 *   const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }
 *   return yield* llm.complete(request).pipe(
 *     Retry.retry({ profile: "interactive", budget, key: `${llm.name}/gpt-5.4-mini` })
 *   )
 * })
 * ```
 * @since 0.1.0
 */
export const retry = (
  options?: Options
): (<A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Rejection, R>) =>
  internal.retryWith(configOf(options))

/**
 * Retries a stream (typically `LlmProvider.stream`) while it has not emitted anything: a failure before the
 * first chunk reached the caller is retried like {@link retry}; once a chunk went out, failures pass
 * through unchanged.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { LlmProvider, Retry } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const llm = yield* LlmProvider.LlmProvider
 *   const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }
 *   return yield* llm.stream(request).pipe(Retry.retryStream({ profile: "interactive" }), Stream.runCollect)
 * })
 * ```
 * @since 0.1.0
 */
export const retryStream = (
  options?: Options
): (<A, E, R>(self: Stream.Stream<A, E, R>) => Stream.Stream<A, E | Rejection, R>) => {
  const retry = internal.retryStreamWith(configOf(options))
  return (self) => retry(self)
}

/**
 * The retry stage: retries only retryable provider errors ({@link LlmError.isRetryable}), with jittered
 * backoff ({@link Backoff}), a Retry-After floor, a total deadline, a shared {@link RetryBudget}, and one rule
 * that keeps retries from multiplying: only the outermost retry stage retries.
 *
 * ```ts
 * call.pipe(Retry.retry({ profile: "interactive", budget, key: "openai/gpt-4o-mini" }))
 * llm.stream(request).pipe(Retry.retryStream({ profile: "interactive", budget, key: "openai/gpt-4o-mini" }))
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
 * the caller's to see (the text already delivered cannot be taken back).
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
import { Clock, Context, Duration, Effect, Metric, Schedule, Schema, Stream } from "effect"
import * as Backoff from "./Backoff.ts"
import { floorRetryAfter, retryAfterOf } from "./internal/backoff.ts"
import {
  type AttemptError,
  DeadlineExceeded,
  isRetryable,
  RetryAfterTooLong,
  RetryBudgetExhausted
} from "./LlmError.ts"
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

// ---------------------------------------------------------------------------------------------------------
// one layer only
// ---------------------------------------------------------------------------------------------------------

/**
 * `true` inside the attempts of a retry stage. A retry stage that finds it set passes errors through
 * instead of retrying, so retries happen at exactly one layer. Other stages that multiply attempts (e.g.
 * hedging) can read it too.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "@llm-resilience/core"
 * const inside = Effect.gen(function*() {
 *   return yield* Retry.InsideRetry
 * }).pipe(Retry.retry()) // true
 * ```
 * @since 0.1.0
 */
export const InsideRetry = Context.Reference<boolean>("@llm-resilience/core/Retry/InsideRetry", {
  defaultValue: () => false
})

// ---------------------------------------------------------------------------------------------------------
// telemetry
// ---------------------------------------------------------------------------------------------------------

/**
 * Retries performed, by `reason` (the error's tag, e.g. `RateLimited`) and `key`.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { Retry } from "@llm-resilience/core"
 * const snapshot = Metric.value(Metric.withAttributes(Retry.retriesTotal, { reason: "Overloaded", key: "anthropic/claude" }))
 * ```
 * @since 0.1.0
 */
export const retriesTotal = Metric.counter("llm_retries", {
  description: "Retries performed by the retry stage, by reason (error tag) and key",
  incremental: true
})

/**
 * Calls that stopped retrying with an error, by `reason` (`not-retryable`, `max-retries`,
 * `retry-after-too-long`, `deadline`, `budget`) and `key`.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Retry } from "@llm-resilience/core"
 * const deadlines = Metric.value(Metric.withAttributes(Retry.giveUpsTotal, { reason: "deadline", key: "openai/gpt-4o" }))
 * ```
 * @since 0.1.0
 */
export const giveUpsTotal = Metric.counter("llm_retry_give_ups", {
  description: "Calls that stopped retrying with an error, by reason and key",
  incremental: true
})

/**
 * Retries refused by the retry budget, by `key`.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Retry } from "@llm-resilience/core"
 * const rejected = Metric.value(Metric.withAttributes(Retry.budgetRejectionsTotal, { key: "openai/gpt-4o" }))
 * ```
 * @since 0.1.0
 */
export const budgetRejectionsTotal = Metric.counter("llm_retry_budget_rejections", {
  description: "Retries refused by the retry budget, by key",
  incremental: true
})

/** Why a wait was chosen, or why the stage gave up. */
type Reason =
  "backoff" | "retry-after" | "not-retryable" | "max-retries" | "retry-after-too-long" | "deadline" | "budget"

const spanEvent = (attributes: Record<string, unknown>): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    const span = fiber.cache.span
    if (span !== undefined && span._tag === "Span" && span.status._tag !== "Ended") {
      span.event("llm.retry", fiber.getRef(Clock.Clock).currentTimeNanosUnsafe(), attributes)
    }
    return Effect.void
  })

const tagOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : "unknown"

const retryable = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "_tag" in error && isRetryable(error as { readonly _tag: string })

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
 * const options: Retry.Options = { profile: "background", key: "anthropic/claude-sonnet-4" }
 * ```
 * @since 0.1.0
 */
export interface Options {
  readonly profile?: Profile | "interactive" | "background" | undefined
  readonly budget?: RetryBudget | undefined
  readonly key?: string | undefined
}

interface Config {
  readonly profile: Profile
  readonly schedule: Schedule.Schedule<Duration.Duration>
  readonly budget: RetryBudget | undefined
  readonly key: string
}

const configOf = (options: Options | undefined): Config => {
  const p = namedProfile(options?.profile)
  return {
    profile: p,
    schedule: Backoff.make(p.jitter, { base: p.baseMs, cap: p.capMs }),
    budget: options?.budget,
    key: options?.key ?? "default"
  }
}

/**
 * Adds the {@link InsideRetry} mark to a context. Contexts are immutable and a stage usually runs under the
 * same parent context call after call, so the last marked context is reused instead of allocating one per call.
 */
const mark: <R>(context: Context.Context<R>) => Context.Context<R> = (() => {
  let parent: Context.Context<never> | undefined
  let child: Context.Context<never> | undefined
  return <R>(context: Context.Context<R>): Context.Context<R> => {
    if (context !== parent || child === undefined) {
      parent = context as Context.Context<never>
      child = Context.add(context, InsideRetry, true) as Context.Context<never>
    }
    return child as Context.Context<R>
  }
})()

type Step = (now: number, input: unknown) => Effect.Effect<[Duration.Duration, Duration.Duration], unknown>

/**
 * The retry state of one call, created at its first failure. `next(error)` decides: it either sleeps the
 * chosen delay and succeeds (try again) or fails with the error the call ends with.
 */
const makeRetrier = (config: Config, startMs: number) => {
  const { budget, key, profile: p } = config
  let attempt = 1
  let step: Step | undefined
  const giveUp = <E>(error: E, reason: Reason, delayMs: number | undefined, cause: unknown) =>
    Effect.andThen(
      Effect.andThen(
        spanEvent({
          "llm.retry.attempt": attempt,
          "llm.retry.error": tagOf(cause),
          "llm.retry.decision": "give-up",
          "llm.retry.reason": reason,
          "llm.retry.delay_ms": delayMs,
          "llm.retry.key": key
        }),
        Metric.update(Metric.withAttributes(giveUpsTotal, { reason, key }), 1)
      ),
      Effect.fail(error)
    )
  return Effect.fnUntraced(function* <E>(error: E) {
    if (!retryable(error)) return yield* giveUp(error, "not-retryable", undefined, error)
    if (attempt > p.maxRetries) return yield* giveUp(error, "max-retries", undefined, error)
    const lastError = error as unknown as AttemptError
    const now = yield* Clock.currentTimeMillis
    step ??= (yield* Schedule.toStep(config.schedule)) as Step
    const [, jittered] = yield* Effect.orDie(step(now, error))
    const jitteredMs = Duration.toMillis(jittered)
    const retryAfterMs = retryAfterOf(error)
    const delayMs = floorRetryAfter(jitteredMs, retryAfterMs, p.maxRetryAfterMs)
    if (delayMs === undefined) {
      const tooLong = new RetryAfterTooLong({
        retryAfterMs: retryAfterMs!,
        maxRetryAfterMs: p.maxRetryAfterMs,
        lastError
      })
      return yield* giveUp(tooLong, "retry-after-too-long", retryAfterMs, error)
    }
    if (now - startMs + delayMs > p.deadlineMs) {
      return yield* giveUp(new DeadlineExceeded({ deadlineMs: p.deadlineMs, lastError }), "deadline", delayMs, error)
    }
    if (budget !== undefined && !(yield* budget.withdraw(key))) {
      yield* Metric.update(Metric.withAttributes(budgetRejectionsTotal, { key }), 1)
      return yield* giveUp(new RetryBudgetExhausted({ key, lastError }), "budget", undefined, error)
    }
    const reason: Reason = retryAfterMs !== undefined && retryAfterMs > jitteredMs ? "retry-after" : "backoff"
    yield* spanEvent({
      "llm.retry.attempt": attempt,
      "llm.retry.error": tagOf(error),
      "llm.retry.decision": "retry",
      "llm.retry.reason": reason,
      "llm.retry.delay_ms": delayMs,
      "llm.retry.key": key
    })
    yield* Metric.update(Metric.withAttributes(retriesTotal, { reason: tagOf(error), key }), 1)
    attempt++
    yield* Effect.sleep(Duration.millis(delayMs))
  })
}

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
 *   const request = { model: "gpt-4o-mini", messages: [{ role: "user" as const, content: "Hi" }] }
 *   return yield* llm.complete(request).pipe(
 *     Retry.retry({ profile: "interactive", budget, key: `${llm.name}/gpt-4o-mini` })
 *   )
 * })
 * ```
 * @since 0.1.0
 */
export const retry = (
  options?: Options
): (<A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Rejection, R>) => retryWith(configOf(options))

const retryWith = (config: Config): (<A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Rejection, R>) => {
  const after = retryAfter(config)
  return <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | Rejection, R> => {
    return Effect.withFiber((fiber) => {
      if (fiber.getRef(InsideRetry)) return self
      const startMs = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const retrying = (error: E): Effect.Effect<A, E | Rejection, R> => after(self, startMs, error)
      // The first attempt: one frame that both restores the context and catches, where `Effect.updateContext`
      // plus `Effect.catch` would push two (the happy path allocates no retry machinery). The frame is in
      // place before the mark is set, so the context is restored however the attempt ends.
      const prev = fiber.context as Context.Context<R>
      const first = Effect.matchCauseEffect(
        Effect.withFiber<A, E, R>((inner) => {
          inner.setContext(mark(prev) as Context.Context<never>)
          return self
        }),
        {
          onSuccess: (a: A): Effect.Effect<A, E | Rejection, R> => {
            fiber.setContext(prev as Context.Context<never>)
            return Effect.succeed(a)
          },
          onFailure: (cause) => {
            fiber.setContext(prev as Context.Context<never>)
            return Effect.catch(Effect.failCause(cause), retrying)
          }
        }
      )
      const budget = config.budget
      if (budget === undefined) return first
      const deposited = budget.depositAt(config.key, startMs)
      return Effect.isEffect(deposited) ? Effect.andThen(deposited, first) : first
    })
  }
}

/** What follows a failed first attempt: decide, sleep, run `self` again (marked), until it succeeds or gives up. */
const retryAfter =
  (config: Config) =>
  <A, E, R>(self: Effect.Effect<A, E, R>, startMs: number, error: E): Effect.Effect<A, E | Rejection, R> => {
    const marked = Effect.updateContext(self, mark<R>)
    const next = makeRetrier(config, startMs)
    const loop = (e: E): Effect.Effect<A, E | Rejection, R> => Effect.andThen(next(e), Effect.catch(marked, loop))
    return loop(error)
  }

/**
 * {@link retry} and its parts, from one configuration, for a caller that runs the first attempt itself (the
 * composed pipeline's one step per call): the budget to deposit into, the mark for the attempt's context, and
 * what follows a failed first attempt that started at `startMs`.
 *
 * @internal
 */
export const stage = (options?: Options) => {
  const config = configOf(options)
  return { budget: config.budget, key: config.key, mark, after: retryAfter(config), retry: retryWith(config) }
}

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
 *   const request = { model: "gpt-4o-mini", messages: [{ role: "user" as const, content: "Hi" }] }
 *   return yield* llm.stream(request).pipe(Retry.retryStream({ profile: "interactive" }), Stream.runCollect)
 * })
 * ```
 * @since 0.1.0
 */
export const retryStream = (
  options?: Options
): (<A, E, R>(self: Stream.Stream<A, E, R>) => Stream.Stream<A, E | Rejection, R>) => {
  const config = configOf(options)
  return <A, E, R>(self: Stream.Stream<A, E, R>): Stream.Stream<A, E | Rejection, R> =>
    Stream.unwrap(
      Effect.withFiber((fiber) => {
        if (fiber.getRef(InsideRetry)) return Effect.succeed<Stream.Stream<A, E | Rejection, R>>(self)
        const startMs = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
        let next: ((error: E) => Effect.Effect<void, E | Rejection>) | undefined
        const attempt = (): Stream.Stream<A, E | Rejection, R> =>
          Stream.suspend(() => {
            let emitted = false
            return self.pipe(
              Stream.mapArray((chunk) => {
                emitted = true
                return chunk
              }),
              Stream.catch((error: E): Stream.Stream<A, E | Rejection, R> => {
                if (emitted) return Stream.fail(error)
                next ??= makeRetrier(config, startMs)
                return Stream.unwrap(Effect.as(next(error), attempt()))
              })
            )
          })
        const marked = attempt().pipe(Stream.provideService(InsideRetry, true))
        return Effect.succeed(
          config.budget === undefined ? marked : Stream.unwrap(Effect.as(config.budget.deposit(config.key), marked))
        )
      })
    )
}

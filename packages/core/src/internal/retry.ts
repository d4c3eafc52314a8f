/**
 * The retry engine behind `Retry`: the one-layer mark, what follows a failed attempt (decide, sleep, try
 * again), and the parts the pipeline runs around its own first attempt (internal/pipeline.ts).
 *
 * @internal
 */
import { Clock, Context, Duration, Effect, Metric, Schedule, Stream } from "effect"
import * as Backoff from "../Backoff.ts"
import * as CallReport from "../CallReport.ts"
import {
  type AttemptError,
  DeadlineExceeded,
  isRetryable,
  RetryAfterTooLong,
  RetryBudgetExhausted
} from "../LlmError.ts"
import type { Profile, Rejection } from "../Retry.ts"
import type { RetryBudget } from "../RetryBudget.ts"
import { floorRetryAfter, retryAfterOf } from "./backoff.ts"
import { tagged } from "./metrics.ts"
import type { Trail } from "./report.ts"

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
 * const deadlines = Metric.value(Metric.withAttributes(Retry.giveUpsTotal, { reason: "deadline", key: "openai/gpt-5.4" }))
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
 * const rejected = Metric.value(Metric.withAttributes(Retry.budgetRejectionsTotal, { key: "openai/gpt-5.4" }))
 * ```
 * @since 0.1.0
 */
export const budgetRejectionsTotal = Metric.counter("llm_retry_budget_rejections", {
  description: "Retries refused by the retry budget, by key",
  incremental: true
})

/** Why a wait was chosen, or why the stage gave up. */
type Reason =
  | "backoff"
  | "retry-after"
  | "not-retryable"
  | "silent-timeout"
  | "max-retries"
  | "retry-after-too-long"
  | "deadline"
  | "budget"

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

/** A retry stage's configuration, resolved. */
export interface Config {
  readonly profile: Profile
  readonly schedule: Schedule.Schedule<Duration.Duration>
  readonly budget: RetryBudget | undefined
  readonly key: string
  /** The `key` label of the retry metrics (the key itself, or `provider/other` for a model not configured). */
  readonly label: string
  /**
   * Give up at once on a timeout of an attempt that received nothing (a `first-token` timeout, or a `total`
   * one before any chunk) instead of retrying the silent route, so that a fallback plan moves on.
   */
  readonly failOverOnSilence: boolean
}

/** A timeout of an attempt that received nothing: retrying the same route only repeats the wait. */
const silent = (error: unknown, received: boolean): boolean =>
  typeof error === "object" &&
  error !== null &&
  (error as { readonly _tag?: unknown })._tag === "Timeout" &&
  ((error as { readonly phase?: unknown }).phase === "first-token" ||
    (!received && (error as { readonly phase?: unknown }).phase === "total"))

/**
 * Adds the {@link InsideRetry} mark to a context. Contexts are immutable and a stage usually runs under the
 * same parent context call after call, so the last marked context is reused instead of allocating one per call.
 */
export const mark: <R>(context: Context.Context<R>) => Context.Context<R> = (() => {
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
export const makeRetrier = (config: Config, startMs: number, trail?: Trail) => {
  const { budget, key, label, profile: p } = config
  let attempt = 1
  let step: Step | undefined
  const giveUp = <E>(error: E, reason: Reason, delayMs: number | undefined, cause: unknown) => {
    trail?.push(tagOf(cause), "gave-up", reason)
    const n = attempt
    return Effect.andThen(
      Effect.andThen(
        spanEvent({
          "llm.retry.attempt": attempt,
          "llm.retry.error": tagOf(cause),
          "llm.retry.decision": "give-up",
          "llm.retry.reason": reason,
          "llm.retry.delay_ms": delayMs,
          "llm.retry.key": key
        }),
        Metric.update(tagged(giveUpsTotal, { reason, key: label }), 1)
      ),
      Effect.andThen(
        CallReport.emit(() => ({ _tag: "GaveUp", key, attempt: n, error: tagOf(cause), reason })),
        Effect.fail(error)
      )
    )
  }
  return Effect.fnUntraced(function* <E>(error: E, received = false) {
    if (!retryable(error)) return yield* giveUp(error, "not-retryable", undefined, error)
    if (config.failOverOnSilence && silent(error, received)) {
      return yield* giveUp(error, "silent-timeout", undefined, error)
    }
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
      yield* Metric.update(tagged(budgetRejectionsTotal, { key: label }), 1)
      yield* CallReport.emit(() => ({ _tag: "BudgetRefused", key, error: tagOf(error) }))
      return yield* giveUp(new RetryBudgetExhausted({ key, lastError }), "budget", undefined, error)
    }
    const reason: "backoff" | "retry-after" =
      retryAfterMs !== undefined && retryAfterMs > jitteredMs ? "retry-after" : "backoff"
    yield* spanEvent({
      "llm.retry.attempt": attempt,
      "llm.retry.error": tagOf(error),
      "llm.retry.decision": "retry",
      "llm.retry.reason": reason,
      "llm.retry.delay_ms": delayMs,
      "llm.retry.key": key
    })
    yield* Metric.update(tagged(retriesTotal, { reason: tagOf(error), key: label }), 1)
    trail?.push(tagOf(error), "retry", reason, delayMs)
    const n = attempt
    yield* CallReport.emit(() => ({ _tag: "Retried", key, attempt: n, error: tagOf(error), reason, delayMs }))
    attempt++
    yield* Effect.sleep(Duration.millis(delayMs))
  })
}

/**
 * A resolved configuration for `profile`, `budget` and `key`, its metrics labelled with `label`;
 * `failOverOnSilence` (default `false`) gives up on silent timeouts.
 */
export const configFor = (
  profile: Profile,
  budget: RetryBudget | undefined,
  key: string,
  label: string = key,
  failOverOnSilence = false
): Config => ({
  profile,
  schedule: Backoff.make(profile.jitter, { base: profile.baseMs, cap: profile.capMs }),
  budget,
  key,
  label,
  failOverOnSilence
})

export const retryWith = (
  config: Config
): (<A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Rejection, R>) => {
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
  <A, E, R>(
    self: Effect.Effect<A, E, R>,
    startMs: number,
    error: E,
    trail?: Trail
  ): Effect.Effect<A, E | Rejection, R> => {
    const marked = Effect.updateContext(self, mark<R>)
    const next = makeRetrier(config, startMs, trail)
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
export const stage = (config: Config) => {
  return { budget: config.budget, key: config.key, mark, after: retryAfter(config), retry: retryWith(config) }
}

/**
 * Retries a stream: a failure before its first chunk is retried like an effect's; a failure after it passes
 * through, unless `carryOn` is given: then it is retried too, with the stream `carryOn(error)` returns (the
 * attempt that carries on after what was delivered, internal/resume.ts).
 */
export const retryStreamWith =
  (config: Config) =>
  <A, E, R>(
    self: Stream.Stream<A, E, R>,
    carryOn?: (error: E) => Stream.Stream<A, E, R>
  ): Stream.Stream<A, E | Rejection, R> =>
    Stream.unwrap(
      Effect.withFiber((fiber) => {
        if (fiber.getRef(InsideRetry)) return Effect.succeed<Stream.Stream<A, E | Rejection, R>>(self)
        const startMs = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
        let next: ((error: E, received?: boolean) => Effect.Effect<void, E | Rejection>) | undefined
        const attempt = (current: Stream.Stream<A, E, R>): Stream.Stream<A, E | Rejection, R> =>
          Stream.suspend(() => {
            let emitted = false
            return current.pipe(
              Stream.mapArray((chunk) => {
                emitted = true
                return chunk
              }),
              Stream.catch((error: E): Stream.Stream<A, E | Rejection, R> => {
                if (emitted && carryOn === undefined) return Stream.fail(error)
                next ??= makeRetrier(config, startMs)
                return Stream.unwrap(
                  Effect.as(next(error, emitted), attempt(carryOn === undefined ? self : carryOn(error)))
                )
              })
            )
          })
        const marked = attempt(self).pipe(Stream.provideService(InsideRetry, true))
        return config.budget === undefined
          ? Effect.succeed(marked)
          : Effect.as(config.budget.deposit(config.key), marked)
      })
    )

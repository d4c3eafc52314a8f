/**
 * Backoff delays for retries, as Effect `Schedule`s that draw randomness from Effect's `Random` service, so a
 * fixed or seeded `Random` makes every delay exact in tests.
 *
 * Four kinds, after the AWS Architecture Blog's "Exponential Backoff and Jitter" (n = 0 for the first retry):
 *
 * | kind           | delay before retry n+1                          |
 * |----------------|-------------------------------------------------|
 * | `none`         | `min(cap, base * 2^n)` (plain exponential)      |
 * | `full`         | `U(0, min(cap, base * 2^n))`                    |
 * | `equal`        | `v/2 + U(0, v/2)` with `v = min(cap, base*2^n)` |
 * | `decorrelated` | `min(cap, U(base, previous * 3))`, previous₀ = base |
 *
 * {@link withRetryAfter} then applies a provider's Retry-After as a floor after the jitter
 * (`max(jittered, retryAfter)`), and refuses to wait at all when the provider asks for more than
 * `maxRetryAfter`: the schedule fails with {@link LlmError.RetryAfterTooLong} so that a fallback can act now.
 *
 * The schedules never end on their own: bound them with `Schedule.upTo({ times })`, or use `Retry.retry`,
 * which adds attempts, deadlines, budgets and the retryable-error filter.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Random, Schedule } from "effect"
import type { AttemptError } from "./LlmError.ts"
import { RetryAfterTooLong } from "./LlmError.ts"
import {
  capped,
  defaultBaseMs,
  defaultCapMs,
  defaultMaxRetryAfterMs,
  floorRetryAfter,
  millisOf,
  retryAfterOf
} from "./internal/backoff.ts"

/**
 * The jitter applied to the exponential delay. `none` is plain capped exponential backoff.
 *
 * @example
 * ```ts
 * import type { Backoff } from "@llm-resilience/core"
 * const kind: Backoff.Jitter = "full"
 * ```
 * @since 0.1.0
 */
export type Jitter = "none" | "full" | "equal" | "decorrelated"

/**
 * Parameters shared by every backoff kind.
 *
 * - `base` (default 100 ms): the first (un-jittered) delay.
 * - `cap` (default 20 s): no delay exceeds it.
 *
 * A negative or malformed duration throws a `RangeError` naming the option when the schedule is built.
 *
 * @example
 * ```ts
 * import type { Backoff } from "@llm-resilience/core"
 * const options: Backoff.Options = { base: "250 millis", cap: "5 seconds" }
 * ```
 * @since 0.1.0
 */
export interface Options {
  readonly base?: Duration.Input | undefined
  readonly cap?: Duration.Input | undefined
}

const resolve = (options: Options | undefined): { readonly base: number; readonly cap: number } => ({
  base: millisOf("Backoff.base", options?.base, defaultBaseMs),
  cap: millisOf("Backoff.cap", options?.cap, defaultCapMs)
})

const pair = (ms: number): [Duration.Duration, Duration.Duration] => {
  const d = Duration.millis(ms)
  return [d, d]
}

/**
 * A schedule whose delay before retry `n + 1` is computed from `n` and exactly one uniform draw `u` in [0, 1)
 * from Effect's `Random`. `delay` may keep state between calls (decorrelated jitter does), so a fresh closure
 * is made for every run of the schedule.
 */
const randomized = (makeDelay: () => (n: number, u: number) => number): Schedule.Schedule<Duration.Duration> =>
  Schedule.fromStep(
    Effect.sync(() => {
      const delay = makeDelay()
      let n = 0
      return (_now: number, _input: unknown) => Effect.map(Random.next, (u) => pair(delay(n++, u)))
    })
  )

/**
 * Plain capped exponential backoff without jitter: `min(cap, base * 2^n)`. Deterministic; kept for comparison
 * (it synchronises clients that failed together, see `docs/benchmarks/jitter.md`).
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { Backoff } from "@llm-resilience/core"
 * // 100, 200, 400 ms
 * const policy = Backoff.exponential({ base: "100 millis", cap: "1 second" }).pipe(Schedule.upTo({ times: 3 }))
 * const program = Effect.fail("boom").pipe(Effect.retry(policy))
 * ```
 * @since 0.1.0
 */
export const exponential = (options?: Options): Schedule.Schedule<Duration.Duration> => {
  const { base, cap } = resolve(options)
  return Schedule.fromStep(
    Effect.sync(() => {
      let n = 0
      return (_now: number, _input: unknown) => Effect.succeed(pair(capped(base, cap, n++)))
    })
  )
}

/**
 * Full jitter: `U(0, min(cap, base * 2^n))`. The AWS recommendation: fewest calls under contention.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { Backoff } from "@llm-resilience/core"
 * const policy = Backoff.fullJitter({ base: "200 millis", cap: "10 seconds" }).pipe(Schedule.upTo({ times: 5 }))
 * const program = Effect.fail("boom").pipe(Effect.retry(policy))
 * ```
 * @since 0.1.0
 */
export const fullJitter = (options?: Options): Schedule.Schedule<Duration.Duration> => {
  const { base, cap } = resolve(options)
  return randomized(() => (n, u) => u * capped(base, cap, n))
}

/**
 * Equal jitter: half the exponential delay fixed, half random: `v/2 + U(0, v/2)` with `v = min(cap, base*2^n)`.
 * Never retries immediately, at the price of more total wait.
 *
 * @example
 * ```ts
 * import { Backoff } from "@llm-resilience/core"
 * const schedule = Backoff.equalJitter({ base: "100 millis", cap: "5 seconds" })
 * ```
 * @since 0.1.0
 */
export const equalJitter = (options?: Options): Schedule.Schedule<Duration.Duration> => {
  const { base, cap } = resolve(options)
  return randomized(() => (n, u) => {
    const half = capped(base, cap, n) / 2
    return half + u * half
  })
}

/**
 * Decorrelated jitter: `min(cap, U(base, previous * 3))`, starting from `previous = base`. Each delay depends
 * on the previous one rather than on the attempt number.
 *
 * @example
 * ```ts
 * import { Backoff } from "@llm-resilience/core"
 * const schedule = Backoff.decorrelatedJitter({ base: "100 millis", cap: "5 seconds" })
 * ```
 * @since 0.1.0
 */
export const decorrelatedJitter = (options?: Options): Schedule.Schedule<Duration.Duration> => {
  const { base, cap } = resolve(options)
  return randomized(() => {
    let previous = base
    return (_n, u) => {
      previous = Math.min(cap, base + u * (previous * 3 - base))
      return previous
    }
  })
}

/**
 * The backoff schedule of the given kind.
 *
 * @example
 * ```ts
 * import { Backoff } from "@llm-resilience/core"
 * const schedule = Backoff.make("decorrelated", { base: "100 millis", cap: "5 seconds" })
 * ```
 * @since 0.1.0
 */
export const make = (jitter: Jitter, options?: Options): Schedule.Schedule<Duration.Duration> => {
  switch (jitter) {
    case "none":
      return exponential(options)
    case "full":
      return fullJitter(options)
    case "equal":
      return equalJitter(options)
    case "decorrelated":
      return decorrelatedJitter(options)
  }
}

/**
 * Default bound on a provider's Retry-After: 60 seconds.
 *
 * @since 0.1.0
 */
export const defaultMaxRetryAfter: Duration.Duration = Duration.millis(defaultMaxRetryAfterMs)

/**
 * Applies the Retry-After of the failure fed to the schedule as a floor after jitter,
 * `max(jittered, retryAfter)`, then bounds it: when the provider asks for more than `maxRetryAfter`
 * (default 60 s) the schedule fails at once with {@link RetryAfterTooLong}, carrying the error, instead of
 * sleeping. Failures without a Retry-After use the jittered delay unchanged.
 *
 * @example
 * ```ts
 * import { Effect, Schedule } from "effect"
 * import { Backoff, LlmError } from "@llm-resilience/core"
 *
 * const policy = Backoff.fullJitter({ base: "200 millis" }).pipe(
 *   Backoff.withRetryAfter({ maxRetryAfter: "30 seconds" }),
 *   Schedule.upTo({ times: 3 })
 * )
 * const call = Effect.fail(new LlmError.RateLimited({ message: "slow down", limit: "requests", retryAfterMs: 2000 }))
 * // waits 2 s (the floor) between attempts; a retryAfterMs of 90000 would fail with RetryAfterTooLong
 * const program = call.pipe(Effect.retry(policy))
 * ```
 * @since 0.1.0
 */
export const withRetryAfter: (options?: {
  readonly maxRetryAfter?: Duration.Input | undefined
}) => <E, R>(
  self: Schedule.Schedule<Duration.Duration, unknown, E, R>
) => Schedule.Schedule<Duration.Duration, AttemptError, E | RetryAfterTooLong, R> = (options) => {
  const maxMs = millisOf("Backoff.maxRetryAfter", options?.maxRetryAfter, defaultMaxRetryAfterMs)
  return <E, R>(self: Schedule.Schedule<Duration.Duration, unknown, E, R>) =>
    Schedule.fromStep(
      Effect.map(
        Schedule.toStep(self),
        (step) => (now: number, input: AttemptError) =>
          Effect.flatMap(step(now, input), ([, jittered]) => {
            const decision = floorRetryAfter(Duration.toMillis(jittered), retryAfterOf(input), maxMs)
            return decision === undefined
              ? Effect.fail(
                  new RetryAfterTooLong({
                    retryAfterMs: retryAfterOf(input)!,
                    maxRetryAfterMs: maxMs,
                    lastError: input
                  })
                )
              : Effect.succeed(pair(decision))
          })
      )
    )
}

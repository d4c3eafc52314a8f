/**
 * Backoff's arithmetic at its bounds: defaults, zero, the saturation point, a Retry-After exactly at its
 * maximum, and `make` choosing the kind it names.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Exit, Random, Schedule } from "effect"
import { Backoff, LlmError } from "@llm-resilience/core"
import { capped, floorRetryAfter, millisOf, retryAfterOf } from "../src/internal/backoff.ts"

/** The first `n` delays of a schedule, in milliseconds, fed `input` each time. */
const delays = <E>(schedule: Schedule.Schedule<Duration.Duration, never, E>, n: number, input?: unknown) =>
  Effect.gen(function* () {
    const step = yield* Schedule.toStep(schedule)
    const out: Array<number> = []
    for (let i = 0; i < n; i++) {
      const [d] = yield* step(0, input as never)
      out.push(Duration.toMillis(d))
    }
    return out
  })

const fixed = (u: number): Random.Random => ({ nextDoubleUnsafe: () => u, nextIntUnsafe: () => 0 })

describe("Backoff: bounds", () => {
  it("capped saturates at the cap, also where 2^n overflows", () => {
    assert.strictEqual(capped(100, 1_000, 0), 100)
    assert.strictEqual(capped(100, 1_000, 3), 800)
    assert.strictEqual(capped(100, 1_000, 4), 1_000)
    assert.strictEqual(capped(0, 1_000, 1023), 0)
    assert.strictEqual(capped(0, 1_000, 1024), 1_000)
    assert.strictEqual(capped(1, 1_000, 5_000), 1_000)
  })

  it("millisOf: the fallback when absent, zero allowed, a named RangeError otherwise", () => {
    assert.strictEqual(millisOf("f", undefined, 7), 7)
    assert.strictEqual(millisOf("f", 0, 7), 0)
    assert.strictEqual(millisOf("f", "2 seconds", 7), 2_000)
    assert.throws(() => millisOf("Backoff.base", -1, 7), RangeError, "Backoff.base")
    assert.throws(() => millisOf("Backoff.cap", "soon" as Duration.Input, 7), RangeError, "Backoff.cap")
    assert.throws(() => Backoff.exponential({ base: -1 }), RangeError, "Backoff.base")
    assert.throws(() => Backoff.fullJitter({ cap: -1 }), RangeError, "Backoff.cap")
    assert.throws(() => Backoff.withRetryAfter({ maxRetryAfter: -1 }), RangeError, "Backoff.maxRetryAfter")
  })

  it("retryAfterOf reads a non-negative number only", () => {
    assert.strictEqual(retryAfterOf({ retryAfterMs: 0 }), 0)
    assert.strictEqual(retryAfterOf({ retryAfterMs: 1_500 }), 1_500)
    assert.isUndefined(retryAfterOf({ retryAfterMs: -1 }))
    assert.isUndefined(retryAfterOf({ retryAfterMs: "5" }))
    assert.isUndefined(retryAfterOf({}))
    assert.isUndefined(retryAfterOf(null))
    assert.isUndefined(retryAfterOf(5))
  })

  it("floorRetryAfter: the longer of the two; a Retry-After exactly at the bound is still waited", () => {
    assert.strictEqual(floorRetryAfter(300, undefined, 1_000), 300)
    assert.strictEqual(floorRetryAfter(300, 200, 1_000), 300)
    assert.strictEqual(floorRetryAfter(300, 700, 1_000), 700)
    assert.strictEqual(floorRetryAfter(300, 1_000, 1_000), 1_000)
    assert.isUndefined(floorRetryAfter(300, 1_001, 1_000))
  })

  it.effect("defaults: 100 ms doubling up to 20 s", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(
        yield* delays(Backoff.exponential(), 10),
        [100, 200, 400, 800, 1_600, 3_200, 6_400, 12_800, 20_000, 20_000]
      )
      // full jitter at u = 1 reaches the un-jittered delay; at u = 0 nothing
      assert.deepStrictEqual(
        yield* delays(Backoff.fullJitter(), 3).pipe(Effect.provideService(Random.Random, fixed(1))),
        [100, 200, 400]
      )
      assert.deepStrictEqual(
        yield* delays(Backoff.fullJitter(), 2).pipe(Effect.provideService(Random.Random, fixed(0))),
        [0, 0]
      )
    })
  )

  it.effect("make builds the kind it names", () =>
    Effect.gen(function* () {
      const options: Backoff.Options = { base: "100 millis", cap: "10 seconds" }
      const pairs = [
        ["none", Backoff.exponential(options)],
        ["full", Backoff.fullJitter(options)],
        ["equal", Backoff.equalJitter(options)],
        ["decorrelated", Backoff.decorrelatedJitter(options)]
      ] as const
      const seen = new Set<string>()
      for (const [jitter, direct] of pairs) {
        const viaMake = yield* delays(Backoff.make(jitter, options), 4).pipe(
          Effect.provideService(Random.Random, fixed(0.25))
        )
        const expected = yield* delays(direct, 4).pipe(Effect.provideService(Random.Random, fixed(0.25)))
        assert.deepStrictEqual(viaMake, expected, jitter)
        seen.add(JSON.stringify(expected))
      }
      // the four kinds really differ at u = 0.25
      assert.strictEqual(seen.size, 4)
    })
  )

  it.effect("withRetryAfter: waits a Retry-After of exactly the maximum, refuses one above it", () =>
    Effect.gen(function* () {
      const schedule = Backoff.exponential({ base: "10 millis" }).pipe(Backoff.withRetryAfter())
      const at = new LlmError.RateLimited({ message: "r", limit: "requests", retryAfterMs: 60_000 })
      assert.deepStrictEqual(yield* delays(schedule, 1, at), [60_000])
      const short = new LlmError.RateLimited({ message: "r", limit: "requests", retryAfterMs: 5 })
      assert.deepStrictEqual(yield* delays(schedule, 2, short), [10, 20])
      const above = new LlmError.RateLimited({ message: "r", limit: "requests", retryAfterMs: 60_001 })
      const exit = yield* Effect.exit(delays(schedule, 1, above))
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      const failure = (error as { error?: LlmError.RetryAfterTooLong } | undefined)?.error
      assert.strictEqual(failure?._tag, "RetryAfterTooLong")
      assert.strictEqual(failure?.retryAfterMs, 60_001)
      assert.strictEqual(failure?.maxRetryAfterMs, 60_000)
      assert.strictEqual(failure?.lastError, above)
      assert.strictEqual(Duration.toMillis(Backoff.defaultMaxRetryAfter), 60_000)
    })
  )
})

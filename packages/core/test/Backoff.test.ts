import { assert, describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, Fiber, Random, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { Backoff, LlmError } from "@llm-resilience/core"

/** A Random that returns the given doubles in order, cycling. */
const sequenceRandom = (values: ReadonlyArray<number>): Random.Random => {
  let i = 0
  return {
    nextDoubleUnsafe: () => values[i++ % values.length]!,
    nextIntUnsafe: () => 0
  }
}

const U = [0.1, 0.9, 0.5, 0.3, 0.7]
const opts = { base: "100 millis", cap: "1 second" } as const

/** Runs an always-failing effect under `Effect.retry(schedule + upTo 5)` and returns the attempt times. */
const attemptTimes = (schedule: Schedule.Schedule<Duration.Duration>) =>
  Effect.gen(function* () {
    const times: Array<number> = []
    const failing = Effect.flatMap(Clock.currentTimeMillis, (now) => {
      times.push(now)
      return Effect.fail("boom")
    })
    const fiber = yield* failing.pipe(
      Effect.retry(schedule.pipe(Schedule.upTo({ times: 5 }))),
      Effect.provideService(Random.Random, sequenceRandom(U)),
      Effect.forkChild
    )
    yield* TestClock.adjust("10 seconds")
    const exit = yield* Fiber.await(fiber)
    assert.isTrue(Exit.isFailure(exit))
    return times.map((t) => Math.round(t * 1000) / 1000)
  })

describe("Backoff", () => {
  it.effect("none: attempts at exact capped exponential times", () =>
    Effect.gen(function* () {
      // delays 100, 200, 400, 800, min(1000, 1600)
      expect(yield* attemptTimes(Backoff.exponential(opts))).toEqual([0, 100, 300, 700, 1500, 2500])
    })
  )

  it.effect("full jitter: U(0, min(cap, base*2^n)) under a fixed Random", () =>
    Effect.gen(function* () {
      // 0.1*100, 0.9*200, 0.5*400, 0.3*800, 0.7*1000
      expect(yield* attemptTimes(Backoff.fullJitter(opts))).toEqual([0, 10, 190, 390, 630, 1330])
    })
  )

  it.effect("equal jitter: v/2 + U(0, v/2) under a fixed Random", () =>
    Effect.gen(function* () {
      // 50+5, 100+90, 200+100, 400+120, 500+350
      expect(yield* attemptTimes(Backoff.equalJitter(opts))).toEqual([0, 55, 245, 545, 1065, 1915])
    })
  )

  it.effect("decorrelated jitter: min(cap, U(base, previous*3)) under a fixed Random", () =>
    Effect.gen(function* () {
      // 100+0.1*(300-100)=120; 100+0.9*(360-100)=334; 100+0.5*(1002-100)=551;
      // 100+0.3*(1653-100)=565.9; min(1000, 100+0.7*(1697.7-100)=1218.39)=1000
      expect(yield* attemptTimes(Backoff.decorrelatedJitter(opts))).toEqual([0, 120, 454, 1005, 1570.9, 2570.9])
    })
  )

  it.effect("make selects the kind; a seeded Random gives the same delays twice", () =>
    Effect.gen(function* () {
      const delays = (jitter: Backoff.Jitter) =>
        Effect.gen(function* () {
          const step = yield* Schedule.toStep(Backoff.make(jitter, opts))
          const out: Array<number> = []
          for (let i = 0; i < 6; i++) {
            const [d] = yield* step(0, undefined)
            out.push(Duration.toMillis(d))
          }
          return out
        }).pipe(Random.withSeed("backoff"))
      for (const jitter of ["none", "full", "equal", "decorrelated"] as const) {
        const a = yield* delays(jitter)
        expect(yield* delays(jitter)).toEqual(a)
        for (const d of a) expect(d).toBeLessThanOrEqual(1000)
      }
      expect(yield* delays("none")).toEqual([100, 200, 400, 800, 1000, 1000])
      // full jitter is random: not the plain exponential sequence
      expect(yield* delays("full")).not.toEqual([100, 200, 400, 800, 1000, 1000])
    })
  )

  it.effect("withRetryAfter: a Retry-After longer than the jittered delay wins, a shorter one does not", () =>
    Effect.gen(function* () {
      const schedule = Backoff.fullJitter(opts).pipe(Backoff.withRetryAfter())
      const step = yield* Schedule.toStep(schedule)
      const limited = (retryAfterMs: number) =>
        new LlmError.RateLimited({ message: "", limit: "requests", retryAfterMs })
      // jittered 0.1*100 = 10 < 2500
      const [first] = yield* step(0, limited(2500))
      // jittered 0.9*200 = 180 > 50
      const [second] = yield* step(0, limited(50))
      // no Retry-After: 0.5*400
      const [third] = yield* step(0, new LlmError.Overloaded({ message: "" }))
      expect([first, second, third].map(Duration.toMillis)).toEqual([2500, 180, 200])
    }).pipe(Effect.provideService(Random.Random, sequenceRandom(U)))
  )

  it.effect("withRetryAfter: above maxRetryAfter the schedule fails at once with RetryAfterTooLong", () =>
    Effect.gen(function* () {
      let calls = 0
      const error = new LlmError.RateLimited({ message: "", limit: "tokens", retryAfterMs: 90_000 })
      const exit = yield* Effect.suspend(() => {
        calls++
        return Effect.fail(error)
      }).pipe(
        Effect.retry(Backoff.fullJitter(opts).pipe(Backoff.withRetryAfter({ maxRetryAfter: "60 seconds" }))),
        Effect.exit
      )
      // no TestClock.adjust was needed: it never slept
      expect(calls).toBe(1)
      assert.isTrue(Exit.isFailure(exit))
      const failure = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      expect(failure?._tag).toBe("Fail")
      const e = failure?._tag === "Fail" ? failure.error : undefined
      assert.instanceOf(e, LlmError.RetryAfterTooLong)
      expect(e.retryAfterMs).toBe(90_000)
      expect(e.maxRetryAfterMs).toBe(60_000)
      expect(e.lastError).toBe(error)
    }).pipe(Effect.provideService(Random.Random, sequenceRandom(U)))
  )

  it("rejects a negative duration at construction, naming the option", () => {
    expect(() => Backoff.fullJitter({ base: -5 })).toThrow(/Backoff\.base/)
    expect(() => Backoff.exponential({ cap: "soon" as never })).toThrow(/Backoff\.cap/)
  })
})

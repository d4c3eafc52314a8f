import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Metric, Schedule, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { CircuitBreaker, LlmError, type LlmRequest, Resilience } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

const KEY = "openai/gpt-5.4"
const e503 = new LlmError.ServerError({ message: "service unavailable", status: 503 })
const fail503 = Effect.fail(e503)
const ok = Effect.succeed("ok")

const now = Clock.currentTimeMillis

/** Runs `n` calls of `self` through the breaker, in sequence, ignoring their results. */
const repeat = <A, E>(breaker: CircuitBreaker.CircuitBreaker, self: Effect.Effect<A, E>, n: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < n; i++) yield* Effect.exit(self.pipe(breaker.protect(KEY)))
  })

const tagOf = (breaker: CircuitBreaker.CircuitBreaker) => Effect.map(breaker.status(KEY), (s) => s._tag)

/** Collects every transition of `breaker` into an array, from now on. */
const collectTransitions = (breaker: CircuitBreaker.CircuitBreaker) =>
  Effect.gen(function* () {
    const seen: Array<CircuitBreaker.Transition> = []
    yield* breaker.transitions.pipe(
      Stream.runForEach((t) => Effect.sync(() => seen.push(t))),
      Effect.forkChild({ startImmediately: true })
    )
    return seen
  })

/** A call that counts how often it ran. */
const counted = <A, E>(self: Effect.Effect<A, E>) => {
  const state = { runs: 0 }
  return {
    state,
    call: Effect.suspend(() => {
      state.runs++
      return self
    })
  }
}

describe("CircuitBreaker", () => {
  it.effect("consecutive failures open the circuit; a rejection is a typed CircuitOpen that makes no call", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 3, openDuration: "10 seconds" })
      const { state, call } = counted(fail503)
      yield* repeat(breaker, call, 3)
      assert.strictEqual(state.runs, 3)
      const rejected = yield* Effect.flip(call.pipe(breaker.protect(KEY)))
      assert.strictEqual(state.runs, 3)
      assert.strictEqual(rejected._tag, "CircuitOpen")
      assert.deepStrictEqual(
        { key: (rejected as LlmError.CircuitOpen).key, retryAfterMs: (rejected as LlmError.CircuitOpen).retryAfterMs },
        { key: KEY, retryAfterMs: 10_000 }
      )
      yield* TestClock.adjust("4 seconds")
      const later = yield* Effect.flip(call.pipe(breaker.protect(KEY)))
      assert.strictEqual((later as LlmError.CircuitOpen).retryAfterMs, 6_000)
    })
  )

  it.effect("a success resets the consecutive-failure streak", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 3, failureRateThreshold: 1 })
      yield* repeat(breaker, fail503, 2)
      yield* repeat(breaker, ok, 1)
      yield* repeat(breaker, fail503, 2)
      assert.strictEqual(yield* tagOf(breaker), "Closed")
      yield* repeat(breaker, fail503, 1)
      assert.strictEqual(yield* tagOf(breaker), "Open")
    })
  )

  it.effect("the rate policy does not trip below its minimum number of calls", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 0,
        failureRateThreshold: 0.2,
        minimumCalls: 10,
        window: "60 seconds"
      })
      const seen = yield* collectTransitions(breaker)
      // 9 calls, all failing: 100% failures, but below the minimum of 10 calls
      yield* repeat(breaker, fail503, 9)
      assert.strictEqual(yield* tagOf(breaker), "Closed")
      // the 10th call reaches the minimum: 100% >= 20%
      yield* repeat(breaker, ok, 1)
      assert.strictEqual(yield* tagOf(breaker), "Open")
      yield* Effect.yieldNow
      assert.strictEqual(seen[0]?.reason, "failure-rate")
    })
  )

  it.effect("the failure rate is over a rolling time window: old failures leave it", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 0,
        failureRateThreshold: 0.2,
        minimumCalls: 10,
        window: "60 seconds"
      })
      yield* repeat(breaker, ok, 8)
      yield* repeat(breaker, fail503, 1) // 1 of 9
      yield* TestClock.adjust("61 seconds") // the window is empty again
      yield* repeat(breaker, ok, 9)
      yield* repeat(breaker, fail503, 1) // 1 of 10 = 10%
      assert.strictEqual(yield* tagOf(breaker), "Closed")
      yield* repeat(breaker, fail503, 2) // 3 of 12 = 25%
      assert.strictEqual(yield* tagOf(breaker), "Open")
    })
  )

  it.effect("fatal client errors and 429s do not count by default; 429s count when configured", () =>
    Effect.gen(function* () {
      const rateLimited = Effect.fail(
        new LlmError.RateLimited({ message: "slow down", limit: "requests", status: 429 })
      )
      const badRequest = Effect.fail(new LlmError.BadRequest({ message: "bad", status: 400 }))
      const lenient = yield* CircuitBreaker.make({ consecutiveFailures: 2, minimumCalls: 2 })
      yield* repeat(lenient, rateLimited, 5)
      yield* repeat(lenient, badRequest, 5)
      assert.strictEqual(yield* tagOf(lenient), "Closed")
      const strict = yield* CircuitBreaker.make({ consecutiveFailures: 2, countRateLimited: true })
      yield* repeat(strict, rateLimited, 2)
      assert.strictEqual(yield* tagOf(strict), "Open")
      const custom = yield* CircuitBreaker.make({ consecutiveFailures: 2, failureTags: ["BadRequest"] })
      yield* repeat(custom, badRequest, 2)
      assert.strictEqual(yield* tagOf(custom), "Open")
    })
  )

  it.effect("slow calls trip while still in flight, at the moment they pass the threshold", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 0,
        slowCallThreshold: "3 seconds",
        slowCallRateThreshold: 0.5,
        minimumCalls: 4
      })
      const seen = yield* collectTransitions(breaker)
      // 4 fast calls, then 4 calls that hang, started 500 ms apart
      yield* repeat(breaker, ok, 4)
      for (let i = 0; i < 4; i++) {
        yield* Effect.never.pipe(breaker.protect(KEY), Effect.forkChild({ startImmediately: true }))
        yield* TestClock.adjust("500 millis")
      }
      // at t = 2 s nothing is slow yet
      assert.strictEqual(yield* tagOf(breaker), "Closed")
      yield* TestClock.adjust("1 second") // t = 3 s: the first hung call is slow (1 of 5)
      const status = yield* breaker.status(KEY)
      assert.deepStrictEqual(status._tag === "Closed" ? [status.calls, status.slowCalls] : status._tag, [5, 1])
      // t = 4.5 s: all 4 hung calls are slow: 4 of 8 = 50%; none of them has ended
      yield* TestClock.adjust("1500 millis")
      assert.strictEqual(yield* tagOf(breaker), "Open")
      yield* Effect.yieldNow
      assert.deepStrictEqual(
        seen.map((t) => [t.to, t.reason, t.at]),
        [["Open", "slow-call-rate", 4_500]]
      )
    })
  )

  it.effect("completed slow calls count as slow; fast successes do not", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 3,
        slowCallThreshold: "2 seconds",
        slowCallRateThreshold: 1
      })
      const slowOk = Effect.sleep("2500 millis").pipe(Effect.as("late"))
      for (let i = 0; i < 3; i++) {
        const fiber = yield* slowOk.pipe(breaker.protect(KEY), Effect.forkChild({ startImmediately: true }))
        yield* TestClock.adjust("2500 millis")
        assert.strictEqual(yield* Fiber.join(fiber), "late")
      }
      // three slow calls in a row trip the consecutive policy
      assert.strictEqual(yield* tagOf(breaker), "Open")
    })
  )

  it.effect("half-open admits N probes, rejects the rest, and closes when all N succeed", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 1,
        halfOpenProbes: 2,
        openDuration: "10 seconds"
      })
      yield* repeat(breaker, fail503, 1)
      yield* TestClock.adjust("10 seconds")
      const { state, call } = counted(Effect.sleep("1 second").pipe(Effect.as("probe ok")))
      const p1 = yield* call.pipe(breaker.protect(KEY), Effect.forkChild({ startImmediately: true }))
      const p2 = yield* call.pipe(breaker.protect(KEY), Effect.forkChild({ startImmediately: true }))
      const third = yield* Effect.flip(call.pipe(breaker.protect(KEY)))
      assert.strictEqual(third._tag, "CircuitOpen")
      assert.strictEqual(state.runs, 2)
      assert.deepStrictEqual(yield* breaker.status(KEY), { _tag: "HalfOpen", key: KEY, probesInFlight: 2, openings: 1 })
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(p1)
      yield* Fiber.join(p2)
      assert.strictEqual(yield* tagOf(breaker), "Closed")
    })
  )

  it.effect("one failed probe of N reopens the circuit at once", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 1,
        halfOpenProbes: 2,
        openDuration: Schedule.exponential("10 seconds")
      })
      yield* repeat(breaker, fail503, 1)
      yield* TestClock.adjust("10 seconds")
      const slow = yield* Effect.sleep("5 seconds").pipe(
        breaker.protect(KEY),
        Effect.forkChild({ startImmediately: true })
      )
      yield* repeat(breaker, fail503, 1)
      assert.deepStrictEqual(yield* breaker.status(KEY), { _tag: "Open", key: KEY, retryAfterMs: 20_000, openings: 2 })
      // the other probe's late success belongs to the old half-open episode and changes nothing
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(slow)
      assert.strictEqual(yield* tagOf(breaker), "Open")
    })
  )

  it.effect("a hung probe is released after the probe timeout and the circuit reopens", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 1,
        openDuration: Schedule.exponential("10 seconds"),
        probeTimeout: "5 seconds"
      })
      const seen = yield* collectTransitions(breaker)
      yield* repeat(breaker, fail503, 1) // open at t = 0 for 10 s
      yield* TestClock.adjust("10 seconds")
      const { state, call } = counted(Effect.never)
      yield* call.pipe(breaker.protect(KEY), Effect.forkChild({ startImmediately: true })) // the probe hangs
      assert.strictEqual((yield* Effect.flip(call.pipe(breaker.protect(KEY))))._tag, "CircuitOpen")
      yield* TestClock.adjust("5 seconds") // t = 15 s: the probe times out
      assert.deepStrictEqual(yield* breaker.status(KEY), { _tag: "Open", key: KEY, retryAfterMs: 20_000, openings: 2 })
      yield* TestClock.adjust("20 seconds") // t = 35 s: a new probe is admitted (the old one still hangs)
      yield* ok.pipe(breaker.protect(KEY))
      assert.strictEqual(yield* tagOf(breaker), "Closed")
      assert.strictEqual(state.runs, 1)
      yield* Effect.yieldNow
      assert.deepStrictEqual(
        seen.map((t) => [t.from, t.to, t.reason, t.at]),
        [
          ["Closed", "Open", "consecutive-failures", 0],
          ["Open", "HalfOpen", "open-elapsed", 10_000],
          ["HalfOpen", "Open", "probe-timeout", 15_000],
          ["Open", "HalfOpen", "open-elapsed", 35_000],
          ["HalfOpen", "Closed", "probes-succeeded", 35_000]
        ]
      )
    })
  )

  it.effect("an interrupted probe frees its slot for the next caller", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "10 seconds" })
      yield* repeat(breaker, fail503, 1)
      yield* TestClock.adjust("10 seconds")
      const probe = yield* Effect.never.pipe(breaker.protect(KEY), Effect.forkChild({ startImmediately: true }))
      assert.strictEqual((yield* Effect.flip(ok.pipe(breaker.protect(KEY))))._tag, "CircuitOpen")
      yield* Fiber.interrupt(probe)
      assert.strictEqual(yield* ok.pipe(breaker.protect(KEY)), "ok")
      assert.strictEqual(yield* tagOf(breaker), "Closed")
    })
  )

  it.effect("the open duration grows on repeated trips up to its cap, and resets after a calm period", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 1,
        openDuration: Schedule.exponential("10 seconds"),
        maxOpenDuration: "60 seconds"
      })
      const openFor: Array<number> = []
      yield* repeat(breaker, fail503, 1)
      for (let i = 0; i < 5; i++) {
        const s = yield* breaker.status(KEY)
        if (s._tag !== "Open") return assert.fail(`expected Open, got ${s._tag}`)
        openFor.push(s.retryAfterMs)
        yield* TestClock.adjust(s.retryAfterMs)
        yield* repeat(breaker, fail503, 1) // the probe fails
      }
      assert.deepStrictEqual(openFor, [10_000, 20_000, 40_000, 60_000, 60_000])
      // recover, stay closed longer than the last opening: the backoff starts over
      yield* TestClock.adjust("60 seconds")
      yield* repeat(breaker, ok, 1)
      yield* TestClock.adjust("61 seconds")
      yield* repeat(breaker, fail503, 1)
      assert.deepStrictEqual(yield* breaker.status(KEY), { _tag: "Open", key: KEY, retryAfterMs: 10_000, openings: 1 })
    })
  )

  it.effect(
    "by default openings grow to at most 30 s: after a 60 s outage (a call every 4 s) the primary is used again within 30 s",
    () =>
      Effect.gen(function* () {
        for (const phase of [0, 500, 1_000, 1_500, 2_000, 2_500, 3_000, 3_500]) {
          const breaker = yield* CircuitBreaker.make()
          const transitions = yield* collectTransitions(breaker)
          const start = (yield* now) + phase
          const end = start + 60_000
          let recoveredAt: number | undefined
          const call = Effect.flatMap(now, (t) =>
            t >= start && t < end ? fail503 : Effect.sync(() => (recoveredAt ??= t >= end ? t : undefined))
          )
          for (let i = 0; i < 40; i++) {
            yield* Effect.exit(call.pipe(breaker.protect(KEY)))
            yield* TestClock.adjust("4 seconds")
          }
          assert.isDefined(recoveredAt, `phase ${phase}`)
          assert.isAtMost((recoveredAt ?? 0) - end, 30_000, `phase ${phase}`)
          const openings = transitions.filter((t) => t.to === "Open").map((t) => t.openForMs)
          assert.deepStrictEqual(openings, [10_000, 20_000, 30_000], `phase ${phase}`)
        }
      })
  )

  it.effect("in Resilience, metric series of unconfigured models collapse into provider/other", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ name: "fake", default: { text: "ok" } })
      const { stages } = yield* Resilience.make({ models: { "fake/m1": {} }, breaker: { consecutiveFailures: 1 } }, [
        fake.provider
      ])
      const keys = ["fake/m1", ...Array.from({ length: 30 }, (_, i) => `fake/caller-chosen-${i}`)]
      for (const key of keys) {
        yield* stages.breaker.record(key, CircuitBreaker.failure())
        assert.strictEqual((yield* Effect.flip(stages.breaker.admit(key)))._tag, "CircuitOpen")
      }
      const labels = (id: string) =>
        Effect.map(
          Metric.snapshot,
          (all) => new Set(all.filter((s) => s.id === id).map((s) => (s.attributes as Record<string, string>).key))
        )
      for (const id of ["llm_breaker_state", "llm_breaker_transitions", "llm_breaker_rejections"]) {
        assert.deepStrictEqual(yield* labels(id), new Set(["fake/m1", "fake/other"]), id)
      }
      // a standalone breaker keeps every key
      const standalone = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
      yield* standalone.record("p/a", CircuitBreaker.failure())
      assert.isTrue((yield* labels("llm_breaker_transitions")).has("p/a"))
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("openDurationMs in Resilience.Config is a fixed open time", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ name: "fake", default: { text: "ok" } })
      const { stages } = yield* Resilience.make({ breaker: { consecutiveFailures: 1, openDurationMs: 15_000 } }, [
        fake.provider
      ])
      const openFor: Array<number> = []
      for (let i = 0; i < 4; i++) {
        yield* stages.breaker.record("fake/m", CircuitBreaker.failure())
        const s = yield* stages.breaker.status("fake/m")
        if (s._tag !== "Open") return assert.fail(`expected Open, got ${s._tag}`)
        openFor.push(s.retryAfterMs)
        yield* TestClock.adjust(s.retryAfterMs)
        yield* stages.breaker.status("fake/m") // HalfOpen now: the next reported failure reopens
      }
      assert.deepStrictEqual(openFor, [15_000, 15_000, 15_000, 15_000])
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("a provider's Retry-After lengthens the opening, up to maxRetryAfter", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 2,
        openDuration: "10 seconds",
        maxRetryAfter: "2 minutes"
      })
      const overloaded = (retryAfterMs: number) =>
        Effect.fail(new LlmError.Overloaded({ message: "overloaded", status: 529, retryAfterMs }))
      yield* repeat(breaker, overloaded(45_000), 1)
      yield* repeat(breaker, fail503, 1)
      const first = yield* breaker.status(KEY)
      assert.deepStrictEqual(first, { _tag: "Open", key: KEY, retryAfterMs: 45_000, openings: 1 })
      yield* TestClock.adjust("45 seconds")
      yield* repeat(breaker, overloaded(600_000), 1) // the probe fails with a 10-minute hint: capped at 2 min
      assert.deepStrictEqual(yield* breaker.status(KEY), { _tag: "Open", key: KEY, retryAfterMs: 120_000, openings: 2 })
      // a hint shorter than the schedule does not shorten the opening
      yield* TestClock.adjust("120 seconds")
      yield* repeat(breaker, overloaded(1_000), 1)
      assert.deepStrictEqual(yield* breaker.status(KEY), { _tag: "Open", key: KEY, retryAfterMs: 10_000, openings: 3 })
    })
  )

  it.effect("isolate forces open, forceClosed never trips, reset returns to automatic", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, maxOpenDuration: "30 seconds" })
      const { state, call } = counted(ok)
      yield* breaker.isolate(KEY)
      const rejected = yield* Effect.flip(call.pipe(breaker.protect(KEY)))
      assert.deepStrictEqual(
        [rejected._tag, (rejected as LlmError.CircuitOpen).retryAfterMs, state.runs],
        ["CircuitOpen", 30_000, 0]
      )
      yield* TestClock.adjust("1 hour")
      assert.strictEqual(yield* tagOf(breaker), "Isolated")
      assert.strictEqual((yield* Effect.exit(breaker.check(KEY)))._tag, "Failure")

      yield* breaker.forceClosed(KEY)
      yield* repeat(breaker, fail503, 20)
      const forced = yield* breaker.status(KEY)
      assert.strictEqual(forced._tag, "ForcedClosed")
      assert.strictEqual(yield* call.pipe(breaker.protect(KEY)), "ok")

      yield* breaker.reset(KEY)
      assert.strictEqual(yield* tagOf(breaker), "Closed")
      yield* repeat(breaker, fail503, 1)
      assert.strictEqual(yield* tagOf(breaker), "Open")
    })
  )

  it.effect("metrics-only mode computes states and counts rejections but never rejects", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2, mode: "metrics-only" })
      const { state, call } = counted(fail503)
      yield* repeat(breaker, call, 5)
      assert.strictEqual(state.runs, 5)
      assert.strictEqual(yield* tagOf(breaker), "Open")
      yield* Effect.exit(breaker.check(KEY)).pipe(Effect.map((e) => assert.isTrue(Exit.isSuccess(e))))
      const rejections = yield* Metric.value(Metric.withAttributes(CircuitBreaker.metrics.rejections, { key: KEY }))
      assert.strictEqual(rejections.count, 3)
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("metrics: state gauge, transitions and rejections", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "5 seconds" })
      yield* repeat(breaker, fail503, 3) // 1 failure, 2 rejections
      const gauge = Metric.withAttributes(CircuitBreaker.metrics.state, { key: KEY })
      assert.strictEqual((yield* Metric.value(gauge)).value, 1)
      const rejections = yield* Metric.value(Metric.withAttributes(CircuitBreaker.metrics.rejections, { key: KEY }))
      assert.strictEqual(rejections.count, 2)
      yield* TestClock.adjust("5 seconds")
      yield* repeat(breaker, ok, 1)
      assert.strictEqual((yield* Metric.value(gauge)).value, 0)
      const toOpen = Metric.withAttributes(CircuitBreaker.metrics.transitions, { key: KEY, from: "Closed", to: "Open" })
      const toClosed = Metric.withAttributes(CircuitBreaker.metrics.transitions, {
        key: KEY,
        from: "HalfOpen",
        to: "Closed"
      })
      assert.deepStrictEqual([(yield* Metric.value(toOpen)).count, (yield* Metric.value(toClosed)).count], [1, 1])
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("check and status read a circuit without admitting a call", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "10 seconds" })
      yield* breaker.check(KEY)
      yield* repeat(breaker, fail503, 1)
      const error = yield* Effect.flip(breaker.check(KEY))
      assert.deepStrictEqual([error.key, error.retryAfterMs], [KEY, 10_000])
      yield* TestClock.adjust("10 seconds")
      // the probe slot is free: check succeeds, and does not take the slot
      yield* breaker.check(KEY)
      yield* breaker.check(KEY)
      assert.strictEqual(yield* ok.pipe(breaker.protect(KEY)), "ok")
      assert.strictEqual(yield* tagOf(breaker), "Closed")
    })
  )

  it.effect("record: another stage's failure counts, and reopens a half-open circuit", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 3, openDuration: "10 seconds" })
      yield* breaker.record(KEY, CircuitBreaker.failure())
      yield* breaker.record(KEY, CircuitBreaker.failure())
      yield* breaker.record(KEY, CircuitBreaker.failure())
      assert.strictEqual(yield* tagOf(breaker), "Open")
      yield* TestClock.adjust("10 seconds")
      const probe = yield* Effect.sleep("1 second").pipe(
        breaker.protect(KEY),
        Effect.forkChild({ startImmediately: true })
      )
      yield* breaker.record(KEY, CircuitBreaker.failure())
      assert.strictEqual(yield* tagOf(breaker), "Open")
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(probe)
    })
  )

  it.effect("admit / complete by hand, for streams", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
      const permit = yield* breaker.admit(KEY)
      assert.deepStrictEqual([permit.key, permit.probe], [KEY, false])
      yield* breaker.complete(permit, CircuitBreaker.failure())
      yield* breaker.complete(permit, CircuitBreaker.failure()) // a second completion is a no-op
      assert.strictEqual(yield* tagOf(breaker), "Open")
      assert.strictEqual((yield* Effect.flip(breaker.admit(KEY)))._tag, "CircuitOpen")
    })
  )

  it.effect("invalid options fail at construction with an error naming the field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        CircuitBreaker.make({ failureRateThreshold: 1.5, window: "soon" as never, halfOpenProbes: 0 })
      )
      assert.strictEqual(error._tag, "SchemaError")
      assert.include(error.message, "failureRateThreshold")
      assert.include(error.message, "window")
      assert.include(error.message, "halfOpenProbes")
    })
  )

  it.effect("keys are independent circuits", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
      yield* repeat(breaker, fail503, 1)
      assert.strictEqual(yield* ok.pipe(breaker.protect("anthropic/claude-sonnet-4-6")), "ok")
      assert.strictEqual(
        yield* ok.pipe(
          CircuitBreaker.withBreaker("x/y"),
          Effect.provideService(CircuitBreaker.CircuitBreaker, breaker)
        ),
        "ok"
      )
    })
  )
})

// ---------------------------------------------------------------------------------------------------
// property: random outcomes, latencies and clock advances
// ---------------------------------------------------------------------------------------------------

type Op =
  | { readonly _tag: "call"; readonly outcome: "success" | "failure" | "ignored"; readonly latencyMs: number }
  | { readonly _tag: "advance"; readonly ms: number }
  | { readonly _tag: "finish" }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    _tag: fc.constant("call" as const),
    outcome: fc.constantFrom("success" as const, "failure" as const, "failure" as const, "ignored" as const),
    latencyMs: fc.oneof(fc.integer({ min: 0, max: 2_000 }), fc.integer({ min: 2_000, max: 60_000 }))
  }),
  fc.record({ _tag: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: 20_000 }) }),
  fc.constant({ _tag: "finish" as const })
)

const manualClock = (time: { now: number }): Clock.Clock => ({
  currentTimeMillisUnsafe: () => time.now,
  currentTimeMillis: Effect.sync(() => time.now),
  currentTimeNanosUnsafe: () => BigInt(time.now) * 1_000_000n,
  currentTimeNanos: Effect.sync(() => BigInt(time.now) * 1_000_000n),
  monotonicTimeNanosUnsafe: () => BigInt(time.now) * 1_000_000n,
  monotonicTimeNanos: Effect.sync(() => BigInt(time.now) * 1_000_000n),
  sleep: () => Effect.void
})

describe("CircuitBreaker property", () => {
  it("never admits more than N concurrent probes, nor a call while open before its retryAfter", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1_000, max: 10_000 }),
        fc.array(opArb, { minLength: 1, maxLength: 300 }),
        (probes, probeTimeoutMs, ops) => {
          const time = { now: 0 }
          const run = <A, E>(self: Effect.Effect<A, E>) =>
            Effect.runSync(Effect.exit(self.pipe(Effect.provideService(Clock.Clock, manualClock(time)))))
          const breaker = Effect.runSync(
            CircuitBreaker.make({
              consecutiveFailures: 3,
              failureRateThreshold: 0.3,
              minimumCalls: 5,
              window: "30 seconds",
              slowCallThreshold: "4 seconds",
              halfOpenProbes: probes,
              probeTimeout: probeTimeoutMs,
              openDuration: Schedule.exponential("2 seconds"),
              maxOpenDuration: "30 seconds"
            })
          )
          interface Running {
            readonly permit: CircuitBreaker.Permit
            readonly endsAt: number
            readonly outcome: CircuitBreaker.Outcome
          }
          const running: Array<Running> = []
          // the model: probes the breaker still counts (released on outcome, probe timeout, or reopen)
          let liveProbes: Array<Running> = []
          let blockedUntil = 0
          const endProbe = (r: Running, failed: boolean) => {
            if (failed) liveProbes = []
            else liveProbes = liveProbes.filter((p) => p !== r)
          }
          const settle = (upTo: number) => {
            // finish the calls due by `upTo`, in order of their end
            running.sort((a, b) => a.endsAt - b.endsAt)
            while (running.length > 0 && running[0].endsAt <= upTo) {
              const r = running.shift() as Running
              time.now = Math.max(time.now, r.endsAt)
              for (const p of liveProbes) {
                if (p.permit.startedAt + probeTimeoutMs <= time.now) liveProbes = []
              }
              if (liveProbes.includes(r)) {
                endProbe(r, r.outcome._tag === "Failure" || r.endsAt - r.permit.startedAt >= 4_000)
              }
              run(breaker.complete(r.permit, r.outcome))
            }
            time.now = Math.max(time.now, upTo)
            for (const p of liveProbes) {
              if (p.permit.startedAt + probeTimeoutMs <= time.now) liveProbes = []
            }
          }
          for (const op of ops) {
            if (op._tag === "advance") {
              settle(time.now + op.ms)
              continue
            }
            if (op._tag === "finish") {
              settle(running.length > 0 ? Math.min(...running.map((r) => r.endsAt)) : time.now)
              continue
            }
            const before = run(breaker.status(KEY))
            const stateBefore = Exit.isSuccess(before) ? before.value._tag : "?"
            const admitted = run(breaker.admit(KEY))
            if (Exit.isFailure(admitted)) {
              const error = admitted.cause.reasons[0]
              if (error?._tag === "Fail" && stateBefore === "Open") {
                blockedUntil = Math.max(blockedUntil, time.now + (error.error as LlmError.CircuitOpen).retryAfterMs)
              }
              continue
            }
            // never admitted while open before the retryAfter it announced
            if (time.now < blockedUntil) return false
            const outcome =
              op.outcome === "success"
                ? CircuitBreaker.success
                : op.outcome === "failure"
                  ? CircuitBreaker.failure()
                  : CircuitBreaker.ignored
            const r: Running = { permit: admitted.value, endsAt: time.now + op.latencyMs, outcome }
            running.push(r)
            if (admitted.value.probe) {
              if (stateBefore !== "HalfOpen") return false
              liveProbes.push(r)
              if (liveProbes.length > probes) return false
            } else if (stateBefore !== "Closed") {
              return false
            }
          }
          return true
        }
      ),
      { seed: 20_250_601, numRuns: 300 }
    )
  })
})

// ---------------------------------------------------------------------------------------------------
// the seeds' outage: 100 requests/min, 20% over 60 s, 30 s timeouts, a 5-minute outage
// ---------------------------------------------------------------------------------------------------

const OUTAGE_START = 60_000
const OUTAGE_END = OUTAGE_START + 5 * 60_000
const TICK = 600 // 100 requests per minute

interface Request {
  readonly at: number
  endedAt?: number
  result?: "ok" | "rejected" | "failed"
}

const outageDrill = (mode: "failing" | "hanging") =>
  Effect.gen(function* () {
    const breaker = yield* CircuitBreaker.make({
      failureRateThreshold: 0.2,
      window: "60 seconds",
      minimumCalls: 10,
      consecutiveFailures: 5,
      ...(mode === "hanging" ? { slowCallThreshold: "3 seconds", slowCallRateThreshold: 0.2 } : {}),
      openDuration: Schedule.exponential("15 seconds"),
      maxOpenDuration: "60 seconds"
    })
    const transitions = yield* collectTransitions(breaker)
    // the FakeProvider answers in 200 ms, except during the outage window
    const fake = yield* FakeProvider.make({
      name: "openai",
      default: { latency: "200 millis" },
      windows: [
        {
          from: OUTAGE_START,
          to: OUTAGE_END,
          behavior: mode === "failing" ? FakeProvider.fail(FakeProvider.serverError(503)) : FakeProvider.stall
        }
      ]
    })
    const llmRequest: LlmRequest.LlmRequest = { model: "gpt-5.4", messages: [{ role: "user", content: "hi" }] }
    const call = fake.provider.complete(llmRequest).pipe(
      Effect.timeoutOrElse({
        duration: "30 seconds",
        orElse: () => Effect.fail(new LlmError.Timeout({ message: "timed out", phase: "total", afterMs: 30_000 }))
      }),
      breaker.protect(KEY)
    )
    const requests: Array<Request> = []
    const total = OUTAGE_END + 3 * 60_000
    for (let t = 0; t < total; t += TICK) {
      const request: Request = { at: yield* now }
      requests.push(request)
      yield* call.pipe(
        Effect.matchEffect({
          onFailure: (e) =>
            Effect.map(now, (end) => {
              request.endedAt = end
              request.result = e._tag === "CircuitOpen" ? "rejected" : "failed"
            }),
          onSuccess: () =>
            Effect.map(now, (end) => {
              request.endedAt = end
              request.result = "ok"
            })
        }),
        Effect.forkChild({ startImmediately: true })
      )
      yield* TestClock.adjust(TICK)
    }
    yield* TestClock.adjust("1 minute")
    const providerCalls = (yield* fake.calls).map((c) => c.startedAt + fake.createdAt)
    const duringOutage = providerCalls.filter((t) => t >= OUTAGE_START && t < OUTAGE_END)
    const outageRequests = requests.filter((r) => r.at >= OUTAGE_START && r.at < OUTAGE_END)
    return { breaker, transitions, duringOutage, outageRequests, requests }
  })

describe("the seeds' outage (100 req/min, 20% over 60 s, 30 s timeouts, 5-minute outage)", () => {
  it.effect(
    "failing outage (503 at once): <= 15 provider calls, the rest rejected at once, closes within one probe interval",
    () =>
      Effect.gen(function* () {
        const { transitions, duringOutage, outageRequests, requests } = yield* outageDrill("failing")
        assert.isAtMost(duringOutage.length, 15)
        assert.isAtLeast(duringOutage.length, 5)
        const rejected = outageRequests.filter((r) => r.result === "rejected")
        assert.strictEqual(rejected.length, outageRequests.length - duringOutage.length)
        for (const r of rejected) assert.strictEqual(r.endedAt, r.at) // no waiting
        // healthy before and after
        assert.isTrue(requests.filter((r) => r.at < OUTAGE_START).every((r) => r.result === "ok"))
        const lastOpen = transitions.filter((t) => t.to === "Open" && t.at < OUTAGE_END).at(-1)
        const closed = transitions.find((t) => t.to === "Closed" && t.at >= OUTAGE_END)
        assert.isDefined(lastOpen)
        assert.isDefined(closed)
        // the first probe after recovery closes it: within one probe interval (the last opening)
        assert.isAtMost((closed?.at ?? 0) - OUTAGE_END, lastOpen?.openForMs ?? 0)
        assert.isAtMost((closed?.at ?? 0) - OUTAGE_END, 60_000)
        assert.isTrue(requests.filter((r) => r.at > (closed?.at ?? 0)).every((r) => r.result === "ok"))
      })
  )

  it.effect(
    "hanging outage: opens ~3 s + minimum calls after the start, long before the 30 s timeout; <= 15 provider calls",
    () =>
      Effect.gen(function* () {
        const { transitions, duringOutage, outageRequests } = yield* outageDrill("hanging")
        const opened = transitions.find((t) => t.to === "Open")
        assert.isDefined(opened)
        const openedAfter = (opened?.at ?? 0) - OUTAGE_START
        assert.isAtLeast(openedAfter, 3_000)
        assert.isAtMost(openedAfter, 3_000 + 10 * TICK)
        assert.isBelow(openedAfter, 30_000)
        assert.isAtMost(duringOutage.length, 15)
        const rejected = outageRequests.filter((r) => r.result === "rejected")
        assert.strictEqual(rejected.length, outageRequests.length - duringOutage.length)
        for (const r of rejected) assert.strictEqual(r.endedAt, r.at)
        // every probe during the outage was released at the probe timeout (3 s), none wedged the circuit
        const probeTimeouts = transitions.filter((t) => t.reason === "probe-timeout" && t.at < OUTAGE_END)
        assert.isAtLeast(probeTimeouts.length, 3)
        assert.isDefined(transitions.find((t) => t.to === "Closed" && t.at >= OUTAGE_END))
      })
  )
})

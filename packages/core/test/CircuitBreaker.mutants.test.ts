/**
 * Behaviours of the circuit breaker that a wrong implementation could break with the rest of the suite
 * green, each through the public API (`CircuitBreaker.make`, `protect`, `record`, `classify`, `status`) in
 * virtual time: slow calls, exact thresholds, half-open probes, escalating open times, Retry-After while open,
 * the default failure tags, the toolkit's own rejections and reported latencies.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { CallReport, CircuitBreaker, LlmError } from "@llm-resilience/core"

const K = "p/m"
const ok = Effect.succeed("ok")
const e503 = () => new LlmError.ServerError({ message: "unavailable", status: 503 })
const fail = Effect.suspend(() => Effect.fail(e503()))

const closed = (s: CircuitBreaker.Status) => {
  assert.strictEqual(s._tag, "Closed")
  return s as Extract<CircuitBreaker.Status, { readonly _tag: "Closed" }>
}

describe("CircuitBreaker: behaviours through the public API", () => {
  it.effect("a slow call counts once, while in flight and after, and leaves the window with its bucket", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        slowCallThreshold: "1 second",
        slowCallRateThreshold: 1,
        minimumCalls: 100,
        consecutiveFailures: 0,
        window: "10 seconds",
        windowBuckets: 10
      })
      const fiber = yield* Effect.forkChild(Effect.as(Effect.sleep("2 seconds"), "late").pipe(breaker.protect(K)))
      yield* TestClock.adjust("999 millis")
      assert.strictEqual(closed(yield* breaker.status(K)).slowCalls, 0)
      yield* TestClock.adjust("1 millis")
      // slow already, while still running
      let s = closed(yield* breaker.status(K))
      assert.strictEqual(s.slowCalls, 1)
      assert.strictEqual(s.calls, 1)
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(fiber), "late")
      // completed: still one slow call, not two
      s = closed(yield* breaker.status(K))
      assert.strictEqual(s.slowCalls, 1)
      assert.strictEqual(s.calls, 1)
      assert.strictEqual(s.failures, 0)
      // the window moves on: the slow call leaves it
      yield* TestClock.adjust("11 seconds")
      s = closed(yield* breaker.status(K))
      assert.strictEqual(s.slowCalls, 0)
      assert.strictEqual(s.calls, 0)
    })
  )

  it.effect("a slow call completes as a slow success, a fast one as a plain one (the rate counts both)", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        slowCallThreshold: "1 second",
        slowCallRateThreshold: 0.5,
        minimumCalls: 4,
        consecutiveFailures: 0
      })
      for (let i = 0; i < 2; i++) yield* ok.pipe(breaker.protect(K))
      // one slow call out of three: below half
      const slow = Effect.as(Effect.sleep("1500 millis"), "slow").pipe(breaker.protect(K))
      const f1 = yield* Effect.forkChild(slow)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(f1)
      assert.strictEqual((yield* breaker.status(K))._tag, "Closed")
      // a second slow call: 2 of 4, exactly the threshold, opens
      const f2 = yield* Effect.forkChild(slow)
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(f2)
      assert.strictEqual((yield* breaker.status(K))._tag, "Open")
    })
  )

  it.effect("the failure rate opens exactly at the threshold, not below it", () =>
    Effect.gen(function* () {
      for (const [successes, opens] of [
        [3, true], // 2 failures of 5: 0.4
        [4, false] // 2 failures of 6: 0.33
      ] as const) {
        const breaker = yield* CircuitBreaker.make({
          failureRateThreshold: 0.4,
          minimumCalls: 5,
          consecutiveFailures: 0
        })
        for (let i = 0; i < successes; i++) yield* ok.pipe(breaker.protect(K))
        for (let i = 0; i < 2; i++) yield* Effect.exit(fail.pipe(breaker.protect(K)))
        const status = yield* breaker.status(K)
        assert.strictEqual(status._tag, opens ? "Open" : "Closed", `${successes} successes`)
      }
      // below minimumCalls the rate is not judged
      const breaker = yield* CircuitBreaker.make({ failureRateThreshold: 0.1, minimumCalls: 3, consecutiveFailures: 0 })
      for (let i = 0; i < 2; i++) yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual((yield* breaker.status(K))._tag, "Closed")
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual((yield* breaker.status(K))._tag, "Open")
    })
  )

  it.effect("consecutive failures open at exactly the count; a success in between restarts it", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 3, minimumCalls: 1_000 })
      for (let i = 0; i < 2; i++) yield* Effect.exit(fail.pipe(breaker.protect(K)))
      yield* ok.pipe(breaker.protect(K))
      for (let i = 0; i < 2; i++) yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual(closed(yield* breaker.status(K)).consecutiveFailures, 2)
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual((yield* breaker.status(K))._tag, "Open")
    })
  )

  /** A breaker opened once (by one failure), its open time `openMs`, and its probe admitted. */
  const opened = (options: CircuitBreaker.Options = {}) =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 1,
        openDuration: "1 second",
        ...options
      })
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual((yield* breaker.status(K))._tag, "Open")
      return breaker
    })

  it.effect("an interrupted half-open probe never closes the circuit", () =>
    Effect.gen(function* () {
      const breaker = yield* opened()
      yield* TestClock.adjust("1 second")
      const probe = yield* Effect.forkChild(Effect.never.pipe(breaker.protect(K)))
      yield* TestClock.adjust("10 millis")
      assert.strictEqual((yield* breaker.status(K))._tag, "HalfOpen")
      yield* Fiber.interrupt(probe)
      assert.notStrictEqual((yield* breaker.status(K))._tag, "Closed")
      // the next probe is admitted and decides
      yield* ok.pipe(breaker.protect(K))
      assert.strictEqual((yield* breaker.status(K))._tag, "Closed")
    })
  )

  it.effect("an ignored half-open probe (the toolkit's own rejection) never closes the circuit", () =>
    Effect.gen(function* () {
      const breaker = yield* opened()
      yield* TestClock.adjust("1 second")
      const refused = Effect.fail(new LlmError.AdmissionRejected({ key: K, reason: "queue-full" }))
      yield* Effect.exit(refused.pipe(breaker.protect(K)))
      assert.notStrictEqual((yield* breaker.status(K))._tag, "Closed")
      yield* ok.pipe(breaker.protect(K))
      assert.strictEqual((yield* breaker.status(K))._tag, "Closed")
    })
  )

  it.effect("with two half-open probes, both must succeed to close", () =>
    Effect.gen(function* () {
      const breaker = yield* opened({ halfOpenProbes: 2 })
      yield* TestClock.adjust("1 second")
      yield* ok.pipe(breaker.protect(K))
      assert.strictEqual((yield* breaker.status(K))._tag, "HalfOpen")
      yield* ok.pipe(breaker.protect(K))
      assert.strictEqual((yield* breaker.status(K))._tag, "Closed")
      // and one failing probe of two reopens
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      yield* TestClock.adjust("1 second")
      yield* ok.pipe(breaker.protect(K))
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual((yield* breaker.status(K))._tag, "Open")
    })
  )

  it.effect("open times escalate while probes fail, and after a close that did not last", () =>
    Effect.gen(function* () {
      const breaker = yield* opened({ openDuration: Schedule.exponential("1 second"), maxOpenDuration: "1 hour" })
      const openFor = Effect.map(breaker.status(K), (s) => (s._tag === "Open" ? s.retryAfterMs : -1))
      assert.strictEqual(yield* openFor, 1_000)
      yield* TestClock.adjust("1 second")
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual(yield* openFor, 2_000)
      yield* TestClock.adjust("2 seconds")
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual(yield* openFor, 4_000)
      yield* TestClock.adjust("4 seconds")
      yield* ok.pipe(breaker.protect(K))
      assert.strictEqual((yield* breaker.status(K))._tag, "Closed")
      // re-opened at once after closing (flapping): the escalation goes on
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual(yield* openFor, 8_000)
      yield* TestClock.adjust("8 seconds")
      yield* ok.pipe(breaker.protect(K))
      // closed for less than the last open time, then open again: still escalating
      yield* TestClock.adjust("7999 millis")
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual(yield* openFor, 16_000)
      yield* TestClock.adjust("16 seconds")
      yield* ok.pipe(breaker.protect(K))
      // closed for as long as the last open time: back to the first delay
      yield* TestClock.adjust("16 seconds")
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual(yield* openFor, 1_000)
    })
  )

  it.effect("a Retry-After reported while open extends the open window (up to maxRetryAfter)", () =>
    Effect.gen(function* () {
      const breaker = yield* opened({ maxRetryAfter: "30 seconds" })
      yield* breaker.record(K, CircuitBreaker.failure({ retryAfterMs: 20_000 }))
      const status = yield* breaker.status(K)
      assert.strictEqual(status._tag, "Open")
      assert.strictEqual((status as { readonly retryAfterMs: number }).retryAfterMs, 20_000)
      yield* TestClock.adjust("19 seconds")
      assert.strictEqual((yield* Effect.flip(ok.pipe(breaker.protect(K))))._tag, "CircuitOpen")
      yield* TestClock.adjust("1 second")
      yield* ok.pipe(breaker.protect(K))
      assert.strictEqual((yield* breaker.status(K))._tag, "Closed")
      // a longer Retry-After is capped
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      yield* breaker.record(K, CircuitBreaker.failure({ retryAfterMs: 600_000 }))
      const capped = yield* breaker.status(K)
      assert.strictEqual((capped as { readonly retryAfterMs: number }).retryAfterMs, 30_000)
    })
  )

  it.effect("a failure's Retry-After sets the opening it causes", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "1 second" })
      const overloaded = new LlmError.Overloaded({ message: "busy", status: 529, retryAfterMs: 5_000 })
      yield* Effect.exit(Effect.fail(overloaded).pipe(breaker.protect(K)))
      const status = yield* breaker.status(K)
      assert.strictEqual((status as { readonly retryAfterMs: number }).retryAfterMs, 5_000)
    })
  )

  it.effect("the default failure tags: Timeout, ConnectionError, StreamTruncated, ServerError, Overloaded", () =>
    Effect.gen(function* () {
      const counted = [
        new LlmError.Timeout({ message: "t", phase: "total", afterMs: 1 }),
        new LlmError.ConnectionError({ message: "reset" }),
        new LlmError.StreamTruncated({ message: "cut", receivedChunks: 3 }),
        e503(),
        new LlmError.Overloaded({ message: "busy", status: 529 })
      ]
      for (const error of counted) {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        yield* Effect.exit(Effect.fail(error).pipe(breaker.protect(K)))
        assert.strictEqual((yield* breaker.status(K))._tag, "Open", error._tag)
        assert.strictEqual(breaker.classify(Exit.fail(error))._tag, "Failure", error._tag)
      }
      // answers of a healthy provider, and 429s by default: not failures
      for (const error of [
        new LlmError.BadRequest({ message: "bad" }),
        new LlmError.RateLimited({ message: "slow", limit: "requests" }),
        new LlmError.ContentFiltered({ message: "no" })
      ]) {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        yield* Effect.exit(Effect.fail(error).pipe(breaker.protect(K)))
        const s = closed(yield* breaker.status(K))
        assert.strictEqual(s.failures, 0, error._tag)
        assert.strictEqual(s.calls, 1, error._tag)
      }
      const counting = yield* CircuitBreaker.make({ consecutiveFailures: 1, countRateLimited: true })
      yield* Effect.exit(
        Effect.fail(new LlmError.RateLimited({ message: "", limit: "tokens" })).pipe(counting.protect(K))
      )
      assert.strictEqual((yield* counting.status(K))._tag, "Open")
    })
  )

  it.effect("the toolkit's own rejections and interruptions are neither successes nor failures", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      for (const error of [
        new LlmError.AdmissionRejected({ key: K, reason: "queue-full" }),
        new LlmError.CircuitOpen({ key: "other", retryAfterMs: 1 }),
        new LlmError.RetryBudgetExhausted({ key: K, lastError: e503() }),
        new LlmError.DeadlineExceeded({ deadlineMs: 1 }),
        new LlmError.BudgetExceeded({ scope: "global", spentUsd: 1, limitUsd: 1 })
      ]) {
        yield* Effect.exit(Effect.fail(error).pipe(breaker.protect(K)))
        assert.strictEqual(breaker.classify(Exit.fail(error))._tag, "Ignored", error._tag)
      }
      const interrupted = yield* Effect.forkChild(Effect.never.pipe(breaker.protect(K)))
      yield* TestClock.adjust("1 millis")
      yield* Fiber.interrupt(interrupted)
      // the streak of one failure stands: neither reset by a success nor lengthened
      const s = closed(yield* breaker.status(K))
      assert.strictEqual(s.consecutiveFailures, 1)
      assert.strictEqual(s.calls, 1)
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual((yield* breaker.status(K))._tag, "Open")
    })
  )

  it.effect("a reported latency is judged against the slow-call threshold", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ slowCallThreshold: "1 second", minimumCalls: 100 })
      yield* breaker.record(K, CircuitBreaker.success, "999 millis")
      assert.strictEqual(closed(yield* breaker.status(K)).slowCalls, 0)
      yield* breaker.record(K, CircuitBreaker.success, "1 second")
      assert.strictEqual(closed(yield* breaker.status(K)).slowCalls, 1)
      yield* breaker.record(K, CircuitBreaker.success)
      const s = closed(yield* breaker.status(K))
      assert.strictEqual(s.slowCalls, 1)
      assert.strictEqual(s.calls, 3)
    })
  )

  /** Runs `body` with the breaker transitions it reports, as `from>to`, seen the moment each step returns. */
  const reported = <A, E>(body: (seen: ReadonlyArray<string>) => Effect.Effect<A, E>) => {
    const seen: Array<string> = []
    return body(seen).pipe(
      Effect.provideService(CallReport.Events, (event) => {
        if (event._tag === "BreakerTransition") seen.push(`${event.from}>${event.to}`)
      })
    )
  }

  it.effect("every operation reports the transitions it caused before it returns", () =>
    reported((seen) =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "1 second" })
        // a completed call (protect)
        yield* Effect.exit(fail.pipe(breaker.protect(K)))
        assert.deepStrictEqual(seen, ["Closed>Open"])
        // admitting the probe
        yield* TestClock.adjust("1 second")
        const permit = yield* breaker.admit(K)
        assert.deepStrictEqual(seen.slice(1), ["Open>HalfOpen"])
        // completing it by hand
        yield* breaker.complete(permit, CircuitBreaker.success)
        assert.deepStrictEqual(seen.slice(2), ["HalfOpen>Closed"])
        // a reported outcome
        yield* breaker.record(K, CircuitBreaker.failure())
        assert.deepStrictEqual(seen.slice(3), ["Closed>Open"])
        // a check once the open time is over
        yield* TestClock.adjust("2 seconds")
        yield* breaker.check(K)
        assert.deepStrictEqual(seen.slice(4), ["Open>HalfOpen"])
        // manual control
        yield* breaker.isolate(K)
        assert.deepStrictEqual(seen.slice(5), ["HalfOpen>Isolated"])
        yield* breaker.reset(K)
        assert.deepStrictEqual(seen.slice(6), ["Isolated>Closed"])
        yield* breaker.downgrade(K)
        assert.strictEqual(seen.length, 7)
      })
    )
  )

  it.effect("the state gauge and the rejection counter follow the circuit", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "1 second" })
      const gauge = Effect.map(
        Metric.value(Metric.withAttributes(CircuitBreaker.metrics.state, { key: K })),
        (s) => (s as { readonly value: number }).value
      )
      const rejections = Effect.map(
        Metric.value(Metric.withAttributes(CircuitBreaker.metrics.rejections, { key: K })),
        (s) => (s as { readonly count: number }).count
      )
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual(yield* gauge, 1)
      yield* Effect.exit(ok.pipe(breaker.protect(K)))
      yield* Effect.exit(ok.pipe(breaker.protect(K)))
      assert.strictEqual(yield* rejections, 2)
      yield* TestClock.adjust("1 second")
      const permit = yield* breaker.admit(K)
      assert.strictEqual(yield* gauge, 2)
      yield* breaker.complete(permit, CircuitBreaker.success)
      assert.strictEqual(yield* gauge, 0)
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("what is not a tagged error counts as a failure: a string, a defect, an object without _tag", () =>
    Effect.gen(function* () {
      for (const exit of [
        Exit.fail("boom"),
        Exit.fail({ _tag: 42 }),
        Exit.fail(null),
        Exit.die(new Error("defect"))
      ] as ReadonlyArray<Exit.Exit<unknown, unknown>>) {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        assert.deepStrictEqual(breaker.classify(exit), CircuitBreaker.failure())
        yield* Effect.exit(exit.pipe(breaker.protect(K)))
        assert.strictEqual((yield* breaker.status(K))._tag, "Open")
      }
      const breaker = yield* CircuitBreaker.make({})
      assert.deepStrictEqual(breaker.classify(Exit.succeed(1)), CircuitBreaker.success)
      // a failure without a Retry-After carries none; one with carries it
      assert.deepStrictEqual(breaker.classify(Exit.fail(e503())), CircuitBreaker.failure())
      const busy = new LlmError.Overloaded({ message: "busy", retryAfterMs: 3_000 })
      assert.deepStrictEqual(breaker.classify(Exit.fail(busy)), CircuitBreaker.failure({ retryAfterMs: 3_000 }))
      assert.deepStrictEqual(CircuitBreaker.failure({ retryAfterMs: 3_000 }), { _tag: "Failure", retryAfterMs: 3_000 })
      assert.deepStrictEqual(CircuitBreaker.failure(), { _tag: "Failure" })
    })
  )

  it.effect("protect's own classify decides instead of the breaker's", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
      yield* ok.pipe(breaker.protect(K, { classify: () => CircuitBreaker.failure() }))
      assert.strictEqual((yield* breaker.status(K))._tag, "Open")
    })
  )

  it.effect("the slow-call rate defaults to half the calls", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ slowCallThreshold: "1 second", minimumCalls: 4 })
      yield* breaker.record(K, CircuitBreaker.success, "10 millis")
      yield* breaker.record(K, CircuitBreaker.success, "10 millis")
      yield* breaker.record(K, CircuitBreaker.success, "2 seconds")
      yield* breaker.record(K, CircuitBreaker.success, "10 millis")
      assert.strictEqual((yield* breaker.status(K))._tag, "Closed")
      yield* breaker.record(K, CircuitBreaker.success, "2 seconds")
      yield* breaker.record(K, CircuitBreaker.success, "2 seconds")
      assert.strictEqual((yield* breaker.status(K))._tag, "Open")
    })
  )

  it.effect("a probe that runs past the probe timeout (the slow-call threshold, else 30 s) reopens", () =>
    Effect.gen(function* () {
      for (const [options, timeoutMs] of [
        [{ slowCallThreshold: "2 seconds" }, 2_000],
        [{}, 30_000],
        [{ probeTimeout: "5 seconds" }, 5_000]
      ] as const) {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, openDuration: "1 second", ...options })
        yield* Effect.exit(fail.pipe(breaker.protect(K)))
        yield* TestClock.adjust("1 second")
        yield* Effect.forkChild(Effect.never.pipe(breaker.protect(K)))
        yield* TestClock.adjust(timeoutMs - 1)
        assert.strictEqual((yield* breaker.status(K))._tag, "HalfOpen", JSON.stringify(options))
        yield* TestClock.adjust(1)
        assert.strictEqual((yield* breaker.status(K))._tag, "Open", JSON.stringify(options))
      }
    })
  )

  it.effect("an open-duration schedule is followed opening after opening, its last delay kept once it ends", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 1,
        openDuration: Schedule.max([Schedule.exponential("1 second"), Schedule.recurs(2)]),
        maxOpenDuration: "1 hour"
      })
      const openFor = Effect.map(breaker.status(K), (s) => (s._tag === "Open" ? s.retryAfterMs : -1))
      const reopen = (ms: number) => Effect.andThen(TestClock.adjust(ms), Effect.exit(fail.pipe(breaker.protect(K))))
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual(yield* openFor, 1_000)
      yield* reopen(1_000)
      assert.strictEqual(yield* openFor, 2_000)
      yield* reopen(2_000)
      assert.strictEqual(yield* openFor, 2_000)
      // a schedule capped by maxOpenDuration
      const capped = yield* CircuitBreaker.make({
        consecutiveFailures: 1,
        openDuration: Schedule.exponential("1 second"),
        maxOpenDuration: "3 seconds"
      })
      const cappedFor = Effect.map(capped.status(K), (s) => (s._tag === "Open" ? s.retryAfterMs : -1))
      const durations: Array<number> = []
      yield* Effect.exit(fail.pipe(capped.protect(K)))
      for (let i = 0; i < 4; i++) {
        durations.push(yield* cappedFor)
        yield* TestClock.adjust(durations[i])
        yield* Effect.exit(fail.pipe(capped.protect(K)))
      }
      assert.deepStrictEqual(durations, [1_000, 2_000, 3_000, 3_000])
      // a schedule that never recurs: the cap
      const never = yield* CircuitBreaker.make({
        consecutiveFailures: 1,
        openDuration: Schedule.recurs(0),
        maxOpenDuration: "7 seconds"
      })
      yield* Effect.exit(fail.pipe(never.protect(K)))
      const s = yield* never.status(K)
      assert.strictEqual((s as { readonly retryAfterMs: number }).retryAfterMs, 7_000)
      // not a duration nor a schedule: refused at construction
      const invalid = yield* Effect.flip(CircuitBreaker.make({ openDuration: "soon" as never }))
      assert.include(String(invalid), "openDuration")
    })
  )

  it.effect("metrics-only mode computes the state but never rejects", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, mode: "metrics-only" })
      yield* Effect.exit(fail.pipe(breaker.protect(K)))
      assert.strictEqual((yield* breaker.status(K))._tag, "Open")
      assert.strictEqual(yield* ok.pipe(breaker.protect(K)), "ok")
      yield* breaker.check(K)
      assert.strictEqual(breaker.stage.name, "circuit-breaker")
    })
  )
})

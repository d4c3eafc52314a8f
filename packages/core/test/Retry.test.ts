import { assert, describe, expect, it } from "@effect/vitest"
import { Cause, Clock, Effect, Exit, Fiber, Metric, Random, Schema, Stream, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { LlmError, type LlmResponse, Retry, RetryBudget } from "@llm-resilience/core"

const HalfRandom: Random.Random = { nextDoubleUnsafe: () => 0.5, nextIntUnsafe: () => 0 }

const overloaded = new LlmError.Overloaded({ message: "overloaded", status: 529 })

/** A fake call that fails with the scripted errors in turn, then succeeds; records attempt times. */
const scripted = <E>(errors: ReadonlyArray<E>) => {
  const times: Array<number> = []
  const call = Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const i = times.length
    times.push(now)
    return i < errors.length ? Effect.fail(errors[i]!) : Effect.succeed("ok")
  })
  return { call, times }
}

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const reason = exit.cause.reasons.find(Cause.isFailReason)
  return reason?.error
}

/** A test profile with no deadline worth mentioning and a 100 ms base. */
const profileOf = (options: Retry.ProfileOptions) =>
  Retry.profile({ name: "test", jitter: "full", base: "100 millis", cap: "10 seconds", deadline: "1 hour", ...options })

const finish: LlmResponse.StreamChunk = {
  _tag: "Finish",
  finishReason: "stop",
  usage: { inputTokens: 1, outputTokens: 1 },
  provider: "fake",
  model: "m"
}

describe("Retry", () => {
  it.effect("retries retryable errors at exact times under TestClock (full jitter, Random = 0.5)", () =>
    Effect.gen(function* () {
      const { call, times } = scripted([overloaded, overloaded, overloaded])
      const profile = yield* profileOf({ maxRetries: 3 })
      const fiber = yield* call.pipe(Retry.retry({ profile }), Effect.forkChild)
      yield* TestClock.adjust("10 seconds")
      expect(yield* Fiber.join(fiber)).toBe("ok")
      // delays 0.5*100, 0.5*200, 0.5*400
      expect(times).toEqual([0, 50, 150, 350])
    }).pipe(Effect.provideService(Random.Random, HalfRandom))
  )

  it.effect("a Retry-After longer than the jittered delay wins", () =>
    Effect.gen(function* () {
      const limited = new LlmError.RateLimited({ message: "", limit: "requests", status: 429, retryAfterMs: 3_000 })
      const { call, times } = scripted([limited, overloaded])
      const profile = yield* profileOf({ maxRetries: 2 })
      const fiber = yield* call.pipe(Retry.retry({ profile }), Effect.forkChild)
      yield* TestClock.adjust("1 minute")
      expect(yield* Fiber.join(fiber)).toBe("ok")
      // jitter would have been 50 ms: the 3 s Retry-After is the floor; then jitter 0.5*200 = 100
      expect(times).toEqual([0, 3_000, 3_100])
    }).pipe(Effect.provideService(Random.Random, HalfRandom))
  )

  it.effect("a Retry-After above maxRetryAfter fails at once with RetryAfterTooLong", () =>
    Effect.gen(function* () {
      const limited = new LlmError.RateLimited({ message: "", limit: "tokens", status: 429, retryAfterMs: 120_000 })
      const { call, times } = scripted([limited])
      // background honours up to 60 s
      const exit = yield* call.pipe(Retry.retry({ profile: "background" }), Effect.exit)
      expect(times).toEqual([0])
      const e = failureOf(exit)
      assert.instanceOf(e, LlmError.RetryAfterTooLong)
      expect(e.retryAfterMs).toBe(120_000)
      expect(e.maxRetryAfterMs).toBe(60_000)
      expect(e.lastError).toBe(limited)
      expect(yield* Clock.currentTimeMillis).toBe(0)
    })
  )

  it.effect("fatal errors and quota 429s are tried exactly once and surface unchanged", () =>
    Effect.gen(function* () {
      const base = { message: "m", provider: "p", model: "x" }
      const fatal = [
        new LlmError.BadRequest({ ...base, status: 400 }),
        new LlmError.Authentication({ ...base, status: 401 }),
        new LlmError.PermissionDenied({ ...base, status: 403 }),
        new LlmError.ModelNotFound({ ...base, status: 404 }),
        new LlmError.ContextLengthExceeded({ ...base, status: 400 }),
        new LlmError.ContentFiltered({ ...base, status: 400 }),
        new LlmError.QuotaExhausted({ ...base, status: 429 }),
        new LlmError.CircuitOpen({ key: "p/x", retryAfterMs: 1000 })
      ]
      for (const error of fatal) {
        const { call, times } = scripted([error, error, error])
        const exit = yield* call.pipe(Retry.retry({ profile: "background" }), Effect.exit)
        expect(times).toEqual([0])
        expect(failureOf(exit)).toBe(error)
      }
    })
  )

  it.effect("gives up after maxRetries with the last provider error", () =>
    Effect.gen(function* () {
      const errors = [overloaded, new LlmError.ServerError({ message: "a", status: 500 }), overloaded]
      const { call, times } = scripted([...errors, overloaded])
      const fiber = yield* call.pipe(Retry.retry({ profile: "interactive" }), Effect.forkChild)
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.await(fiber)
      // interactive: 2 retries, full jitter base 250 => 125, 250
      expect(times).toEqual([0, 125, 375])
      expect(failureOf(exit)).toBe(errors[2])
    }).pipe(Effect.provideService(Random.Random, HalfRandom))
  )

  it.effect("fails with DeadlineExceeded carrying the last error when the next wait would cross the deadline", () =>
    Effect.gen(function* () {
      const last = new LlmError.ServerError({ message: "second", status: 502 })
      const { call, times } = scripted([overloaded, last, overloaded])
      const profile = yield* profileOf({ maxRetries: 5, jitter: "none", base: "400 millis", deadline: "1 second" })
      const fiber = yield* call.pipe(Retry.retry({ profile }), Effect.forkChild)
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.await(fiber)
      // attempt at 0, wait 400; attempt at 400, next wait 800 would end at 1200 > 1000
      expect(times).toEqual([0, 400])
      const e = failureOf(exit)
      assert.instanceOf(e, LlmError.DeadlineExceeded)
      expect(e.deadlineMs).toBe(1000)
      expect(e.lastError).toBe(last)
    })
  )

  it.effect("succeeds on the first attempt without sleeping or touching the schedule", () =>
    Effect.gen(function* () {
      let draws = 0
      const counting: Random.Random = {
        nextDoubleUnsafe: () => {
          draws++
          return 0.5
        },
        nextIntUnsafe: () => 0
      }
      const { call, times } = scripted([])
      const out = yield* call.pipe(
        Retry.retry({ profile: "interactive" }),
        Effect.provideService(Random.Random, counting)
      )
      expect(out).toBe("ok")
      expect(times).toEqual([0])
      expect(draws).toBe(0)
    })
  )

  it.effect("a stream that delivered a chunk is not retried", () =>
    Effect.gen(function* () {
      let calls = 0
      const stream = Stream.suspend(() => {
        calls++
        return Stream.concat(
          Stream.make<Array<LlmResponse.StreamChunk>>({ _tag: "TextDelta", text: "Hel" }),
          Stream.fail(overloaded)
        )
      })
      const seen: Array<LlmResponse.StreamChunk> = []
      const exit = yield* stream.pipe(
        Retry.retryStream({ profile: "background" }),
        Stream.runForEach((chunk) => Effect.sync(() => seen.push(chunk))),
        Effect.exit
      )
      expect(calls).toBe(1)
      expect(seen).toEqual([{ _tag: "TextDelta", text: "Hel" }])
      expect(failureOf(exit)).toBe(overloaded)
    })
  )

  it.effect("a stream that failed before its first chunk is retried", () =>
    Effect.gen(function* () {
      const times: Array<number> = []
      const stream = Stream.unwrap(
        Effect.map(Clock.currentTimeMillis, (now) => {
          times.push(now)
          return times.length < 3
            ? Stream.fail(overloaded)
            : Stream.make<Array<LlmResponse.StreamChunk>>({ _tag: "TextDelta", text: "Hi" }, finish)
        })
      )
      const fiber = yield* stream.pipe(
        Retry.retryStream({ profile: "interactive" }),
        Stream.runCollect,
        Effect.forkChild
      )
      yield* TestClock.adjust("1 minute")
      const chunks = yield* Fiber.join(fiber)
      expect(chunks.map((c) => c._tag)).toEqual(["TextDelta", "Finish"])
      expect(times).toEqual([0, 125, 375])
    }).pipe(Effect.provideService(Random.Random, HalfRandom))
  )

  it.effect("five nested retry stages of 3 retries each make at most 4 provider calls per request", () =>
    Effect.gen(function* () {
      const profile = yield* profileOf({ maxRetries: 3 })
      let calls = 0
      const provider = Effect.suspend(() => {
        calls++
        return Effect.fail(overloaded)
      })
      const stage = Retry.retry({ profile })
      const nested = stage(stage(stage(stage(stage(provider)))))
      for (let request = 1; request <= 10; request++) {
        const before = calls
        const fiber = yield* Effect.forkChild(Effect.exit(nested))
        yield* TestClock.adjust("1 minute")
        const exit = yield* Fiber.join(fiber)
        expect(failureOf(exit)).toBe(overloaded)
        expect(calls - before).toBe(4)
      }
      // and for streams
      let streamCalls = 0
      const streamProvider = Stream.suspend(() => {
        streamCalls++
        return Stream.fail(overloaded)
      })
      const streamStage = Retry.retryStream({ profile })
      const nestedStream = streamStage(streamStage(streamStage(streamStage(streamStage(streamProvider)))))
      const fiber = yield* Effect.forkChild(Effect.exit(Stream.runDrain(nestedStream)))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(streamCalls).toBe(4)
    }).pipe(Effect.provideService(Random.Random, HalfRandom))
  )

  it.effect("marks its attempts with InsideRetry", () =>
    Effect.gen(function* () {
      expect(yield* Retry.InsideRetry).toBe(false)
      expect(yield* Retry.InsideRetry.pipe(Retry.retry())).toBe(true)
    })
  )

  it.effect("a refused retry fails fast with RetryBudgetExhausted carrying the error", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 0.1, minRetries: 0 })
      const { call, times } = scripted([overloaded, overloaded])
      const exit = yield* call.pipe(Retry.retry({ profile: "interactive", budget, key: "fake/m" }), Effect.exit)
      expect(times).toEqual([0])
      const e = failureOf(exit)
      assert.instanceOf(e, LlmError.RetryBudgetExhausted)
      expect(e.key).toBe("fake/m")
      expect(e.lastError).toBe(overloaded)
    })
  )

  it.effect("records each attempt as a span event and counts retries and rejections", () =>
    Effect.gen(function* () {
      const limited = new LlmError.RateLimited({ message: "", limit: "requests", retryAfterMs: 1_000 })
      const { call } = scripted([overloaded, limited, overloaded])
      const budget = yield* RetryBudget.make({ ratio: 0.1, minRetries: 2 })
      const span = yield* Effect.gen(function* () {
        const span = yield* Effect.currentSpan
        const fiber = yield* call.pipe(Retry.retry({ profile: "interactive", budget, key: "fake/m" }), Effect.forkChild)
        yield* TestClock.adjust("1 minute")
        yield* Fiber.await(fiber)
        return span
      }).pipe(Effect.withSpan("call"))
      assert.instanceOf(span, Tracer.NativeSpan)
      const events = span.events.filter(([name]) => name === "llm.retry").map(([, , attributes]) => attributes)
      expect(events).toEqual([
        {
          "llm.retry.attempt": 1,
          "llm.retry.error": "Overloaded",
          "llm.retry.decision": "retry",
          "llm.retry.reason": "backoff",
          "llm.retry.delay_ms": 125,
          "llm.retry.key": "fake/m"
        },
        {
          "llm.retry.attempt": 2,
          "llm.retry.error": "RateLimited",
          "llm.retry.decision": "retry",
          "llm.retry.reason": "retry-after",
          "llm.retry.delay_ms": 1_000,
          "llm.retry.key": "fake/m"
        },
        {
          "llm.retry.attempt": 3,
          "llm.retry.error": "Overloaded",
          "llm.retry.decision": "give-up",
          "llm.retry.reason": "max-retries",
          "llm.retry.delay_ms": undefined,
          "llm.retry.key": "fake/m"
        }
      ])
      const count = (metric: Metric.Metric<number, Metric.CounterState<number>>, attributes: Record<string, string>) =>
        Effect.map(Metric.value(Metric.withAttributes(metric, attributes)), (s) => s.count)
      expect(yield* count(Retry.retriesTotal, { reason: "Overloaded", key: "fake/m" })).toBe(1)
      expect(yield* count(Retry.retriesTotal, { reason: "RateLimited", key: "fake/m" })).toBe(1)
      expect(yield* count(Retry.giveUpsTotal, { reason: "max-retries", key: "fake/m" })).toBe(1)

      // a budget without credit or floor refuses: counted as a rejection
      const empty = yield* RetryBudget.make({ ratio: 0.1, minRetries: 0 })
      yield* scripted([overloaded]).call.pipe(Retry.retry({ budget: empty, key: "fake/m" }), Effect.exit)
      expect(yield* count(Retry.budgetRejectionsTotal, { key: "fake/m" })).toBe(1)
      expect(yield* count(Retry.giveUpsTotal, { reason: "budget", key: "fake/m" })).toBe(1)
    }).pipe(Effect.provideService(Random.Random, HalfRandom), Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect(
    "user-defined profiles: fields default to `extends`, invalid fields fail with a SchemaError naming them",
    () =>
      Effect.gen(function* () {
        const custom = yield* Retry.profile({ name: "agent", extends: "background", maxRetries: 3 })
        expect(custom).toEqual({ ...Retry.background, name: "agent", maxRetries: 3 })
        const bad = [
          [{ maxRetries: -1 }, "maxRetries"],
          [{ deadline: 0 }, "deadline"],
          [{ base: "soon" as never }, "base"],
          [{ jitter: "random" as never }, "jitter"]
        ] as const
        for (const [options, field] of bad) {
          const exit = yield* Effect.exit(Retry.profile(options))
          const e = failureOf(exit)
          assert.isTrue(Schema.isSchemaError(e))
          expect(String(e)).toContain(`["${field}"]`)
        }
      })
  )
})

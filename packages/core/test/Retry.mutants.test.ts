/**
 * Edges of `Retry` that a wrong implementation could pass the rest of the suite with: bounds met exactly
 * (deadline, Retry-After cap, maxRetries), the reason a delay is given, and the retry mark never leaking into
 * the caller's fiber. Virtual time throughout.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, type Duration, Effect, Exit, Fiber, Metric, Stream } from "effect"
import { TestClock } from "effect/testing"
import { CallReport, LlmError, Retry, RetryBudget } from "@llm-resilience/core"

const limited = (retryAfterMs: number) =>
  new LlmError.RateLimited({ message: "slow down", limit: "requests", retryAfterMs, status: 429 })
const overloaded = () => new LlmError.Overloaded({ message: "overloaded", status: 529 })

/** Fails with each error in turn, then answers "ok"; counts its attempts. */
const scripted = (errors: ReadonlyArray<unknown>) => {
  const state = { attempts: 0 }
  const call = Effect.suspend(() => {
    const e = errors[state.attempts++]
    return e === undefined ? Effect.succeed("ok") : Effect.fail(e)
  })
  return { call, state }
}

const errorOf = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason)?.error : undefined

/** Runs `self` in a child fiber while virtual time passes. */
const settle = <A, E>(self: Effect.Effect<A, E>, time: Duration.Input = "1 hour") =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(Effect.exit(self))
    yield* TestClock.adjust(time)
    return yield* Fiber.join(fiber)
  })

describe("Retry: edges", () => {
  it.effect("a delay that ends exactly at the deadline is taken; one millisecond more gives up", () =>
    Effect.gen(function* () {
      for (const [deadline, retried] of [
        [1_000, true],
        [999, false]
      ] as const) {
        const profile = yield* Retry.profile({ name: "t", jitter: "none", base: 0, cap: 0, deadline, maxRetries: 3 })
        const { call, state } = scripted([limited(1_000)])
        const exit = yield* settle(call.pipe(Retry.retry({ profile })))
        assert.strictEqual(Exit.isSuccess(exit), retried, `deadline ${deadline}`)
        assert.strictEqual(state.attempts, retried ? 2 : 1)
        if (!retried) {
          const e = errorOf(exit) as LlmError.DeadlineExceeded
          assert.strictEqual(e._tag, "DeadlineExceeded")
          assert.strictEqual(e.deadlineMs, 999)
          assert.strictEqual(e.lastError?._tag, "RateLimited")
        }
      }
    })
  )

  it.effect("a Retry-After exactly at maxRetryAfter is waited for; one millisecond more is refused", () =>
    Effect.gen(function* () {
      for (const [retryAfter, retried] of [
        [2_000, true],
        [2_001, false]
      ] as const) {
        const profile = yield* Retry.profile({ name: "t", jitter: "none", base: 10, cap: 10, maxRetryAfter: 2_000 })
        const { call, state } = scripted([limited(retryAfter)])
        const fiber = yield* Effect.forkChild(Effect.exit(call.pipe(Retry.retry({ profile }))))
        // the wait is the Retry-After, not the (shorter) backoff
        yield* TestClock.adjust(retryAfter - 1)
        assert.strictEqual(state.attempts, 1)
        yield* TestClock.adjust(1)
        const exit = yield* Fiber.join(fiber)
        assert.strictEqual(Exit.isSuccess(exit), retried)
        assert.strictEqual(state.attempts, retried ? 2 : 1)
        if (!retried) {
          const e = errorOf(exit) as LlmError.RetryAfterTooLong
          assert.strictEqual(e._tag, "RetryAfterTooLong")
          assert.strictEqual(e.retryAfterMs, 2_001)
          assert.strictEqual(e.maxRetryAfterMs, 2_000)
        }
      }
    })
  )

  it.effect("exactly maxRetries retries, then the last error", () =>
    Effect.gen(function* () {
      const profile = yield* Retry.profile({ name: "t", jitter: "none", base: 1, cap: 1, maxRetries: 3 })
      const { call, state } = scripted([overloaded(), overloaded(), overloaded(), overloaded()])
      const exit = yield* settle(call.pipe(Retry.retry({ profile })))
      assert.strictEqual(state.attempts, 4)
      assert.strictEqual((errorOf(exit) as LlmError.LlmError)._tag, "Overloaded")
      const answered = scripted([overloaded(), overloaded(), overloaded()])
      assert.isTrue(Exit.isSuccess(yield* settle(answered.call.pipe(Retry.retry({ profile })))))
      assert.strictEqual(answered.state.attempts, 4)
    })
  )

  it.effect("a fatal error is never retried", () =>
    Effect.gen(function* () {
      const { call, state } = scripted([new LlmError.BadRequest({ message: "bad", status: 400 })])
      const exit = yield* settle(call.pipe(Retry.retry({ profile: "interactive" })))
      assert.strictEqual(state.attempts, 1)
      assert.strictEqual((errorOf(exit) as LlmError.LlmError)._tag, "BadRequest")
    })
  )

  it.effect("the reason of a delay: retry-after only when the provider's wait is longer than the backoff", () =>
    Effect.gen(function* () {
      const profile = yield* Retry.profile({ name: "t", jitter: "none", base: 500, cap: 500, maxRetries: 3 })
      const { call } = scripted([limited(500), limited(501), overloaded()])
      const reasons: Array<string> = []
      const delays: Array<number> = []
      const observed = call.pipe(
        Retry.retry({ profile }),
        Effect.provideService(CallReport.Events, (event) => {
          if (event._tag === "Retried") {
            reasons.push(event.reason)
            delays.push(event.delayMs)
          }
        })
      )
      assert.isTrue(Exit.isSuccess(yield* settle(observed)))
      assert.deepStrictEqual(reasons, ["backoff", "retry-after", "backoff"])
      assert.deepStrictEqual(delays, [500, 501, 500])
    })
  )

  it.effect("the retry mark does not leak into the caller's fiber: a later retry still retries", () =>
    Effect.gen(function* () {
      const profile = yield* Retry.profile({ name: "t", jitter: "none", base: 1, cap: 1, maxRetries: 2 })
      // one fiber runs every call in turn: one answered at once, one after a retry, one that fails for good,
      // then a new call, which must still be retried twice
      const later = scripted([overloaded(), overloaded()])
      const sequence = Effect.gen(function* () {
        for (const errors of [[], [overloaded()], [overloaded(), overloaded(), overloaded()]]) {
          yield* Effect.exit(scripted(errors).call.pipe(Retry.retry({ profile })))
        }
        return yield* later.call.pipe(Retry.retry({ profile }))
      })
      assert.deepStrictEqual(yield* settle(sequence), Exit.succeed("ok"))
      assert.strictEqual(later.state.attempts, 3)
    })
  )

  it.effect("only tagged retryable errors are retried; the others are reported as `unknown`", () =>
    Effect.gen(function* () {
      const profile = yield* Retry.profile({ name: "t", jitter: "none", base: 1, cap: 1, maxRetries: 2 })
      const events: Array<string> = []
      const listen = Effect.provideService(CallReport.Events, (event: CallReport.Event) => {
        if (event._tag === "GaveUp" || event._tag === "Retried") events.push(`${event._tag}:${event.error}`)
      })
      for (const error of [null, "boom", { _tag: 42 }, { message: "no tag" }]) {
        events.length = 0
        const { call, state } = scripted([error])
        yield* settle(call.pipe(Retry.retry({ profile }), listen))
        assert.strictEqual(state.attempts, 1, JSON.stringify(error))
        assert.deepStrictEqual(events, ["GaveUp:unknown"], JSON.stringify(error))
      }
      // a plain object tagged as a retryable error is retried
      events.length = 0
      const { call, state } = scripted([{ _tag: "Overloaded" }])
      assert.isTrue(Exit.isSuccess(yield* settle(call.pipe(Retry.retry({ profile }), listen))))
      assert.strictEqual(state.attempts, 2)
      assert.deepStrictEqual(events, ["Retried:Overloaded"])
    })
  )

  it.effect("streams: retried before the first chunk, never after it; the budget counts the stream", () =>
    Effect.gen(function* () {
      const profile = yield* Retry.profile({ name: "t", jitter: "none", base: 1, cap: 1, maxRetries: 2 })
      const chunks = (failFirst: number, failAfterChunk: boolean) => {
        const state = { attempts: 0 }
        const stream = Stream.suspend(() => {
          const n = ++state.attempts
          if (n <= failFirst) return Stream.fail(overloaded())
          return failAfterChunk ? Stream.concat(Stream.make("a"), Stream.fail(overloaded())) : Stream.make("a", "b")
        })
        return { stream, state }
      }
      const early = chunks(1, false)
      const collected = yield* settle(Stream.runCollect(early.stream.pipe(Retry.retryStream({ profile }))))
      assert.deepStrictEqual(collected, Exit.succeed(["a", "b"]))
      assert.strictEqual(early.state.attempts, 2)
      const late = chunks(0, true)
      const cut = yield* settle(Stream.runCollect(late.stream.pipe(Retry.retryStream({ profile }))))
      assert.strictEqual((errorOf(cut) as LlmError.LlmError)._tag, "Overloaded")
      assert.strictEqual(late.state.attempts, 1)
      // the stream deposits into the budget: its own credit pays its retry
      const budget = yield* RetryBudget.make({ ratio: 1, minRetries: 0 })
      const paid = chunks(1, false)
      const exit = yield* settle(
        Stream.runCollect(paid.stream.pipe(Retry.retryStream({ profile, budget, key: "p/m" })))
      )
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(paid.state.attempts, 2)
    })
  )

  it.effect("an inner retry inside an outer one passes errors through: retries happen at one layer", () =>
    Effect.gen(function* () {
      const profile = yield* Retry.profile({ name: "t", jitter: "none", base: 1, cap: 1, maxRetries: 2 })
      const { call, state } = scripted([overloaded(), overloaded(), overloaded(), overloaded()])
      const exit = yield* settle(call.pipe(Retry.retry({ profile }), Retry.retry({ profile })))
      // 1 + 2 attempts, not (1 + 2) * (1 + 2)
      assert.strictEqual(state.attempts, 3)
      assert.isTrue(Exit.isFailure(exit))
    })
  )

  it.effect("give-ups are counted by reason and key", () =>
    Effect.gen(function* () {
      const profile = yield* Retry.profile({ name: "t", jitter: "none", base: 1, cap: 1, maxRetries: 1 })
      const key = "p/m"
      yield* settle(scripted([overloaded(), overloaded()]).call.pipe(Retry.retry({ profile, key })))
      yield* settle(scripted([new LlmError.BadRequest({ message: "" })]).call.pipe(Retry.retry({ profile, key })))
      const count = (reason: string) =>
        Effect.map(
          Metric.value(Metric.withAttributes(Retry.giveUpsTotal, { reason, key })),
          (s) => (s as { readonly count: number }).count
        )
      const tooLong = yield* Retry.profile({ name: "t", jitter: "none", base: 1, cap: 1, maxRetryAfter: 10 })
      yield* settle(scripted([limited(11)]).call.pipe(Retry.retry({ profile: tooLong, key })))
      const short = yield* Retry.profile({ name: "t", jitter: "none", base: 1, cap: 1, deadline: 10 })
      yield* settle(scripted([limited(11)]).call.pipe(Retry.retry({ profile: short, key })))
      assert.strictEqual(yield* count("max-retries"), 1)
      assert.strictEqual(yield* count("not-retryable"), 1)
      assert.strictEqual(yield* count("retry-after-too-long"), 1)
      assert.strictEqual(yield* count("deadline"), 1)
      const retries = yield* Metric.value(Metric.withAttributes(Retry.retriesTotal, { reason: "Overloaded", key }))
      assert.strictEqual((retries as { readonly count: number }).count, 1)
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Ref, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { LlmResponse } from "@llm-resilience/core"
import { LlmError, LlmProvider, Timeouts } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

const request = { model: "m", messages: [{ role: "user" as const, content: "Hi" }] }

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit))
  const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  assert.isDefined(error)
  return (error as { readonly error: E }).error
}

const finish: LlmResponse.StreamChunk = {
  _tag: "Finish",
  finishReason: "stop",
  usage: { inputTokens: 1, outputTokens: 2 },
  provider: "raw",
  model: "m"
}

describe("Timeouts", () => {
  it.effect("total timeout: a stalled call fails with Timeout{total} and is interrupted", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ default: { behavior: FakeProvider.stall } })
      const timeouts = yield* Timeouts.make({ totalMs: 5_000 })
      const llm = timeouts.wrap(fake.provider)
      const fiber = yield* Effect.forkChild(Effect.exit(llm.complete(request)))
      yield* TestClock.adjust(4_999)
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust(1)
      const error = failureOf(yield* Fiber.join(fiber))
      assert.instanceOf(error, LlmError.Timeout)
      assert.strictEqual((error as LlmError.Timeout).phase, "total")
      assert.strictEqual((error as LlmError.Timeout).afterMs, 5_000)
      assert.strictEqual((error as LlmError.Timeout).provider, "fake")
      const calls = yield* fake.calls
      assert.deepStrictEqual(
        calls.map((c) => c.outcome),
        ["interrupted"]
      )
    })
  )

  it.effect("a call that answers in time is untouched, and its deadline never fires later", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ default: { latency: "1 second", text: "ok" } })
      const timeouts = yield* Timeouts.make({ totalMs: 5_000 })
      const llm = timeouts.wrap(fake.provider)
      const fiber = yield* Effect.forkChild(llm.complete(request))
      yield* TestClock.adjust(1_000)
      const response = yield* Fiber.join(fiber)
      assert.strictEqual(response.text, "ok")
      yield* TestClock.adjust(10_000)
      // a second call after the first deadline passed still gets its full budget
      const second = yield* Effect.forkChild(llm.complete(request))
      yield* TestClock.adjust(1_000)
      assert.strictEqual((yield* Fiber.join(second)).text, "ok")
    })
  )

  it.effect("the interrupted call's reservation is released before the Timeout is seen", () =>
    Effect.gen(function* () {
      const held = yield* Ref.make(0)
      const timeouts = yield* Timeouts.make({ totalMs: 1_000 })
      const reserved = Effect.acquireRelease(
        Ref.update(held, (n) => n + 1),
        () => Ref.update(held, (n) => n - 1)
      )
      const call = Effect.scoped(Effect.andThen(reserved, Effect.never))
      const fiber = yield* Effect.forkChild(
        Effect.exit(timeouts.complete(call, request)).pipe(
          Effect.flatMap((exit) => Effect.map(Ref.get(held), (n) => [exit, n] as const))
        )
      )
      yield* TestClock.adjust(10)
      assert.strictEqual(yield* Ref.get(held), 1)
      yield* TestClock.adjust(1_000)
      const [exit, heldAtFailure] = yield* Fiber.join(fiber)
      assert.instanceOf(failureOf(exit), LlmError.Timeout)
      assert.strictEqual(heldAtFailure, 0)
    })
  )

  it.effect("first-token timeout: a stream that never sends a chunk", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ default: { behavior: FakeProvider.stall } })
      const timeouts = yield* Timeouts.make({ firstTokenMs: 2_000, idleMs: 500 })
      const llm = timeouts.wrap(fake.provider)
      const fiber = yield* Effect.forkChild(Effect.exit(Stream.runCollect(llm.stream(request))))
      yield* TestClock.adjust(1_999)
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust(1)
      const error = failureOf(yield* Fiber.join(fiber)) as LlmError.Timeout
      assert.instanceOf(error, LlmError.Timeout)
      assert.strictEqual(error.phase, "first-token")
      assert.strictEqual(error.afterMs, 2_000)
    })
  )

  it.effect("idle timeout mid-stream: chunks arrive, then silence", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({
        default: {
          latency: "100 millis",
          stream: { chunks: 5, interval: "200 millis" },
          behavior: FakeProvider.stallMidStream(2)
        }
      })
      const timeouts = yield* Timeouts.make({ firstTokenMs: 1_000, idleMs: 1_000 })
      const llm = timeouts.wrap(fake.provider)
      const seen = yield* Ref.make(0)
      const fiber = yield* Effect.forkChild(
        Effect.exit(Stream.runForEach(llm.stream(request), () => Ref.update(seen, (n) => n + 1)))
      )
      // chunk 1 at 100 ms, chunk 2 at 300 ms, then nothing: idle fires 1 000 ms after the pull at 300 ms
      yield* TestClock.adjust(1_299)
      assert.isUndefined(fiber.pollUnsafe())
      assert.strictEqual(yield* Ref.get(seen), 2)
      yield* TestClock.adjust(1)
      const error = failureOf(yield* Fiber.join(fiber)) as LlmError.Timeout
      assert.strictEqual(error.phase, "idle")
      assert.strictEqual(error.afterMs, 1_000)
      assert.deepStrictEqual(
        (yield* fake.calls).map((c) => c.outcome),
        ["interrupted"]
      )
    })
  )

  it.effect("slow but steady chunks pass the idle timeout and fail the stream's total timeout", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({
        default: { latency: "500 millis", stream: { chunks: 20, interval: "500 millis" } }
      })
      const timeouts = yield* Timeouts.make({ totalMs: 3_000, firstTokenMs: 1_000, idleMs: 1_000 })
      const fiber = yield* Effect.forkChild(
        Effect.exit(Stream.runCollect(timeouts.wrap(fake.provider).stream(request)))
      )
      yield* TestClock.adjust(3_000)
      const error = failureOf(yield* Fiber.join(fiber)) as LlmError.Timeout
      assert.strictEqual(error.phase, "total")
      assert.strictEqual(error.afterMs, 3_000)
    })
  )

  it.effect("a complete stream passes; a stream that ends without Finish is StreamTruncated", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make()
      const whole = yield* Stream.runCollect(
        timeouts.stream(Stream.make<Array<LlmResponse.StreamChunk>>({ _tag: "TextDelta", text: "a" }, finish), request)
      )
      assert.strictEqual(whole.length, 2)
      const cut = yield* Effect.exit(
        Stream.runCollect(
          timeouts.stream(
            Stream.make<Array<LlmResponse.StreamChunk>>(
              { _tag: "TextDelta", text: "a" },
              { _tag: "TextDelta", text: "b" }
            ),
            request,
            "raw"
          )
        )
      )
      const error = failureOf(cut) as LlmError.StreamTruncated
      assert.instanceOf(error, LlmError.StreamTruncated)
      assert.strictEqual(error.receivedChunks, 2)
      assert.strictEqual(error.provider, "raw")
      const empty = failureOf(yield* Effect.exit(Stream.runCollect(timeouts.stream(Stream.empty, request))))
      assert.instanceOf(empty, LlmError.StreamTruncated)
    })
  )

  it.effect("limits are chosen by request path", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({ totalMs: 60_000, paths: { autocomplete: { totalMs: 2_000 } } })
      assert.deepStrictEqual(timeouts.limitsFor({ ...request, metadata: { path: "autocomplete" } }), {
        totalMs: 2_000,
        firstTokenMs: Timeouts.defaults.firstTokenMs,
        idleMs: Timeouts.defaults.idleMs
      })
      assert.strictEqual(timeouts.limitsFor({ ...request, metadata: { path: "other" } }).totalMs, 60_000)
      const fiber = yield* Effect.forkChild(
        Effect.exit(timeouts.complete(Effect.never, { ...request, metadata: { path: "autocomplete" } }))
      )
      yield* TestClock.adjust(2_000)
      assert.strictEqual((failureOf(yield* Fiber.join(fiber)) as LlmError.Timeout).afterMs, 2_000)
    })
  )

  it.effect("invalid options fail construction with an error naming the field", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(Timeouts.make({ paths: { chat: { idleMs: -1 } } }))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(failureOf(exit)), "idleMs")
    })
  )

  it.effect("a provider used after its layer was released dies at once with a defect naming Timeouts", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        Timeouts.layer({ totalMs: 5_000, firstTokenMs: 1_000 }).pipe(
          Layer.provide(FakeProvider.layer({ default: { behavior: FakeProvider.stall } }))
        ),
        scope
      )
      const llm = Context.get(context, LlmProvider.LlmProvider)
      yield* Scope.close(scope, Exit.void)
      const complete = yield* Effect.forkChild(Effect.exit(llm.complete(request)))
      const stream = yield* Effect.forkChild(Effect.exit(Stream.runDrain(llm.stream(request))))
      // an old timer fired nothing: the stalled calls would still be running after every deadline passed
      yield* TestClock.adjust(10_000)
      for (const fiber of [complete, stream] as ReadonlyArray<Fiber.Fiber<Exit.Exit<unknown, unknown>>>) {
        const exit = fiber.pollUnsafe()
        assert.isDefined(exit, "the call hangs after release")
        assert.isTrue(Exit.isSuccess(exit!))
        const inner = (exit as Exit.Success<Exit.Exit<unknown, unknown>>).value
        const defect = Exit.isFailure(inner) ? inner.cause.reasons.find((r) => r._tag === "Die") : undefined
        assert.isDefined(defect, "a defect, not a typed failure or an interruption")
        assert.match(String((defect as { readonly defect: unknown }).defect), /Timeouts was used after .* released/)
      }
    })
  )

  it.effect("released: calls die before any deadline would have passed, and with no limit at all too", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const timeouts = yield* Scope.provide(scope)(
        Timeouts.make({ totalMs: Infinity, firstTokenMs: Infinity, idleMs: Infinity })
      )
      yield* Scope.close(scope, Exit.void)
      const exit = yield* Effect.exit(timeouts.complete(Effect.succeed("ok"), request))
      assert.isTrue(Exit.hasDies(exit))
      const streamed = yield* Effect.exit(Stream.runDrain(timeouts.stream(Stream.make(finish), request)))
      assert.isTrue(Exit.hasDies(streamed))
    })
  )
})

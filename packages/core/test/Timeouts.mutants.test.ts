/**
 * Edges of `Timeouts` a wrong implementation could pass the rest of the suite with: each limit met just in
 * time and just too late, the fields of the `Timeout` it fails with (phase, `afterMs`, provider and model), a
 * path's limits falling back field by field, `Infinity` turning a limit off. Virtual time throughout.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Layer, Stream } from "effect"
import { TestClock } from "effect/testing"
import { LlmError, LlmProvider, type LlmResponse, Timeouts } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

const request = { model: "m", messages: [{ role: "user" as const, content: "Hi" }] }
const delta = (text: string): LlmResponse.StreamChunk => ({ _tag: "TextDelta", text })
const finish: LlmResponse.StreamChunk = {
  _tag: "Finish",
  finishReason: "stop",
  usage: { inputTokens: 1, outputTokens: 2 },
  provider: "raw",
  model: "m"
}

/** A stream emitting each chunk after its delay (ms since the previous one). */
const timed = (chunks: ReadonlyArray<readonly [number, LlmResponse.StreamChunk]>) =>
  Stream.fromIterable(chunks).pipe(Stream.mapEffect(([ms, chunk]) => Effect.as(Effect.sleep(ms), chunk)))

const errorOf = <A, E>(exit: Exit.Exit<A, E>) =>
  Exit.isFailure(exit)
    ? (exit.cause.reasons.find((r) => r._tag === "Fail") as { error: E } | undefined)?.error
    : undefined

/** What the fiber ended with: it must have ended already (a deadline that never fires fails, not hangs, a test). */
const exitOf = <A, E>(fiber: Fiber.Fiber<A, E>): Exit.Exit<A, E> => {
  const exit = fiber.pollUnsafe()
  assert.isDefined(exit, "the fiber is still running")
  return exit!
}

/** Runs `self` in a child fiber while an hour of virtual time passes. */
const settle = <A, E>(self: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(self)
    yield* TestClock.adjust("1 hour")
    return exitOf(fiber)
  })

describe("Timeouts: edges", () => {
  it.effect("total: an answer 1 ms before the limit passes, 1 ms after fails with the limit's fields", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({ totalMs: 1_000 })
      const after = (ms: number) => Effect.as(Effect.sleep(ms), "answer")
      assert.deepStrictEqual(yield* settle(timeouts.complete(after(999), request, "p")), Exit.succeed("answer"))
      const late = errorOf(yield* settle(timeouts.complete(after(1_001), request, "p"))) as LlmError.Timeout
      assert.strictEqual(late._tag, "Timeout")
      assert.strictEqual(late.phase, "total")
      assert.strictEqual(late.afterMs, 1_000)
      assert.strictEqual(late.provider, "p")
      assert.strictEqual(late.model, "m")
      // no provider given: the error names none
      const anonymous = errorOf(yield* settle(timeouts.complete(after(1_001), request))) as LlmError.Timeout
      assert.isUndefined(anonymous.provider)
      assert.strictEqual(anonymous.model, "m")
    })
  )

  it.effect("first token: a first chunk just in time passes, just too late fails", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({ firstTokenMs: 500, idleMs: 10_000, totalMs: 60_000 })
      const run = (firstMs: number) =>
        settle(
          Stream.runCollect(
            timeouts.stream(
              timed([
                [firstMs, delta("a")],
                [0, finish]
              ]),
              request,
              "p"
            )
          )
        )
      assert.isTrue(Exit.isSuccess(yield* run(499)))
      const late = errorOf(yield* run(501)) as LlmError.Timeout
      assert.strictEqual(late.phase, "first-token")
      assert.strictEqual(late.afterMs, 500)
      assert.strictEqual(late.provider, "p")
    })
  )

  it.effect("idle: each gap is judged alone, from the previous chunk", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({ firstTokenMs: 1_000, idleMs: 300, totalMs: 60_000 })
      const run = (gaps: ReadonlyArray<number>) =>
        settle(
          Stream.runCollect(
            timeouts.stream(
              timed([[100, delta("a")], ...gaps.map((g) => [g, delta("b")] as const), [0, finish]]),
              request
            )
          )
        )
      // ten gaps just under the limit: 2.9 s in all, far beyond one idle limit
      assert.isTrue(Exit.isSuccess(yield* run(Array.from({ length: 10 }, () => 299))))
      const late = errorOf(yield* run([299, 301])) as LlmError.Timeout
      assert.strictEqual(late.phase, "idle")
      assert.strictEqual(late.afterMs, 300)
      // the first chunk is judged by the first-token limit, not the idle one
      assert.isTrue(
        Exit.isSuccess(
          yield* settle(
            Stream.runCollect(
              timeouts.stream(
                timed([
                  [900, delta("a")],
                  [0, finish]
                ]),
                request
              )
            )
          )
        )
      )
    })
  )

  it.effect("a path's missing limits fall back to the defaults one by one; unknown paths use the defaults", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({
        totalMs: 10_000,
        idleMs: 2_000,
        paths: { chat: { firstTokenMs: 700 }, batch: { totalMs: 50_000, idleMs: 9_000 } }
      })
      const of = (path?: string) =>
        timeouts.limitsFor(path === undefined ? request : { ...request, metadata: { path } })
      assert.deepStrictEqual(of("chat"), { totalMs: 10_000, firstTokenMs: 700, idleMs: 2_000 })
      assert.deepStrictEqual(of("batch"), {
        totalMs: 50_000,
        firstTokenMs: Timeouts.defaults.firstTokenMs,
        idleMs: 9_000
      })
      assert.deepStrictEqual(of("other"), {
        totalMs: 10_000,
        firstTokenMs: Timeouts.defaults.firstTokenMs,
        idleMs: 2_000
      })
      assert.deepStrictEqual(of(), { totalMs: 10_000, firstTokenMs: Timeouts.defaults.firstTokenMs, idleMs: 2_000 })
      const defaults = yield* Timeouts.make({})
      assert.deepStrictEqual(defaults.limitsFor(request), Timeouts.defaults)
    })
  )

  it.effect("Infinity turns a limit off", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({ totalMs: Infinity, firstTokenMs: Infinity, idleMs: Infinity })
      const slow = Effect.as(Effect.sleep("50 minutes"), "late")
      assert.deepStrictEqual(yield* settle(timeouts.complete(slow, request)), Exit.succeed("late"))
      const stream = timed([
        [1_000_000, delta("a")],
        [1_000_000, delta("b")],
        [0, finish]
      ])
      const collected = yield* settle(Stream.runCollect(timeouts.stream(stream, request)))
      assert.isTrue(Exit.isSuccess(collected))
    })
  )

  it.effect("a stream's total limit counts from its first pull to its end, across chunks", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({ totalMs: 1_000, firstTokenMs: 1_000, idleMs: 1_000 })
      const chunks = (gap: number) =>
        timed([
          [gap, delta("a")],
          [gap, delta("b")],
          [gap, delta("c")],
          [0, finish]
        ])
      assert.isTrue(Exit.isSuccess(yield* settle(Stream.runCollect(timeouts.stream(chunks(333), request)))))
      const late = errorOf(yield* settle(Stream.runCollect(timeouts.stream(chunks(334), request)))) as LlmError.Timeout
      assert.strictEqual(late.phase, "total")
      assert.strictEqual(late.afterMs, 1_000)
    })
  )

  it.effect("a stream that ends without Finish reports how many chunks it delivered", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({})
      const cut = errorOf(
        yield* settle(Stream.runCollect(timeouts.stream(Stream.make(delta("a"), delta("b")), request, "p")))
      ) as LlmError.StreamTruncated
      assert.strictEqual(cut._tag, "StreamTruncated")
      assert.strictEqual(cut.receivedChunks, 2)
      assert.strictEqual(cut.provider, "p")
      // chunks after Finish are not a truncation
      const whole = yield* settle(Stream.runCollect(timeouts.stream(Stream.make(delta("a"), finish), request)))
      assert.isTrue(Exit.isSuccess(whole))
    })
  )

  it.effect("limits that are not positive numbers fail construction naming the field", () =>
    Effect.gen(function* () {
      for (const [options, field] of [
        [{ totalMs: 0 }, "totalMs"],
        [{ firstTokenMs: -1 }, "firstTokenMs"],
        [{ paths: { chat: { idleMs: 0 } } }, "idleMs"]
      ] as const) {
        const error = yield* Effect.flip(Timeouts.make(options))
        assert.include(String(error), field)
      }
    })
  )

  it.effect("many calls in flight, started in any order: each times out at its own deadline, not another's", () =>
    Effect.gen(function* () {
      const limits = [500, 300, 800, 100, 700, 200, 600, 400, 300, 900, 150, 50]
      const paths: Record<string, { readonly totalMs: number }> = {}
      limits.forEach((totalMs, i) => (paths[`p${i}`] = { totalMs }))
      const timeouts = yield* Timeouts.make({ paths })
      // half the calls answer before their limit (their deadlines are cleared), the others hang
      const fibers = yield* Effect.forEach(limits, (totalMs, i) =>
        Effect.forkChild(
          timeouts
            .complete(i % 2 === 0 ? Effect.never : Effect.as(Effect.sleep(totalMs - 10), "ok"), {
              ...request,
              metadata: { path: `p${i}` }
            })
            .pipe(
              Effect.matchEffect({
                onFailure: () => Effect.map(Clock.currentTimeMillis, (at) => `timeout@${at}`),
                onSuccess: (a) => Effect.map(Clock.currentTimeMillis, (at) => `${a}@${at}`)
              })
            )
        )
      )
      yield* TestClock.adjust("1 second")
      const ends = fibers.map((fiber) => (exitOf(fiber) as Exit.Success<string>).value)
      assert.deepStrictEqual(
        ends,
        limits.map((ms, i) => (i % 2 === 0 ? `timeout@${ms}` : `ok@${ms - 10}`))
      )
    })
  )

  it.effect("a call from an uninterruptible region is still bounded, and still answered in time", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({ totalMs: 1_000 })
      const hung = Effect.uninterruptible(timeouts.complete(Effect.interruptible(Effect.never), request))
      const late = errorOf(yield* settle(hung)) as LlmError.Timeout
      assert.strictEqual(late.phase, "total")
      const fast = Effect.uninterruptible(timeouts.complete(Effect.as(Effect.sleep(500), "ok"), request))
      assert.deepStrictEqual(yield* settle(fast), Exit.succeed("ok"))
      const failing = Effect.uninterruptible(timeouts.complete(Effect.fail("boom"), request))
      assert.strictEqual(errorOf(yield* settle(failing)), "boom")
    })
  )

  it.effect("a stream read from an uninterruptible region keeps its first-token, idle and total limits", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({ firstTokenMs: 500, idleMs: 300, totalMs: 2_000 })
      const run = (chunks: ReadonlyArray<readonly [number, LlmResponse.StreamChunk]>) =>
        settle(Effect.uninterruptible(Stream.runCollect(timeouts.stream(timed(chunks), request, "p"))))
      const silent = errorOf(yield* run([[501, delta("a")]])) as LlmError.Timeout
      assert.strictEqual(silent.phase, "first-token")
      assert.deepStrictEqual(
        yield* run([
          [499, delta("a")],
          [299, delta("b")],
          [0, finish]
        ]),
        Exit.succeed([delta("a"), delta("b"), finish])
      )
      const stalled = errorOf(
        yield* run([
          [100, delta("a")],
          [301, delta("b")]
        ])
      ) as LlmError.Timeout
      assert.strictEqual(stalled.phase, "idle")
      const long = errorOf(yield* run(Array.from({ length: 10 }, () => [250, delta("a")] as const))) as LlmError.Timeout
      assert.strictEqual(long.phase, "total")
      const broken = yield* run([[100, delta("a")]])
      assert.strictEqual((errorOf(broken) as LlmError.StreamTruncated)._tag, "StreamTruncated")
    })
  )

  it.effect("a consumer slower than the stream's total limit gets the total timeout at its next wait", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({ firstTokenMs: 500, idleMs: 500, totalMs: 1_000 })
      const ended: Array<number> = []
      const fiber = yield* Effect.forkChild(
        Effect.exit(
          timeouts
            .stream(
              timed([
                [100, delta("a")],
                [100, delta("b")],
                [0, finish]
              ]),
              request
            )
            .pipe(
              // the consumer spends 1.5 s on the first chunk: the total limit has passed when it asks again
              Stream.tap(() => Effect.sleep(1_500)),
              Stream.runCollect,
              Effect.onExit(() => Effect.map(Clock.currentTimeMillis, (at) => ended.push(at)))
            )
        )
      )
      yield* TestClock.adjust("1 hour")
      const late = errorOf((exitOf(fiber) as Exit.Success<Exit.Exit<unknown, unknown>>).value) as LlmError.Timeout
      assert.strictEqual(late.phase, "total")
      assert.strictEqual(late.afterMs, 1_000)
      // pulled at 1.6 s, given up a moment later rather than after the chunk's 100 ms
      assert.deepStrictEqual(ended, [1_601])
    })
  )

  it.effect("each Timeout's message says what was late and after how long; truncation says how many chunks", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({ firstTokenMs: 500, idleMs: 300, totalMs: 1_000 })
      const collect = (chunks: ReadonlyArray<readonly [number, LlmResponse.StreamChunk]>) =>
        settle(Stream.runCollect(timeouts.stream(timed(chunks), request)))
      const messageOf = (exit: Exit.Exit<unknown, unknown>) => (errorOf(exit) as { readonly message: string }).message
      assert.strictEqual(
        messageOf(yield* settle(timeouts.complete(Effect.never, request))),
        "no response within 1000 ms"
      )
      assert.strictEqual(messageOf(yield* collect([[600, delta("a")]])), "no first chunk within 500 ms")
      assert.strictEqual(
        messageOf(
          yield* collect([
            [100, delta("a")],
            [100, delta("b")],
            [400, delta("c")]
          ])
        ),
        "no chunk for 300 ms after chunk 2"
      )
      assert.strictEqual(
        messageOf(yield* collect(Array.from({ length: 5 }, () => [250, delta("a")] as const))),
        "stream not complete within 1000 ms"
      )
      assert.strictEqual(
        messageOf(yield* collect([[100, delta("a")]])),
        "stream ended without its end marker after 1 chunks"
      )
    })
  )

  it.effect("when a phase's limit and the total limit fall at the same moment, the total one is reported", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({ firstTokenMs: 500, idleMs: 400, totalMs: 500 })
      const silent = errorOf(
        yield* settle(Stream.runCollect(timeouts.stream(Stream.never, request)))
      ) as LlmError.Timeout
      assert.strictEqual(silent.phase, "total")
      assert.strictEqual(silent.afterMs, 500)
      // 100 ms in, the idle limit (400 ms) ends at the total's 500 ms too
      const stalled = errorOf(
        yield* settle(
          Stream.runCollect(timeouts.stream(Stream.concat(timed([[100, delta("a")]]), Stream.never), request))
        )
      ) as LlmError.Timeout
      assert.strictEqual(stalled.phase, "total")
    })
  )

  it.effect("after a Finish that came first, a stream that hangs is judged by the idle limit", () =>
    Effect.gen(function* () {
      const timeouts = yield* Timeouts.make({ firstTokenMs: 5_000, idleMs: 300, totalMs: 60_000 })
      const fiber = yield* Effect.forkChild(
        Stream.runCollect(timeouts.stream(Stream.concat(timed([[100, finish]]), Stream.never), request))
      )
      yield* TestClock.adjust(399)
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust(1)
      const late = errorOf(exitOf(fiber)) as LlmError.Timeout
      assert.strictEqual(late.phase, "idle")
      assert.strictEqual(late.afterMs, 300)
    })
  )

  it.effect("a wrapped provider keeps its name and guards both complete and stream", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ name: "slowpoke", default: { behavior: FakeProvider.stall } })
      const timeouts = yield* Timeouts.make({ totalMs: 1_000, firstTokenMs: 500 })
      const llm = timeouts.wrap(fake.provider)
      assert.strictEqual(llm.name, "slowpoke")
      const late = errorOf(yield* settle(llm.complete(request))) as LlmError.Timeout
      assert.deepStrictEqual([late.phase, late.provider], ["total", "slowpoke"])
      const silent = errorOf(yield* settle(Stream.runCollect(llm.stream(request)))) as LlmError.Timeout
      assert.deepStrictEqual([silent.phase, silent.provider], ["first-token", "slowpoke"])
      assert.strictEqual(timeouts.stage.name, "timeouts")
    })
  )

  it.effect("Timeouts.layer guards the provider below it", () =>
    Effect.gen(function* () {
      const llm = yield* LlmProvider.LlmProvider
      assert.strictEqual(llm.name, "below")
      const late = errorOf(yield* settle(llm.complete(request))) as LlmError.Timeout
      assert.deepStrictEqual([late.phase, late.afterMs, late.provider], ["total", 1_000, "below"])
    }).pipe(
      Effect.provide(
        Timeouts.layer({ totalMs: 1_000 }).pipe(
          Layer.provide(FakeProvider.layer({ name: "below", default: { behavior: FakeProvider.stall } }))
        )
      )
    )
  )
})

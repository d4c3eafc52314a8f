import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { Bulkhead, LlmError } from "@llm-resilience/core"

describe("Bulkhead", () => {
  it.effect("caps concurrency and hands a released permit to the next waiter, interactive first", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ key: "k", maxConcurrency: 2, maxQueue: 10 })
      let running = 0
      let peak = 0
      const order: Array<string> = []
      const task = (id: string, priority: "interactive" | "background") =>
        Effect.gen(function* () {
          order.push(id)
          running++
          peak = Math.max(peak, running)
          yield* Effect.sleep("1 second")
          running--
        }).pipe(Bulkhead.withPermit(bulkhead, { priority }))
      const fibers = [
        yield* Effect.forkChild(task("a", "background")),
        yield* Effect.forkChild(task("b", "background")),
        yield* Effect.forkChild(task("c", "background")),
        yield* Effect.forkChild(task("d", "interactive")),
        yield* Effect.forkChild(task("e", "background")),
        yield* Effect.forkChild(task("f", "interactive"))
      ]
      yield* Effect.yieldNow
      assert.strictEqual(bulkhead.available, 0)
      assert.strictEqual(bulkhead.queued, 4)
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.joinAll(fibers)
      assert.strictEqual(peak, 2)
      assert.deepStrictEqual(order, ["a", "b", "d", "f", "c", "e"])
      assert.strictEqual(bulkhead.available, 2)
    })
  )

  it.effect("rejects with concurrency-queue-full past its queue bound", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ key: "k", maxConcurrency: 1, maxQueue: 1 })
      const slow = Effect.sleep("1 second").pipe(Bulkhead.withPermit(bulkhead))
      const f1 = yield* Effect.forkChild(slow)
      const f2 = yield* Effect.forkChild(slow)
      yield* Effect.yieldNow
      const error = yield* Effect.flip(slow)
      assert.instanceOf(error, LlmError.AdmissionRejected)
      assert.strictEqual(error.reason, "concurrency-queue-full")
      assert.strictEqual(error.key, "k")
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.joinAll([f1, f2])
    })
  )

  it.effect("interrupting waiting and running callers releases every permit and queue slot", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrency: 10, maxQueue: 2000 })
      const fibers = []
      for (let i = 0; i < 1000; i++) {
        fibers.push(
          yield* Effect.forkChild(
            Effect.never.pipe(Bulkhead.withPermit(bulkhead, { priority: i % 2 ? "background" : "interactive" }))
          )
        )
      }
      yield* Effect.yieldNow
      assert.strictEqual(bulkhead.available, 0)
      assert.strictEqual(bulkhead.queued, 990)
      // interrupt running ones first: each hand-over to a waiter that is interrupted next must come back
      yield* Fiber.interruptAll(fibers)
      assert.strictEqual(bulkhead.available, 10)
      assert.strictEqual(bulkhead.queued, 0)
      const exit = yield* Effect.exit(Effect.succeed(1).pipe(Bulkhead.withPermit(bulkhead)))
      assert.deepStrictEqual(exit, Exit.succeed(1))
    })
  )

  it.effect("a failing call releases its permit", () =>
    Effect.gen(function* () {
      const bulkhead = yield* Bulkhead.make({ maxConcurrency: 1 })
      yield* Effect.flip(Effect.fail("boom").pipe(Bulkhead.withPermit(bulkhead)))
      assert.strictEqual(bulkhead.available, 1)
    })
  )

  it("a free permit is taken synchronously", () => {
    const result = Effect.runSync(
      Effect.flatMap(Bulkhead.make({ maxConcurrency: 1 }), (b) => Effect.succeed("ok").pipe(Bulkhead.withPermit(b)))
    )
    assert.strictEqual(result, "ok")
  })

  it.effect("invalid options fail naming the field", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(Bulkhead.make({ maxConcurrency: 0 }))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "maxConcurrency")
    })
  )
})

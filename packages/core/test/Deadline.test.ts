import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Ref } from "effect"
import { TestClock } from "effect/testing"
import * as Deadline from "../src/internal/deadline.ts"

class Late {
  readonly _tag = "Late"
}

const currentFiberId = Effect.withFiber((fiber) => Effect.succeed(fiber.id))

describe("internal/deadline", () => {
  it.effect("guards effects on the caller's own fiber with the installed Effect (no fork per call)", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      // Pins the fiber internals the fork-free guard relies on: an Effect upgrade that changes them fails here.
      assert.isTrue(timer.forkFree)
      const outer = yield* currentFiberId
      const inner = yield* timer.withinMs(currentFiberId, 1_000, () => new Late())
      assert.strictEqual(inner, outer)
    })
  )

  it.effect("at the deadline the effect is interrupted (finalizers first) and the caller carries on", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const log = yield* Ref.make<Array<string>>([])
      const note = (s: string) => Ref.update(log, (xs) => [...xs, s])
      const hung = Effect.never.pipe(Effect.onInterrupt(() => note("finalizer")))
      const fiber = yield* Effect.forkChild(
        Effect.gen(function* () {
          const exit = yield* Effect.exit(timer.withinMs(hung, 1_000, () => new Late()))
          yield* note(Exit.isFailure(exit) ? "timed out" : "answered")
          yield* Effect.sleep(500)
          yield* note("after")
          return "done"
        })
      )
      yield* TestClock.adjust(999)
      assert.deepStrictEqual(yield* Ref.get(log), [])
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(yield* Ref.get(log), ["finalizer", "timed out"])
      yield* TestClock.adjust(500)
      assert.strictEqual(yield* Fiber.join(fiber), "done")
      assert.deepStrictEqual(yield* Ref.get(log), ["finalizer", "timed out", "after"])
    })
  )

  it.effect("fails with the timeout error, not an interruption", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const fiber = yield* Effect.forkChild(Effect.exit(timer.withinMs(Effect.never, 200, () => new Late())))
      yield* TestClock.adjust(200)
      const exit = yield* Fiber.join(fiber)
      assert.deepStrictEqual(exit, Exit.fail(new Late()))
    })
  )

  it.effect("an effect that ends in time is untouched, and its deadline never reaches the fiber later", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const fiber = yield* Effect.forkChild(
        Effect.gen(function* () {
          const answer = yield* timer.withinMs(Effect.as(Effect.sleep(100), "ok"), 1_000, () => new Late())
          yield* Effect.sleep(5_000)
          return answer
        })
      )
      yield* TestClock.adjust(5_100)
      assert.deepStrictEqual(yield* Fiber.await(fiber), Exit.succeed("ok"))
    })
  )

  it.effect("a deadline that passes in an uninterruptible region fires once the region ends", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const shielded = Effect.andThen(Effect.uninterruptible(Effect.sleep(2_000)), Effect.never)
      const fiber = yield* Effect.forkChild(Effect.exit(timer.withinMs(shielded, 1_000, () => new Late())))
      yield* TestClock.adjust(1_500)
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust(500)
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(yield* Fiber.join(fiber), Exit.fail(new Late()))
    })
  )

  it.effect("nested guards: the earlier deadline wins, and the later one is cleared", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      class Inner {
        readonly _tag = "Inner"
      }
      const nested = timer.withinMs(
        timer.withinMs(Effect.never, 5_000, () => new Inner()),
        1_000,
        () => new Late()
      )
      const fiber = yield* Effect.forkChild(
        Effect.gen(function* () {
          const exit = yield* Effect.exit(nested)
          yield* Effect.sleep(10_000)
          return exit
        })
      )
      yield* TestClock.adjust(11_000)
      assert.deepStrictEqual(yield* Fiber.join(fiber), Exit.fail(new Late()))
    })
  )

  it.effect("interrupting the caller interrupts the guarded effect and clears the guard", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const finalized = yield* Ref.make(false)
      const fiber = yield* Effect.forkChild(
        timer.withinMs(Effect.never.pipe(Effect.onInterrupt(() => Ref.set(finalized, true))), 1_000, () => new Late())
      )
      yield* TestClock.adjust(100)
      yield* Fiber.interrupt(fiber)
      assert.isTrue(yield* Ref.get(finalized))
      yield* TestClock.adjust(2_000)
      assert.isTrue(Exit.hasInterrupts((yield* Fiber.await(fiber)) as Exit.Exit<unknown, unknown>))
    })
  )
})

import { assert, describe, it } from "@effect/vitest"
import { Clock, Duration, Effect, Exit, Fiber, Ref, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as Deadline from "../src/internal/deadline.ts"

class Late {
  readonly _tag = "Late"
}

const currentFiberId = Effect.withFiber((fiber) => Effect.succeed(fiber.id))

/** What the fiber ended with: it must have ended already (a deadline that never fires fails, not hangs, a test). */
const exitOf = <A, E>(fiber: Fiber.Fiber<A, E>): Exit.Exit<A, E> => {
  const exit = fiber.pollUnsafe()
  assert.isDefined(exit, "the fiber is still running")
  return exit!
}

/** The value of a fiber that must have succeeded already. */
const valueOf = <A, E>(fiber: Fiber.Fiber<A, E>): A => {
  const exit = exitOf(fiber)
  assert.isTrue(Exit.isSuccess(exit), "the fiber failed")
  return (exit as Exit.Success<A, E>).value
}

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
      assert.strictEqual(valueOf(fiber), "done")
      assert.deepStrictEqual(yield* Ref.get(log), ["finalizer", "timed out", "after"])
    })
  )

  it.effect("fails with the timeout error, not an interruption", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const fiber = yield* Effect.forkChild(Effect.exit(timer.withinMs(Effect.never, 200, () => new Late())))
      yield* TestClock.adjust(200)
      const exit = valueOf(fiber)
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
      assert.deepStrictEqual(exitOf(fiber), Exit.succeed("ok"))
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
      assert.deepStrictEqual(valueOf(fiber), Exit.fail(new Late()))
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
      assert.deepStrictEqual(valueOf(fiber), Exit.fail(new Late()))
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
      assert.isTrue(Exit.hasInterrupts(exitOf(fiber) as Exit.Exit<unknown, unknown>))
    })
  )
})

/** Deadlines in no order, some equal: a permutation of 0..40 scaled, plus repeats. */
const scattered = [...Array.from({ length: 41 }, (_, i) => ((i * 17) % 41) * 25 + 100), 650, 650, 100, 1_100, 375]

describe("internal/deadline: the shared timer", () => {
  it.effect("scheduled callbacks fire each at its own deadline, in any order of scheduling; cleared ones never", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const fired: Array<readonly [number, number]> = []
      const entries = scattered.map((deadline, i) => timer.schedule(deadline, () => fired.push([i, timer.now()])))
      // every third is cancelled before its time
      entries.forEach((entry, i) => {
        if (i % 3 === 0) entry.fire = undefined
      })
      yield* TestClock.adjust(5_000)
      const expected = scattered
        .map((deadline, i) => [i, deadline] as const)
        .filter(([i]) => i % 3 !== 0)
        .sort((a, b) => a[1] - b[1] || a[0] - b[0])
      assert.deepStrictEqual(
        [...fired].sort((a, b) => a[1] - b[1] || a[0] - b[0]),
        expected
      )
      // in deadline order
      assert.deepStrictEqual(
        fired.map(([, at]) => at),
        expected.map(([, at]) => at)
      )
    })
  )

  it.effect("an earlier deadline scheduled after a later one still fires on time; and so on as time passes", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const fired: Array<readonly [string, number]> = []
      const at = (name: string, deadline: number) => timer.schedule(deadline, () => fired.push([name, timer.now()]))
      at("c", 1_000)
      at("a", 500)
      at("b", 700)
      yield* TestClock.adjust(600)
      assert.deepStrictEqual(fired, [["a", 500]])
      // scheduled once the first timer has fired: earlier and later than the armed ones
      at("d", 650)
      at("e", 1_200)
      at("f", 900)
      yield* TestClock.adjust(1_000)
      assert.deepStrictEqual(fired, [
        ["a", 500],
        ["d", 650],
        ["b", 700],
        ["f", 900],
        ["c", 1_000],
        ["e", 1_200]
      ])
      // the timer is idle now: a new deadline arms it again
      at("g", 2_000)
      yield* TestClock.adjust(400)
      assert.deepStrictEqual(fired.at(-1), ["g", 2_000])
    })
  )

  it.effect("a callback may schedule the next one (as hedging does); a deadline already past fires at once", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const fired: Array<number> = []
      const chain = (n: number) => {
        fired.push(timer.now())
        if (n > 0) timer.schedule(timer.now() + 100, () => chain(n - 1))
      }
      timer.schedule(100, () => chain(3))
      yield* TestClock.adjust(1_000)
      assert.deepStrictEqual(fired, [100, 200, 300, 400])
      timer.schedule(timer.now() - 50, () => fired.push(-1))
      assert.deepStrictEqual(fired.at(-1), -1)
    })
  )

  it.effect(
    "one timer serves every deadline it can: a timer fiber is armed only for a deadline earlier than any armed",
    () =>
      Effect.gen(function* () {
        const clock = yield* Clock.Clock
        // the test clock, recording when each timer fiber it serves means to wake, and the fiber
        const wakes: Array<number> = []
        const timerFibers: Array<Fiber.Fiber<unknown, unknown>> = []
        const recording: Clock.Clock = {
          ...clock,
          sleep: (duration) => {
            wakes.push(clock.currentTimeMillisUnsafe() + Duration.toMillis(duration))
            return Effect.withFiber((fiber) => {
              timerFibers.push(fiber)
              return clock.sleep(duration)
            })
          }
        }
        const timer = Deadline.makeUnsafe(recording, yield* Effect.context<never>())
        yield* Effect.addFinalizer(() => timer.close)
        const fired: Array<readonly [string, number]> = []
        const at = (name: string, deadline: number) =>
          timer.schedule(deadline, () => fired.push([name, clock.currentTimeMillisUnsafe()]))
        at("a", 1_000)
        at("b", 1_000)
        at("c", 500)
        at("d", 700)
        // a cancelled entry between two live ones: the timer never wakes for it
        at("e", 600).fire = undefined
        assert.deepStrictEqual(wakes, [1_000, 500])
        yield* TestClock.adjust(2_000)
        assert.deepStrictEqual(fired, [
          ["c", 500],
          ["d", 700],
          ["a", 1_000],
          ["b", 1_000]
        ])
        // after 500 ms, one more timer for the next live deadline (700 ms), none for 1 000 ms (already armed)
        assert.deepStrictEqual(wakes, [1_000, 500, 700])
        // every timer fiber ended cleanly
        assert.isTrue(
          timerFibers.every((fiber) => fiber.pollUnsafe() !== undefined && Exit.isSuccess(fiber.pollUnsafe()!))
        )
      })
  )

  it.effect("once its scope closes the timer fires nothing: neither pending deadlines nor new ones", () =>
    Effect.gen(function* () {
      const fired: Array<string> = []
      const scope = yield* Scope.make()
      const timer = yield* Scope.provide(scope)(Deadline.make)
      timer.schedule(1_000, () => fired.push("pending"))
      yield* TestClock.adjust(500)
      yield* Scope.close(scope, Exit.void)
      timer.schedule(800, () => fired.push("after close"))
      yield* TestClock.adjust(5_000)
      assert.deepStrictEqual(fired, [])
    })
  )

  it.effect("once its scope closes a guarded effect dies at once, naming the owner, instead of running unguarded", () =>
    Effect.gen(function* () {
      const scope = yield* Scope.make()
      const timer = yield* Scope.provide(scope)(Deadline.makeFor("the test's stage"))
      assert.isUndefined(timer.released)
      yield* Scope.close(scope, Exit.void)
      const started = yield* Ref.make(0)
      const stalled = Effect.andThen(
        Ref.update(started, (n) => n + 1),
        Effect.never
      )
      const within = yield* Effect.forkChild(Effect.exit(timer.within(stalled, 1_000, () => new Late())))
      const withinMs = yield* Effect.forkChild(Effect.exit(timer.withinMs(stalled, 1_000, () => new Late())))
      yield* TestClock.adjust(5_000)
      for (const fiber of [within, withinMs]) {
        const exit = valueOf(fiber)
        assert.isTrue(Exit.hasDies(exit))
        assert.include(String(Exit.isFailure(exit) ? exit.cause.reasons[0] : ""), "the test's stage was used after")
      }
      assert.strictEqual(yield* Ref.get(started), 0)
      assert.isTrue(Exit.isExit(timer.released) && Exit.hasDies(timer.released))
    })
  )

  it.effect("guard and canGuard refuse what is not a fiber they can resume", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const fiber = yield* Effect.withFiber((fiber) => Effect.succeed(fiber))
      const impostor = { interruptible: true, _running: false } as unknown as Fiber.Fiber<unknown, unknown>
      assert.isFalse(timer.canGuard(impostor))
      assert.isUndefined(timer.guard(impostor, 1_000))
      // each member the timer needs is checked: `evaluate`, `interruptible` and `_running`
      const evaluate = () => undefined
      for (const partial of [
        { evaluate, interruptible: true },
        { evaluate, _running: false },
        { evaluate: true, interruptible: true, _running: false }
      ]) {
        assert.isUndefined(timer.guard(partial as unknown as Fiber.Fiber<unknown, unknown>, 1_000))
      }
      assert.isTrue(timer.canGuard(fiber))
      const shielded = yield* Effect.uninterruptible(Effect.withFiber((fiber) => Effect.succeed(fiber)))
      assert.isFalse(yield* Effect.uninterruptible(Effect.sync(() => timer.canGuard(shielded))))
    })
  )

  it.effect("an effect that is already late when guarded is interrupted at its first wait, a moment later", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const fiber = yield* Effect.forkChild(
        Effect.exit(timer.within(Effect.as(Effect.sleep(500), "late"), timer.now() - 10, () => new Late()))
      )
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(valueOf(fiber), Exit.fail(new Late()))
      // one that needs no wait still answers
      assert.strictEqual(yield* timer.within(Effect.succeed("ready"), timer.now() - 10, () => new Late()), "ready")
    })
  )

  it.effect("a fiber whose deadline comes due while it runs is interrupted at its next wait, not mid-step", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const log: Array<string> = []
      const worker = yield* Effect.forkChild(
        Effect.gen(function* () {
          yield* Effect.sleep(100)
          // woken at 100 ms, before the timer: scheduling a past deadline runs the timer on this very fiber
          yield* Effect.sync(() => {
            timer.schedule(timer.now() - 1, () => log.push("callback"))
            log.push("step done")
          })
          yield* Effect.sleep(50)
          log.push("slept")
        }).pipe(Effect.onInterrupt(() => Effect.sync(() => log.push(`interrupted at ${timer.now()}`))))
      )
      yield* Effect.yieldNow
      const guard = timer.guard(worker, 100)
      assert.isDefined(guard)
      yield* TestClock.adjust(100)
      assert.deepStrictEqual(log, ["callback", "step done"])
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(log, ["callback", "step done", "interrupted at 101"])
      assert.isTrue(guard!.end())
      assert.isTrue(Exit.hasInterrupts(exitOf(worker)))
    })
  )
})

describe("internal/deadline: callers in an uninterruptible region", () => {
  it.effect("the effect runs on a fiber of its own, is interrupted at the deadline, and the caller fails", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      const log: Array<string> = []
      const hung = Effect.never.pipe(Effect.onInterrupt(() => Effect.sync(() => log.push("finalizer"))))
      const fiber = yield* Effect.forkChild(
        Effect.uninterruptible(
          Effect.gen(function* () {
            const outer = yield* currentFiberId
            const inner = yield* timer.withinMs(Effect.interruptible(currentFiberId), 1_000, () => new Late())
            assert.notStrictEqual(inner, outer)
            const exit = yield* Effect.exit(timer.withinMs(Effect.interruptible(hung), 1_000, () => new Late()))
            log.push(Exit.isFailure(exit) ? "timed out" : "answered")
            return exit
          })
        )
      )
      yield* TestClock.adjust(999)
      assert.deepStrictEqual(log, [])
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(log, ["finalizer", "timed out"])
      assert.deepStrictEqual(valueOf(fiber), Exit.fail(new Late()))
    })
  )

  it.effect("an answer or a failure in time passes through, and the deadline is cleared", () =>
    Effect.gen(function* () {
      const timer = yield* Deadline.make
      let lateErrors = 0
      const late = () => {
        lateErrors++
        return new Late()
      }
      const fiber = yield* Effect.forkChild(
        Effect.uninterruptible(
          Effect.gen(function* () {
            const answer = yield* timer.withinMs(Effect.as(Effect.sleep(400), "ok"), 1_000, late)
            const failure = yield* Effect.exit(
              timer.withinMs(Effect.andThen(Effect.sleep(400), Effect.fail("boom")), 1_000, late)
            )
            const ready = yield* timer.withinMs(Effect.succeed("ready"), 1_000, late)
            // well past both deadlines
            yield* Effect.sleep(5_000)
            return [answer, failure, ready] as const
          })
        )
      )
      yield* TestClock.adjust(10_000)
      assert.deepStrictEqual(valueOf(fiber), ["ok", Exit.fail("boom"), "ready"])
      // the deadlines passed long ago: not even the timeout error was built
      assert.strictEqual(lateErrors, 0)
    })
  )
})

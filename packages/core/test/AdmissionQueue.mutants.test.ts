/**
 * Admission's queue over a shared store, through the public API: the store answers as a remote one does
 * (each answer an effect, decided when the call reaches the store and delivered later), every reservation
 * attempt is recorded (each one is a round trip to a shared store), and a test can hold an answer in flight
 * or let another client of the store reserve between two round trips. Time is TestClock's.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"
import {
  Admission,
  AdmissionStore,
  LlmError,
  type LlmRequest,
  type LlmResponse,
  TokenEstimator
} from "@llm-resilience/core"

const KEY = "fake/m"

/** Input and output tokens as the request's `tenant` says (`"in:out"`). */
const estimator: TokenEstimator.TokenEstimatorShape = {
  countText: (s) => s.length,
  estimate: (r) => {
    const [i, o] = (r.metadata?.tenant ?? "0:0").split(":").map(Number)
    return { inputTokens: i, outputTokens: o }
  }
}

/** One reservation attempt as the store saw it: when, for how many tokens, within which slack. */
type Attempt = readonly [at: number, tokens: number, within: number | undefined]

/** The in-memory store behind a remote store's interface, recording every reservation attempt. */
const sharedStore = (remote = true) => {
  const memory = AdmissionStore.makeMemory()
  const attempts: Array<Attempt> = []
  const control = {
    attempts,
    /** Delivers the next answer only once this completes. */
    hold: undefined as Deferred.Deferred<void> | undefined,
    /** Holds only the next backfill attempt's answer. */
    holdBackfill: false,
    /** Whether an answer is held in flight now. */
    holding: false,
    /** Settlements, corrections and usage reads that reached the store. */
    settlements: 0,
    corrections: 0,
    reads: 0,
    /** Answers `Unavailable` while set. */
    unavailable: false,
    /** Runs just before the store decides a backfill attempt (one made within a slack). */
    beforeBackfill: undefined as ((reserve: (tokens: number) => void) => void) | undefined
  }
  const store: AdmissionStore.AdmissionStoreShape = {
    tryReserve: (key, limits, cost, now, within) => {
      if (!remote) {
        attempts.push([now, cost.tokens, within?.tokens])
        return memory.tryReserve(key, limits, cost, now, within)
      }
      return Effect.suspend(() => {
        attempts.push([now, cost.tokens, within?.tokens])
        if (within !== undefined && control.beforeBackfill !== undefined) {
          const other = control.beforeBackfill
          control.beforeBackfill = undefined
          other((tokens) => {
            const d = memory.tryReserve(key, limits, { requests: 1, tokens, inputTokens: tokens, outputTokens: 0 }, now)
            assert.strictEqual((d as AdmissionStore.Decision)._tag, "Reserved")
          })
        }
        const decision: AdmissionStore.Decision = control.unavailable
          ? { _tag: "Unavailable" }
          : (memory.tryReserve(key, limits, cost, now, within) as AdmissionStore.Decision)
        const gate = control.holdBackfill && within === undefined ? undefined : control.hold
        if (gate === undefined) return Effect.as(Effect.yieldNow, decision)
        control.holdBackfill = false
        control.hold = undefined
        control.holding = true
        return Effect.as(
          Effect.ensuring(
            Deferred.await(gate),
            Effect.sync(() => {
              control.holding = false
            })
          ),
          decision
        )
      })
    },
    settle: (...args) =>
      Effect.andThen(
        Effect.sync(() => {
          control.settlements++
          memory.settle(...args)
        }),
        Effect.yieldNow
      ),
    correct: (...args) =>
      Effect.suspend(() => {
        control.corrections++
        return memory.correct(...args)
      }),
    usage: (...args) =>
      Effect.suspend(() => {
        control.reads++
        return memory.usage(...args)
      })
  }
  return { store, control }
}

const request = (
  id: string,
  cost: string,
  priority: "interactive" | "background",
  path: string | undefined
): LlmRequest.LlmRequest => ({
  model: "m",
  messages: [{ role: "user", content: id }],
  metadata: path === undefined ? { priority, tenant: cost } : { priority, tenant: cost, path }
})

/** A call under admission that logs when it starts, runs `durationMs`, and reports `usage` tokens. */
const call = (
  log: Array<readonly [string, number]>,
  id: string,
  cost: string,
  options: { durationMs?: number; usage?: number; priority?: "interactive" | "background"; path?: string } = {}
) =>
  Effect.gen(function* () {
    log.push([id, yield* Clock.currentTimeMillis])
    if (options.durationMs !== undefined) yield* Effect.sleep(options.durationMs)
    const used = options.usage ?? Number(cost.split(":")[0])
    return {
      text: "ok",
      finishReason: "stop",
      usage: { inputTokens: used, outputTokens: 0 },
      provider: "fake",
      model: "m"
    } as LlmResponse.LlmResponse
  }).pipe(Admission.admit(request(id, cost, options.priority ?? "interactive", options.path), KEY))

const provide =
  (options: Admission.AdmissionOptions, store: AdmissionStore.AdmissionStoreShape) =>
  <A, E, R>(self: Effect.Effect<A, E, R | Admission.Admission>) =>
    Effect.gen(function* () {
      const admission = yield* Admission.make(options)
      return yield* Effect.provideService(self, Admission.Admission, admission)
    }).pipe(
      Effect.provideService(AdmissionStore.AdmissionStore, store),
      Effect.provideService(TokenEstimator.TokenEstimator, estimator),
      Effect.scoped
    )

const stats = Effect.flatMap(Admission.Admission, (a) => a.stats(KEY))

const settleAll = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

const limits = { defaults: { tokensPerMinute: 1_000 }, maxWaitMs: 600_000 }

/**
 * x uses 400 at 0; at 30 s r reserves 400 for 10 s, then reports 150; the head (500) waits for x to leave
 * (at 60 s), leaving a slack of 100 to backfill until r settles, and of 350 (450 free) after.
 */
const blockedHead = (log: Array<readonly [string, number]>) =>
  Effect.gen(function* () {
    yield* call(log, "x", "400:0")
    yield* TestClock.adjust("30 seconds")
    const r = yield* Effect.forkChild(call(log, "r", "400:0", { durationMs: 10_000, usage: 150 }))
    yield* settleAll
    const head = yield* Effect.forkChild(call(log, "head", "500:0"))
    yield* settleAll
    return { r, head }
  })

describe("Admission queue over a shared store", () => {
  it.effect("budget freed while a drain awaits the store admits the waiters at once, in priority order", () => {
    const { control, store } = sharedStore()
    const gate = Deferred.makeUnsafe<void>()
    return Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      // r holds the whole budget for 10 s, then reports no usage (its budget comes back)
      const r = yield* Effect.forkChild(call(log, "r", "1000:0", { durationMs: 10_000, usage: 0 }))
      yield* settleAll
      const background = yield* Effect.forkChild(call(log, "background", "500:0", { priority: "background" }))
      yield* settleAll
      const interactive = yield* Effect.forkChild(call(log, "interactive", "500:0"))
      const leaving = yield* Effect.forkChild(call(log, "leaving", "500:0"))
      yield* settleAll
      assert.strictEqual((yield* stats).queued, 3)
      // a waiter gives up: the drain it starts asks the store, which answers "wait" (r still holds it all)
      // and the answer is still in flight when r's budget comes back
      control.hold = gate
      yield* Effect.forkChild(Fiber.interrupt(leaving))
      yield* settleAll
      assert.isTrue(control.holding)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(r)
      yield* Deferred.succeed(gate, undefined)
      yield* settleAll
      // the drain asked for while the first one ran runs after it: both fit now, interactive first
      assert.deepStrictEqual(log, [
        ["r", 0],
        ["interactive", 10_000],
        ["background", 10_000]
      ])
      yield* Fiber.joinAll([interactive, background])
      const s = yield* stats
      assert.strictEqual(s.queued, 0)
      assert.strictEqual(s.reserved.tokens, 1_000)
    }).pipe(Effect.ensuring(Deferred.succeed(gate, undefined)), provide(limits, store))
  })

  it.effect("a drain asked for while another awaits the store does not admit a waiter twice", () => {
    const { control, store } = sharedStore()
    const gate = Deferred.makeUnsafe<void>()
    return Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const r = yield* Effect.forkChild(call(log, "r", "1000:0", { durationMs: 10_000, usage: 0 }))
      yield* settleAll
      const first = yield* Effect.forkChild(call(log, "first", "500:0"))
      yield* settleAll
      const second = yield* Effect.forkChild(call(log, "second", "500:0"))
      const leaving = yield* Effect.forkChild(call(log, "leaving", "500:0"))
      yield* settleAll
      // r's budget comes back: its drain reserves for `first`, and that answer is held in flight
      control.hold = gate
      yield* TestClock.adjust("10 seconds")
      assert.isTrue(control.holding)
      const attempts = control.attempts.length
      // meanwhile a waiter gives up: its drain must not reserve for `first` again
      yield* Effect.forkChild(Fiber.interrupt(leaving))
      yield* settleAll
      assert.strictEqual(control.attempts.length, attempts)
      yield* Deferred.succeed(gate, undefined)
      yield* settleAll
      assert.deepStrictEqual(log, [
        ["r", 0],
        ["first", 10_000],
        ["second", 10_000]
      ])
      yield* Fiber.joinAll([r, first, second])
      // nothing reserved beyond what the calls used (no reservation left unsettled)
      const s = yield* stats
      assert.strictEqual(s.queued, 0)
      assert.strictEqual(s.reserved.tokens, 1_000)
    }).pipe(Effect.ensuring(Deferred.succeed(gate, undefined)), provide(limits, store))
  })

  it.effect("arrivals behind a blocked head that cannot fit its slack make no store round trip", () => {
    const { control, store } = sharedStore()
    return Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* call(log, "x", "800:0")
      const head = yield* Effect.forkChild(call(log, "head", "500:0"))
      yield* settleAll
      const before = control.attempts.length
      // the head needs x to leave (at 60 s); it leaves a slack of 500 but only 200 are free now
      const fibers = []
      for (let i = 0; i < 5; i++) fibers.push(yield* Effect.forkChild(call(log, `w${i}`, "300:0")))
      yield* settleAll
      assert.deepStrictEqual(control.attempts.slice(before), [])
      assert.strictEqual((yield* stats).queued, 6)
      // one that fits costs one attempt, within the slack
      fibers.push(yield* Effect.forkChild(call(log, "small", "150:0", { durationMs: 1_000 })))
      yield* settleAll
      assert.deepStrictEqual(control.attempts.slice(before), [[0, 150, 500]])
      assert.deepStrictEqual(log, [
        ["x", 0],
        ["small", 0]
      ])
      yield* TestClock.adjust("10 minutes")
      yield* Fiber.joinAll([head, ...fibers])
    }).pipe(provide(limits, store))
  })

  it.effect("an interactive arrival ahead of a blocked background head is admitted when it fits now", () => {
    const { store } = sharedStore()
    return Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* call(log, "x", "400:0")
      yield* TestClock.adjust("30 seconds")
      yield* call(log, "y", "400:0")
      // the background head needs x to leave (at 60 s): it leaves a slack of 100, and 200 are free now
      const head = yield* Effect.forkChild(call(log, "head", "500:0", { priority: "background" }))
      yield* settleAll
      const urgent = yield* Effect.forkChild(call(log, "urgent", "150:0"))
      yield* settleAll
      assert.deepStrictEqual(log[2], ["urgent", 30_000])
      yield* TestClock.adjust("10 minutes")
      yield* Fiber.joinAll([head, urgent])
      // the head now waits for y to leave too
      assert.deepStrictEqual(log[3], ["head", 90_000])
    }).pipe(provide(limits, store))
  })

  it.effect("a drain stops asking for waiters that no longer fit what the head leaves", () => {
    const { control, store } = sharedStore()
    return Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const { head, r } = yield* blockedHead(log)
      // c1 and c2 do not fit the slack of 100
      const fibers = [head]
      for (const id of ["c1", "c2"]) {
        fibers.push(yield* Effect.forkChild(call(log, id, "200:0", { durationMs: 1_000 })))
      }
      yield* settleAll
      const before = control.attempts.length
      // at 40 s r settles: the head leaves a slack of 350 (450 free); c1 takes 200 of it, c2 no longer fits
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(r)
      yield* settleAll
      assert.deepStrictEqual(control.attempts.slice(before), [
        [40_000, 500, undefined],
        [40_000, 200, 350]
      ])
      assert.deepStrictEqual(log.slice(2), [["c1", 40_000]])
      yield* TestClock.adjust("10 minutes")
      yield* Fiber.joinAll(fibers)
    }).pipe(provide(limits, store))
  })

  it.effect("a backfill another client of the store got ahead of keeps waiting", () => {
    const { control, store } = sharedStore()
    return Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const { head, r } = yield* blockedHead(log)
      const fibers = [head]
      fibers.push(yield* Effect.forkChild(call(log, "c1", "200:0")))
      yield* settleAll
      // at 40 s r settles and the drain finds c1 fits; another client takes 400 just before it asks
      control.beforeBackfill = (reserve) => reserve(400)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(r)
      yield* settleAll
      assert.isUndefined(control.beforeBackfill)
      assert.deepStrictEqual(
        log.map(([id]) => id),
        ["x", "r"]
      )
      // an arrival backfilling from the slack the drain left is refused the same way
      control.beforeBackfill = (reserve) => reserve(50)
      fibers.push(yield* Effect.forkChild(call(log, "c2", "10:0")))
      yield* settleAll
      assert.isUndefined(control.beforeBackfill)
      assert.deepStrictEqual(
        log.map(([id]) => id),
        ["x", "r"]
      )
      yield* TestClock.adjust("10 minutes")
      yield* Fiber.joinAll(fibers)
    }).pipe(provide(limits, store))
  })

  it.effect("a waiter that leaves while a drain awaits the store for the one ahead of it is not admitted", () => {
    const { control, store } = sharedStore()
    const gate = Deferred.makeUnsafe<void>()
    return Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const { head, r } = yield* blockedHead(log)
      // neither fits the slack of 100 on arrival; both fit the 350 left after r settles
      const c1 = yield* Effect.forkChild(call(log, "c1", "150:0", { durationMs: 1_000 }))
      const c2 = yield* Effect.forkChild(call(log, "c2", "150:0", { durationMs: 1_000 }))
      yield* settleAll
      control.hold = gate
      control.holdBackfill = true
      yield* TestClock.adjust("10 seconds")
      assert.isTrue(control.holding)
      // c2 leaves while c1's reservation is in flight
      yield* Effect.forkChild(Fiber.interrupt(c2))
      yield* settleAll
      yield* Deferred.succeed(gate, undefined)
      yield* settleAll
      assert.deepStrictEqual(log.slice(2), [["c1", 40_000]])
      const s = yield* stats
      assert.strictEqual(s.queued, 1)
      // x, r's usage and c1: nothing reserved for c2
      assert.strictEqual(s.reserved.tokens, 700)
      yield* TestClock.adjust("10 minutes")
      yield* Fiber.joinAll([r, head, c1])
    }).pipe(Effect.ensuring(Deferred.succeed(gate, undefined)), provide(limits, store))
  })

  it.effect("a blocked key wakes up only when its head may fit or a waiter's bound is reached", () => {
    const { control, store } = sharedStore()
    return Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* call(log, "x", "800:0")
      // the head needs x to leave (at 60 s); none of the others fits what is free now (200)
      const head = yield* Effect.forkChild(call(log, "head", "500:0"))
      yield* settleAll
      const bounded = [
        yield* Effect.forkChild(Effect.exit(call(log, "b1", "300:0", { path: "b" }))),
        yield* Effect.forkChild(Effect.exit(call(log, "b2", "300:0", { path: "b" })))
      ]
      const a = yield* Effect.forkChild(call(log, "a", "300:0", { path: "a" }))
      yield* settleAll
      yield* TestClock.adjust("1 second")
      // a waiter leaving costs one look at the head, and no settlement
      const settlements = control.settlements
      yield* Fiber.interrupt(a)
      assert.strictEqual(control.settlements, settlements)
      yield* TestClock.adjust("10 minutes")
      yield* Fiber.join(head)
      for (const exit of yield* Fiber.joinAll(bounded)) assert.isTrue(Exit.isFailure(exit))
      assert.deepStrictEqual(
        control.attempts.filter(([, tokens]) => tokens === 500).map(([at]) => at),
        // arrival, its drain, a leaving, b1 and b2's bound (one wake-up), the head fits
        [0, 0, 1_000, 10_000, 60_000]
      )
      assert.deepStrictEqual(log[1], ["head", 60_000])
    }).pipe(provide({ ...limits, paths: { a: { maxWaitMs: 31_000 }, b: { maxWaitMs: 10_000 } } }, store))
  })

  it.effect("a request without a path waits the default bound, whatever the paths are named", () => {
    const { store } = sharedStore()
    return Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* call(log, "x", "1000:0")
      const waiting = yield* Effect.forkChild(Effect.exit(call(log, "waiting", "1:0")))
      yield* settleAll
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(waiting.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.isTrue(Exit.isFailure(yield* Fiber.join(waiting)))
    }).pipe(
      provide(
        { defaults: { tokensPerMinute: 1_000 }, maxWaitMs: 5_000, paths: { undefined: { maxWaitMs: 1_000 } } },
        store
      )
    )
  })
})

describe("Admission's round trips to a shared store", () => {
  const roundTrips = (control: ReturnType<typeof sharedStore>["control"]) =>
    control.attempts.length + control.settlements + control.corrections + control.reads

  it.effect("a call or an error that leaves nothing to settle makes no round trip for it", () => {
    const { control, store } = sharedStore()
    return Effect.gen(function* () {
      // a stream without a Finish chunk keeps its estimate
      yield* Stream.runDrain(
        Stream.make({ _tag: "TextDelta" as const, text: "x" }).pipe(
          Admission.admitStream(request("s", "100:0", "interactive", undefined), KEY)
        )
      )
      // so does a provider error that says nothing about the budget
      yield* Effect.flip(
        Effect.fail(new LlmError.ServerError({ message: "500", status: 500 })).pipe(
          Admission.admit(request("e", "100:0", "interactive", undefined), KEY)
        )
      )
      // and reporting such an error alone asks the store for no correction
      const admission = yield* Admission.Admission
      yield* admission.observeError(KEY, new LlmError.ServerError({ message: "500", status: 500 }))
      assert.deepStrictEqual([control.settlements, control.corrections], [0, 0])
      assert.strictEqual((yield* stats).reserved.tokens, 200)
    }).pipe(provide(limits, store))
  })

  it.effect.each([true, false])(
    "a key with only a concurrency cap, or no limits, never reaches the store (remote: %s)",
    (remote) => {
      const { control, store } = sharedStore(remote)
      return Effect.gen(function* () {
        const admission = yield* Admission.Admission
        const snapshot = { tokens: { remaining: 0, resetAfterMs: 1_000 } }
        for (const key of ["capped/m", "free/m"]) {
          yield* Effect.succeed({
            text: "ok",
            finishReason: "stop",
            usage: { inputTokens: 1, outputTokens: 0 },
            provider: "fake",
            model: "m",
            rateLimit: snapshot
          } as LlmResponse.LlmResponse).pipe(Admission.admit(request("a", "100:0", "interactive", undefined), key))
          yield* admission.observe(key, snapshot)
          yield* admission.observeError(key, new LlmError.RateLimited({ message: "429", limit: "tokens" }))
          const s = yield* admission.stats(key)
          assert.deepStrictEqual([s.queued, s.reserved.tokens], [0, 0])
        }
        assert.strictEqual(roundTrips(control), 0)
      }).pipe(provide({ keys: { "capped/m": { maxConcurrency: 1 } } }, store))
    }
  )

  it.effect("a settlement in a limit group looks at its own key's head once", () => {
    const { control, store } = sharedStore()
    return Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const r = yield* Effect.forkChild(call(log, "r", "600:0", { durationMs: 1_000, usage: 100 }))
      yield* settleAll
      const head = yield* Effect.forkChild(call(log, "head", "950:0"))
      yield* settleAll
      const before = control.attempts.length
      // r reports 100 at 1 s: the head still does not fit, and the settlement asks the store about it once
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(r)
      yield* settleAll
      assert.deepStrictEqual(control.attempts.slice(before), [[1_000, 950, undefined]])
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(head)
      assert.deepStrictEqual(log[1], ["head", 60_000])
    }).pipe(
      provide(
        {
          keys: { [KEY]: { groups: ["g"] }, "other/m": { groups: ["g"] } },
          limitGroups: { g: { tokensPerMinute: 1_000 } }
        },
        store
      )
    )
  })

  it.effect("an unavailable store is asked once per arrival, and fails a waiter without a retry hint", () => {
    const { control, store } = sharedStore()
    return Effect.gen(function* () {
      control.unavailable = true
      const error = yield* Effect.flip(call([], "a", "100:0"))
      assert.strictEqual(error._tag, "AdmissionRejected")
      assert.strictEqual(error._tag === "AdmissionRejected" ? error.reason : undefined, "store-unavailable")
      assert.strictEqual(control.attempts.length, 1)
      assert.strictEqual((yield* stats).queued, 0)
      // a waiter the store fails while it waits is told so, with no retry hint at all (not even an empty one)
      control.unavailable = false
      yield* call([], "x", "1000:0")
      const waiting = yield* Effect.forkChild(Effect.flip(call([], "w", "100:0")))
      yield* settleAll
      control.unavailable = true
      yield* TestClock.adjust("1 minute")
      const rejected = yield* Fiber.join(waiting)
      assert.strictEqual(rejected._tag === "AdmissionRejected" ? rejected.reason : undefined, "store-unavailable")
      assert.isFalse(Object.hasOwn(rejected, "retryAfterMs"))
    }).pipe(provide(limits, store))
  })
})

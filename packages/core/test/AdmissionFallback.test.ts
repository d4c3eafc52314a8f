/**
 * The local fallback of a shared admission store, driven by TestClock: the shared store is an in-process
 * store behind effects that stops answering on command (as a Redis that is killed does), and the guard
 * bounds each call (200 ms) and, once one failed, answers from the fallback at once until its next try
 * (as the Redis stores' guard does).
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer } from "effect"
import { TestClock } from "effect/testing"
import {
  Admission,
  AdmissionFallback,
  AdmissionStore,
  type LlmRequest,
  type LlmResponse,
  TokenEstimator
} from "@llm-resilience/core"

const KEY = "p/m"
const W = 60_000
const TIMEOUT = 200

const request: LlmRequest.LlmRequest = { model: "m", messages: [{ role: "user", content: "hi" }] }
const response = {
  text: "ok",
  finishReason: "stop",
  usage: { inputTokens: 10, outputTokens: 10 },
  provider: "p",
  model: "m"
} as LlmResponse.LlmResponse
const estimator: TokenEstimator.TokenEstimatorShape = {
  countText: (s) => s.length,
  estimate: () => ({ inputTokens: 10, outputTokens: 10 })
}
const one: AdmissionStore.Cost = { requests: 1, tokens: 20, inputTokens: 10, outputTokens: 10 }
const limits = (requests: number): AdmissionStore.Limits => ({
  windowMs: W,
  requests,
  tokens: Infinity,
  inputTokens: Infinity,
  outputTokens: Infinity
})

const lift = <A>(a: A | Effect.Effect<A>): Effect.Effect<A> => (Effect.isEffect(a) ? a : Effect.succeed(a))

/** A shared store that can be taken down (it stops answering) and brought back (empty, or as it was). */
const sharedStore = (retryMs: number) => {
  const state = { down: false, inner: AdmissionStore.makeMemory() }
  const call = <A>(f: () => A | Effect.Effect<A>): Effect.Effect<A, string> =>
    Effect.suspend(() => (state.down ? Effect.never : lift(f())))
  let failing = false
  let retryAt = 0
  const guard = <A, E>(op: Effect.Effect<A, E>, fallback: () => Effect.Effect<A>): Effect.Effect<A> =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      if (failing && now < retryAt) return fallback()
      return op.pipe(
        Effect.timeoutOrElse({ duration: TIMEOUT, orElse: () => Effect.fail("timeout") }),
        Effect.matchEffect({
          onFailure: () =>
            Effect.flatMap(Clock.currentTimeMillis, (t) => {
              failing = true
              retryAt = t + retryMs
              return fallback()
            }),
          onSuccess: (a) => {
            failing = false
            return Effect.succeed(a)
          }
        })
      )
    })
  const store = AdmissionFallback.make(
    {
      tryReserve: (key, l, cost, nowMs, within) => call(() => state.inner.tryReserve(key, l, cost, nowMs, within)),
      settle: (r, actual, corrections, nowMs) => call(() => state.inner.settle(r, actual, corrections, nowMs)),
      correct: (key, l, corrections, nowMs) => call(() => state.inner.correct(key, l, corrections, nowMs)),
      usage: (key, l, nowMs) => call(() => state.inner.usage(key, l, nowMs))
    },
    { onFailure: "local", instances: 2, guard }
  )
  return { state, store }
}

const admissionOver = (store: AdmissionStore.AdmissionStoreShape, windowMs = W) =>
  Layer.provide(
    Admission.layer({ defaults: { requestsPerMinute: 8 }, maxWaitMs: 10 * windowMs, windowMs }),
    Layer.succeed(AdmissionStore.AdmissionStore, store)
  )

/** A call that records when it was admitted and, after `durationMs`, answers. */
const call = (admitted: Array<number>, durationMs = 0, key = KEY) =>
  Effect.flatMap(Admission.Admission, (admission) =>
    admission.run(
      request,
      key,
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        admitted.push(now)
        return durationMs === 0 ? Effect.succeed(response) : Effect.as(Effect.sleep(durationMs), response)
      }),
      (r) => r
    )
  )

const advance = (ms: number, step = 1_000) =>
  Effect.gen(function* () {
    for (let t = 0; t < ms; t += step) yield* TestClock.adjust(step)
  })

describe("AdmissionFallback (the local share of a shared admission store)", () => {
  it.effect("from the switch on, no window holds more than the share, counting calls admitted shared in it", () => {
    // a short window (6 s: buckets of 100 ms), so that the 200 ms a failed call takes shows in the log; the
    // guard tries the shared store again only after 10 windows: one timeout, at the switch
    const w = 6_000
    const { state, store } = sharedStore(10 * w)
    return Effect.gen(function* () {
      const admitted: Array<number> = []
      // 2 calls through the shared store (limit 8), then it stops answering
      yield* call(admitted)
      yield* call(admitted)
      yield* TestClock.adjust(w / 2)
      state.down = true
      const downAt = yield* Clock.currentTimeMillis
      const callers = []
      for (let i = 0; i < 12; i++) callers.push(yield* Effect.forkChild(Effect.forever(call(admitted))))
      yield* advance(4 * w, 50)
      yield* Fiber.interruptAll(callers)
      // the share is 8 / 2 = 4: every window ending at a call admitted locally holds at most 4 of this
      // instance's calls, the 2 admitted through the shared store before the switch included
      const local = admitted.filter((t) => t >= downAt)
      assert.isAbove(local.length, 12)
      for (const a of local) {
        const inWindow = admitted.filter((t) => t > a - w && t <= a).length
        assert.isAtMost(inWindow, 4, `calls in the window ending at ${a}: ${JSON.stringify(admitted)}`)
      }
      // and the fallback admits its whole share: 4 per window once the first window has passed
      assert.strictEqual(admitted.filter((t) => t > downAt + w && t <= downAt + 2 * w).length, 4)
    }).pipe(Effect.provide(admissionOver(store, w)), Effect.provideService(TokenEstimator.TokenEstimator, estimator))
  })

  it.effect("waiters parked until the shared window frees are re-examined when the store switches, both ways", () => {
    const { state, store } = sharedStore(5_000)
    return Effect.gen(function* () {
      // the other instance has taken the whole shared 8 of this model
      for (let i = 0; i < 8; i++) yield* lift(state.inner.tryReserve(KEY, limits(8), one, 0))
      // a call to another model runs for 10 s
      const other: Array<number> = []
      const running = yield* Effect.forkChild(call(other, 10_000, "p/other"))
      yield* TestClock.adjust(1_000)
      // five calls to this model wait for the shared window to free, at 60 s
      const admitted: Array<number> = []
      const waiting = []
      for (let i = 0; i < 5; i++) waiting.push(yield* Effect.forkChild(call(admitted)))
      yield* TestClock.adjust(1_000)
      assert.strictEqual((yield* Effect.flatMap(Admission.Admission, (a) => a.stats(KEY))).queued, 5)
      // the shared store stops answering; the other model's settlement finds out (after its 200 ms timeout)
      state.down = true
      yield* TestClock.adjust(8_000)
      yield* TestClock.adjust(TIMEOUT)
      yield* Fiber.join(running)
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      // the waiters are looked at again: the local share (4) admits four of them now, not at 60 s
      assert.deepStrictEqual(admitted, [10_200, 10_200, 10_200, 10_200])
      // the shared store comes back, empty (a restarted Redis); the next call through it (the other model's)
      // notices
      state.inner = AdmissionStore.makeMemory()
      state.down = false
      yield* TestClock.adjust(10_000)
      yield* call(other, 0, "p/other")
      assert.deepStrictEqual(other, [0, 20_200])
      // the last waiter, parked until the local window frees (at 70 s), is admitted by the shared store at once
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      assert.deepStrictEqual(admitted, [10_200, 10_200, 10_200, 10_200, 20_200])
      yield* Fiber.joinAll(waiting)
    }).pipe(Effect.provide(admissionOver(store)), Effect.provideService(TokenEstimator.TokenEstimator, estimator))
  })
})

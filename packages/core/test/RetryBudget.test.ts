import { assert, describe, expect, it } from "@effect/vitest"
import { Cause, Clock, Effect, Exit, Fiber, Random, Schema } from "effect"
import { TestClock } from "effect/testing"
import { LlmError, Retry, RetryBudget } from "@llm-resilience/core"

/** mulberry32: a tiny seeded PRNG for the fake provider's failures (independent of Effect's Random). */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = seed
  t = Math.imul(t ^ (t >>> 15), t | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const withdrawN = (budget: RetryBudget.RetryBudget, key: string, n: number) =>
  Effect.gen(function* () {
    const out: Array<boolean> = []
    for (let i = 0; i < n; i++) out.push(yield* budget.withdraw(key))
    return out
  })

describe("RetryBudget", () => {
  it.effect("allows ratio * requests retries per key, and keys do not share", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 0.1, minRetries: 0 })
      for (let i = 0; i < 25; i++) yield* budget.deposit("a/m")
      // 25 requests * 10% = 2.5 retries
      expect(yield* withdrawN(budget, "a/m", 3)).toEqual([true, true, false])
      yield* budget.deposit("a/m")
      expect(yield* withdrawN(budget, "a/m", 1)).toEqual([false]) // 0.6 credit
      for (let i = 0; i < 4; i++) yield* budget.deposit("a/m")
      expect(yield* withdrawN(budget, "a/m", 2)).toEqual([true, false]) // exactly 1.0 credit, no float drift
      expect(yield* withdrawN(budget, "b/m", 1)).toEqual([false])
    })
  )

  it.effect("credit expires after the sliding window", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 0.5, window: "10 seconds", minRetries: 0 })
      for (let i = 0; i < 4; i++) yield* budget.deposit("k") // 2 credits at t=0
      yield* TestClock.adjust("9 seconds")
      expect(yield* withdrawN(budget, "k", 1)).toEqual([true])
      yield* TestClock.adjust("1 second") // t=10 s: the t=0 slice left the window
      expect(yield* withdrawN(budget, "k", 1)).toEqual([false])
      yield* budget.deposit("k")
      yield* budget.deposit("k")
      // one credit, but the retry taken at 9 s counts in the window until 19 s
      expect(yield* withdrawN(budget, "k", 1)).toEqual([false])
      yield* TestClock.adjust("9 seconds")
      expect(yield* withdrawN(budget, "k", 2)).toEqual([true, false])
    })
  )

  it.effect("the floor allows minRetries per window without traffic", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 0.1, window: "10 seconds", minRetries: 2 })
      expect(yield* withdrawN(budget, "k", 3)).toEqual([true, true, false])
      // the two retries count until their slice (the first second) leaves the window
      yield* TestClock.adjust("9999 millis")
      expect(yield* withdrawN(budget, "k", 1)).toEqual([false])
      yield* TestClock.adjust("1 millis")
      expect(yield* withdrawN(budget, "k", 3)).toEqual([true, true, false])
      yield* TestClock.adjust("1 hour") // an idle hour does not add up: still 2 per window
      expect(yield* withdrawN(budget, "k", 3)).toEqual([true, true, false])
    })
  )

  it.effect("a store that answers with effects is driven through them", () =>
    Effect.gen(function* () {
      const inner = RetryBudget.memoryStore()
      const log: Array<string> = []
      const store: RetryBudget.Store = {
        deposit: (key, now, policy) =>
          Effect.sync(() => {
            log.push(`deposit ${key}@${now}`)
            inner.deposit(key, now, policy)
          }),
        withdraw: (key, now, policy) =>
          Effect.tap(inner.withdraw(key, now, policy), (ok) =>
            Effect.sync(() => log.push(`withdraw ${key}@${now}=${ok}`))
          )
      }
      const budget = yield* RetryBudget.make({ ratio: 0.5, minRetries: 0, store })
      const deposited = budget.depositAt("other", 0)
      expect(log).toEqual([]) // described, not run
      if (Effect.isEffect(deposited)) yield* deposited
      expect(log).toEqual(["deposit other@0"])
      log.length = 0
      let calls = 0
      const flaky = Effect.suspend(() =>
        ++calls < 3 ? Effect.fail(new LlmError.ConnectionError({ message: "reset" })) : Effect.succeed(calls)
      )
      const stage = Retry.retry({ profile: "interactive", budget, key: "k" })
      yield* Effect.exit(stage(flaky)) // deposit 0.5: the retry is refused
      yield* TestClock.adjust("1 second")
      const fiber = yield* Effect.forkChild(stage(flaky)) // deposit 0.5 more: one retry allowed
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(fiber)).toBe(3)
      expect(log).toEqual(["deposit k@0", "withdraw k@0=false", "deposit k@1000", "withdraw k@1000=true"])
    }).pipe(Random.withSeed("store"))
  )

  it.effect("invalid options fail with a SchemaError naming the field", () =>
    Effect.gen(function* () {
      const cases = [
        [{ ratio: -0.1 }, "ratio"],
        [{ window: 0 }, "window"],
        [{ minRetries: Number.NaN }, "minRetries"],
        [{ minRetries: 1.5 }, "minRetries"]
      ] as const
      for (const [options, field] of cases) {
        const exit = yield* Effect.exit(RetryBudget.make(options))
        assert.isTrue(Exit.isFailure(exit))
        const e = Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason)?.error : undefined
        assert.isTrue(Schema.isSchemaError(e))
        expect(String(e)).toContain(`["${field}"]`)
      }
    })
  )

  it.effect(
    "1,000 requests with 20% transient failures and a 10% budget: at most 100 retries, or the floor per window",
    () =>
      Effect.gen(function* () {
        const floor = 1
        const budget = yield* RetryBudget.make({ ratio: 0.1, window: "10 seconds", minRetries: floor })
        const profile = yield* Retry.profile({ name: "test", maxRetries: 3, base: "50 millis", cap: "1 second" })
        const fails = seeded(2024)
        let calls = 0
        let lastCallAt = 0
        const outcomes: Array<{ readonly tag: string; readonly sinceOwnLastCall: number }> = []
        const request = Effect.gen(function* () {
          let ownLastCall = -1
          // one provider call: fails transiently with probability 0.2
          const provider = Effect.flatMap(Clock.currentTimeMillis, (now) => {
            calls++
            lastCallAt = Math.max(lastCallAt, now)
            ownLastCall = now
            return fails() < 0.2
              ? Effect.fail(new LlmError.ServerError({ message: "transient", status: 503 }))
              : Effect.succeed("ok")
          })
          const exit = yield* provider.pipe(Retry.retry({ profile, budget, key: "fake/model" }), Effect.exit)
          const end = yield* Clock.currentTimeMillis
          const failure = Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason)?.error : undefined
          outcomes.push({ tag: failure?._tag ?? "ok", sinceOwnLastCall: end - ownLastCall })
        })
        // one request every 10 ms: 1,000 requests over 10 s of virtual time
        const driver = yield* Effect.forkChild(
          Effect.gen(function* () {
            const fibers: Array<Fiber.Fiber<void>> = []
            for (let i = 0; i < 1000; i++) {
              fibers.push(yield* Effect.forkChild(request))
              yield* Effect.sleep("10 millis")
            }
            yield* Fiber.joinAll(fibers)
          })
        )
        yield* TestClock.adjust("30 seconds")
        yield* Fiber.join(driver)

        expect(outcomes.length).toBe(1000)
        const retries = calls - 1000
        const durationSeconds = lastCallAt / 1000
        // each window allows max(10% of its requests, the floor): over disjoint windows covering the run,
        // at most 10% of all requests plus the floor once per window
        expect(retries).toBeLessThanOrEqual(100 + floor * Math.ceil(durationSeconds / 10))
        const rejected = outcomes.filter((o) => o.tag === "RetryBudgetExhausted")
        // 20% of ~1,000 first attempts failed: far more than the budget could retry
        expect(rejected.length).toBeGreaterThan(50)
        // rejected requests fail fast: no wait between their last provider call and the failure
        for (const o of rejected) expect(o.sinceOwnLastCall).toBe(0)
        // the rest succeeded, or (rarely) ran out of attempts
        for (const o of outcomes) expect(["ok", "RetryBudgetExhausted", "ServerError"]).toContain(o.tag)
        expect(outcomes.filter((o) => o.tag === "ok").length).toBeGreaterThan(850)
      }).pipe(Random.withSeed("retry-budget"))
  )
})

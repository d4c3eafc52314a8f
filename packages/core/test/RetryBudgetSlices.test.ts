/**
 * The retry budget's ring of slices and its floor, through the public API: credit taken oldest first across
 * several slices, each slice leaving the window on time, and the floor's refill rate and capacity.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { RetryBudget } from "@llm-resilience/core"

const at = (ms: number) => TestClock.setTime(ms)

describe("RetryBudget: slices and floor", () => {
  it.effect("defaults: 10% of requests over one minute, at least 5 retries per minute", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make()
      assert.deepStrictEqual(budget.policy, { ratio: 0.1, windowMs: 60_000, minRetries: 5 })
    })
  )

  it.effect("credit spread over several slices adds up to one retry", () =>
    Effect.gen(function* () {
      // 10 s window in 1 s slices; 0.5 credit per request
      const budget = yield* RetryBudget.make({ ratio: 0.5, window: "10 seconds", minRetries: 0 })
      yield* budget.deposit("k") // slice 0: 0.5
      yield* at(1_000)
      assert.isFalse(yield* budget.withdraw("k"))
      yield* budget.deposit("k") // slice 1: 0.5
      yield* at(2_000)
      yield* budget.deposit("k")
      yield* budget.deposit("k") // slice 2: 1.0
      // 2.0 in the window: two retries
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isFalse(yield* budget.withdraw("k"))
      // at 10 s slice 0 has left the window (1.5 left against the 2 retries of slice 2)
      yield* at(10_000)
      assert.isFalse(yield* budget.withdraw("k"))
      // at 12 s slice 2 has left with its retries and its credit: nothing is left
      yield* at(12_000)
      assert.isFalse(yield* budget.withdraw("k"))
    })
  )

  it.effect("a retry counts against the window until its slice leaves it, not after", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 1, window: "10 seconds", minRetries: 0 })
      yield* budget.deposit("k") // slice 0
      yield* at(5_500)
      yield* budget.deposit("k") // slice 5
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isFalse(yield* budget.withdraw("k"))
      yield* at(10_000)
      yield* budget.deposit("k") // slice 10 replaces slice 0: 2 credit against 2 retries
      assert.isFalse(yield* budget.withdraw("k"))
      yield* at(14_999)
      assert.isFalse(yield* budget.withdraw("k"))
      yield* at(15_000) // slice 5 (5 to 6 s) has left with its two retries and its credit
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isFalse(yield* budget.withdraw("k"))
    })
  )

  it.effect("a ring position reused by a later slice starts from zero", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 0.5, window: "10 seconds", minRetries: 0 })
      yield* budget.deposit("k") // slice 0: 0.5, never withdrawn
      yield* at(10_000)
      yield* budget.deposit("k") // slice 10, same ring position: 0.5, not 1.0
      assert.isFalse(yield* budget.withdraw("k"))
      yield* budget.deposit("k")
      assert.isTrue(yield* budget.withdraw("k"))
    })
  )

  it.effect("a withdrawal never draws on credit that has left the window", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 1, window: "10 seconds", minRetries: 0 })
      yield* budget.deposit("k") // slice 0, never used: its ring position is visited before slice 12's
      yield* at(12_000)
      yield* budget.deposit("k") // slice 12
      yield* at(15_000)
      assert.isTrue(yield* budget.withdraw("k")) // paid by slice 12
      assert.isFalse(yield* budget.withdraw("k"))
    })
  )

  it.effect("the floor is a minimum per window, not an addition to the credit", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 1, window: "10 seconds", minRetries: 2 })
      yield* budget.deposit("k")
      // one credit, a floor of two: two retries in all, not three
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isFalse(yield* budget.withdraw("k"))
      // three credits above the floor: three retries in the window
      yield* at(20_000)
      for (let i = 0; i < 3; i++) yield* budget.deposit("k")
      for (let i = 0; i < 3; i++) assert.isTrue(yield* budget.withdraw("k"))
      assert.isFalse(yield* budget.withdraw("k"))
    })
  )

  it.effect("minRetries 0: no retry without credit", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 0.1, minRetries: 0 })
      assert.isFalse(yield* budget.withdraw("k"))
      yield* at(120_000)
      assert.isFalse(yield* budget.withdraw("k"))
    })
  )

  it.effect("bounds of the options", () =>
    Effect.gen(function* () {
      const valid: ReadonlyArray<RetryBudget.Options> = [
        { ratio: 0 },
        { ratio: 10 },
        { minRetries: 0 },
        { window: "1 millis" }
      ]
      for (const ok of valid) {
        yield* RetryBudget.make(ok)
      }
      for (const bad of [
        { ratio: 10.5 },
        { ratio: -0.1 },
        { minRetries: -1 },
        { minRetries: 0.5 },
        { window: 0 },
        { window: "soon" }
      ]) {
        const failed = yield* Effect.flip(RetryBudget.make(bad as RetryBudget.Options))
        assert.strictEqual(failed._tag, "SchemaError", JSON.stringify(bad))
      }
    })
  )
})

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
  it.effect("defaults: 10% of requests over 10 s, at least one retry per second", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make()
      assert.deepStrictEqual(budget.policy, { ratio: 0.1, windowMs: 10_000, minRetriesPerSecond: 1 })
    })
  )

  it.effect("credit spread over several slices is taken oldest first", () =>
    Effect.gen(function* () {
      // 10 s window in 1 s slices; 0.5 credit per request
      const budget = yield* RetryBudget.make({ ratio: 0.5, window: "10 seconds", minRetriesPerSecond: 0 })
      yield* budget.deposit("k") // slice 0: 0.5
      yield* at(1_000)
      yield* budget.deposit("k") // slice 1: 0.5
      yield* at(2_000)
      yield* budget.deposit("k")
      yield* budget.deposit("k") // slice 2: 1.0
      assert.isTrue(yield* budget.withdraw("k")) // takes slices 0 and 1
      // at 10 s slice 0 has left the window; what is left (slice 2) still pays a retry
      yield* at(10_000)
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isFalse(yield* budget.withdraw("k"))
    })
  )

  it.effect("a slice's credit counts until its slice leaves the window, not after", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 1, window: "10 seconds", minRetriesPerSecond: 0 })
      yield* at(500)
      yield* budget.deposit("k")
      yield* at(9_999)
      assert.isTrue(yield* budget.withdraw("k"))
      yield* budget.deposit("k") // slice 9, in the window up to slice 18
      yield* at(18_999)
      assert.isTrue(yield* budget.withdraw("k"))
      yield* budget.deposit("k") // slice 18, gone from slice 28
      yield* at(28_000)
      assert.isFalse(yield* budget.withdraw("k"))
    })
  )

  it.effect("a ring position reused by a later slice starts from zero", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 0.5, window: "10 seconds", minRetriesPerSecond: 0 })
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
      const budget = yield* RetryBudget.make({ ratio: 1, window: "10 seconds", minRetriesPerSecond: 0 })
      yield* budget.deposit("k") // slice 0, never used: its ring position is visited before slice 12's
      yield* at(12_000)
      yield* budget.deposit("k") // slice 12
      yield* at(15_000)
      assert.isTrue(yield* budget.withdraw("k")) // paid by slice 12
      assert.isFalse(yield* budget.withdraw("k"))
    })
  )

  it.effect("the floor refills at minRetriesPerSecond up to max(1, rate) retries", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 0, minRetriesPerSecond: 2 })
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isFalse(yield* budget.withdraw("k"))
      yield* at(499)
      assert.isFalse(yield* budget.withdraw("k"))
      yield* at(500)
      assert.isTrue(yield* budget.withdraw("k"))
      // a long idle time refills to the capacity (2), not beyond
      yield* at(60_000)
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isFalse(yield* budget.withdraw("k"))
    })
  )

  it.effect("a slow floor still holds one whole retry", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 0, minRetriesPerSecond: 0.5 })
      assert.isTrue(yield* budget.withdraw("k"))
      yield* at(1_999)
      assert.isFalse(yield* budget.withdraw("k"))
      yield* at(2_000)
      assert.isTrue(yield* budget.withdraw("k"))
      yield* at(100_000)
      assert.isTrue(yield* budget.withdraw("k"))
      assert.isFalse(yield* budget.withdraw("k"))
    })
  )

  it.effect("credit from requests is used before the floor", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 1, minRetriesPerSecond: 1 })
      yield* budget.deposit("k")
      assert.isTrue(yield* budget.withdraw("k")) // the request's credit
      assert.isTrue(yield* budget.withdraw("k")) // the floor's one retry
      assert.isFalse(yield* budget.withdraw("k"))
    })
  )

  it.effect("bounds of the options", () =>
    Effect.gen(function* () {
      const valid: ReadonlyArray<RetryBudget.Options> = [
        { ratio: 0 },
        { ratio: 10 },
        { minRetriesPerSecond: 0 },
        { window: "1 millis" }
      ]
      for (const ok of valid) {
        yield* RetryBudget.make(ok)
      }
      for (const bad of [
        { ratio: 10.5 },
        { ratio: -0.1 },
        { minRetriesPerSecond: -1 },
        { window: 0 },
        { window: "soon" }
      ]) {
        const failed = yield* Effect.flip(RetryBudget.make(bad as RetryBudget.Options))
        assert.strictEqual(failed._tag, "SchemaError", JSON.stringify(bad))
      }
    })
  )
})

import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { TestClock } from "effect/testing"
import { CircuitBreaker, LlmError, type LlmResponse, Resilience, Retry, RetryBudget } from "@llm-resilience/core"
import { KeyedState } from "../src/internal/keyedState.ts"

const e503 = new LlmError.ServerError({ message: "service unavailable", status: 503 })
const fail503 = Effect.fail(e503)
const ok = Effect.succeed("ok")

describe("KeyedState", () => {
  it("holds at most maxKeys keys, dropping the least recently used first", () => {
    const s = new KeyedState<number>({ maxKeys: 3, idleMs: 1_000_000 })
    for (let i = 0; i < 3; i++) s.getOrCreate(`k${i}`, 0, () => i)
    s.getOrCreate("k0", 1, () => -1) // k0 used again: k1 is now the oldest unused
    for (let i = 3; i < 100; i++) {
      s.getOrCreate(`k${i}`, 2, () => i)
      assert.isAtMost(s.size, 3)
    }
    assert.strictEqual(s.get("k1"), undefined)
    assert.strictEqual(s.get("k99"), 99)
    // a key used since it was last looked at gets a second chance
    const t = new KeyedState<number>({ maxKeys: 2, idleMs: 1_000_000 })
    t.getOrCreate("a", 0, () => 1)
    t.getOrCreate("b", 0, () => 2)
    t.getOrCreate("a", 1, () => 0)
    t.getOrCreate("c", 2, () => 3)
    assert.deepStrictEqual([t.get("a"), t.get("b"), t.get("c")], [1, undefined, 3])
  })

  it("drops keys idle for idleMs (swept every idleMs / 2), and only those", () => {
    const s = new KeyedState<number>({ maxKeys: 100, idleMs: 1_000 })
    s.getOrCreate("old", 0, () => 1)
    s.getOrCreate("recent", 400, () => 2)
    s.getOrCreate("x", 999, () => 3)
    assert.deepStrictEqual([s.get("old"), s.get("recent"), s.get("x")], [1, 2, 3])
    s.getOrCreate("y", 1_500, () => 4)
    assert.deepStrictEqual([s.get("old"), s.get("recent"), s.get("x"), s.get("y")], [undefined, undefined, 3, 4])
    assert.strictEqual(s.size, 2)
  })

  it("never drops an entry in use; at the cap a new key's state serves the call without being kept", () => {
    const pinned = new Set(["p0", "p1"])
    const s = new KeyedState<string>({ maxKeys: 2, idleMs: 10 }, (v) => !pinned.has(v))
    s.getOrCreate("p0", 0, () => "p0")
    s.getOrCreate("p1", 0, () => "p1")
    assert.strictEqual(
      s.getOrCreate("x", 1_000, () => "x"),
      "x"
    )
    assert.deepStrictEqual([s.size, s.get("p0"), s.get("p1"), s.get("x")], [2, "p0", "p1", undefined])
  })
})

describe("bounded per-key state in the stages", () => {
  it.effect("an open circuit is never evicted, however many other keys pass", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 2,
        openDuration: "1 hour",
        keys: { maxKeys: 5, idleMs: 1_000 }
      })
      for (let i = 0; i < 2; i++) yield* Effect.exit(fail503.pipe(breaker.protect("p/down")))
      for (let i = 0; i < 1_000; i++) {
        yield* TestClock.adjust("10 millis")
        yield* ok.pipe(breaker.protect(`p/m${i}`))
      }
      const rejected = yield* Effect.flip(ok.pipe(breaker.protect("p/down")))
      assert.strictEqual(rejected._tag, "CircuitOpen")
    })
  )

  it.effect("an idle closed circuit expires: its failure streak is forgotten", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 3, keys: { idleMs: 60_000 } })
      for (let i = 0; i < 2; i++) yield* Effect.exit(fail503.pipe(breaker.protect("p/a")))
      yield* TestClock.adjust("61 seconds")
      yield* ok.pipe(breaker.protect("p/b")) // any new key sweeps the idle ones
      yield* Effect.exit(fail503.pipe(breaker.protect("p/a")))
      assert.strictEqual((yield* breaker.status("p/a"))._tag, "Closed")
      // without the idle time, the third failure opens it
      for (let i = 0; i < 3; i++) yield* Effect.exit(fail503.pipe(breaker.protect("p/c")))
      assert.strictEqual((yield* breaker.status("p/c"))._tag, "Open")
    })
  )

  it.effect("the retry budget's in-process store holds at most maxKeys keys", () =>
    Effect.gen(function* () {
      const store = RetryBudget.memoryStore({ maxKeys: 2 })
      const policy = { ratio: 1, windowMs: 10_000, minRetries: 0 }
      store.deposit("a", 0, policy)
      store.deposit("b", 0, policy)
      store.deposit("c", 0, policy) // "a" is dropped with its credit
      assert.isFalse(yield* store.withdraw("a", 1, policy))
      assert.isTrue(yield* store.withdraw("c", 1, policy))
    })
  )

  it.effect("metric series of models the configuration does not name collapse into the model `other`", () =>
    Effect.gen(function* () {
      const raw = {
        name: "p",
        complete: (request: { readonly model: string }) =>
          request.model.startsWith("bad")
            ? Effect.fail(
                new LlmError.ModelNotFound({
                  message: "no such model",
                  status: 404,
                  provider: "p",
                  model: request.model
                })
              )
            : Effect.succeed<LlmResponse.LlmResponse>({
                text: "Hi",
                finishReason: "stop",
                usage: { inputTokens: 1, outputTokens: 1 },
                provider: "p",
                model: request.model
              }),
        stream: () => {
          throw new Error("unused")
        }
      }
      const { provider } = yield* Resilience.make(
        {
          models: { "p/known": { requestsPerMinute: 1_000 } },
          prices: { priced: { inputPerMillion: 1, outputPerMillion: 1 } }
        },
        [raw]
      )
      for (const model of ["known", "priced", "made-up-1", "made-up-2"]) {
        yield* provider.complete({ model, messages: [{ role: "user", content: "Hi" }] })
      }
      for (const model of ["bad-1", "bad-2"]) {
        yield* Effect.exit(provider.complete({ model, messages: [{ role: "user", content: "Hi" }] }))
      }
      const snapshot = yield* Metric.snapshot
      const labels = (id: string, name: string) =>
        [...new Set(snapshot.filter((m) => m.id === id).map((m) => m.attributes?.[name]))].sort()
      assert.deepStrictEqual(labels("llm_requests", "model"), ["known", "other", "priced"])
      assert.deepStrictEqual(labels(Retry.giveUpsTotal.id, "key"), ["p/other"])
    }).pipe(Effect.scoped, Effect.orDie, Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

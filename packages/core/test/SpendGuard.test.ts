import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { TestClock } from "effect/testing"
import { CircuitBreaker, type LlmRequest, type LlmResponse, PriceTable, SpendGuard } from "@llm-resilience/core"

const prices: PriceTable.PriceTable = {
  "gpt-5.4-mini": { inputPerMillion: 2.5, outputPerMillion: 10, cachedInputPerMillion: 1.25 },
  "openai/gpt-5.5": { inputPerMillion: 2, outputPerMillion: 8 }
}

const response = (usage: LlmResponse.Usage, model = "gpt-5.4-mini-2026-03-17"): LlmResponse.LlmResponse => ({
  text: "ok",
  finishReason: "stop",
  usage,
  provider: "openai",
  model
})

const request = (metadata: LlmRequest.RequestMetadata = {}): LlmRequest.LlmRequest => ({
  model: "gpt-5.4-mini",
  messages: [{ role: "user", content: "hi" }],
  metadata
})

describe("PriceTable", () => {
  it("prices usage per million tokens, cached input at its own price, dated ids by prefix", () => {
    const price = PriceTable.priceOf(prices, "gpt-5.4-mini-2026-03-17")
    assert.deepStrictEqual(price, prices["gpt-5.4-mini"])
    assert.strictEqual(PriceTable.priceOf(prices, "gpt-5.5", "openai"), prices["openai/gpt-5.5"])
    assert.isUndefined(PriceTable.priceOf(prices, "gpt-5.4"))
    // 600k uncached * 2.5 + 400k cached * 1.25 + 100k output * 10, per million
    const usd = PriceTable.cost(prices["gpt-5.4-mini"], {
      inputTokens: 1_000_000,
      cachedInputTokens: 400_000,
      outputTokens: 100_000
    })
    assert.closeTo(usd, 1.5 + 0.5 + 1, 1e-12)
    // no cached price: cached tokens cost the input price
    assert.closeTo(
      PriceTable.cost(prices["openai/gpt-5.5"], {
        inputTokens: 1_000_000,
        cachedInputTokens: 1_000_000,
        outputTokens: 0
      }),
      2,
      1e-12
    )
  })

  it("ships a dated example table", () => {
    assert.match(PriceTable.examplePricesAsOf, /^\d{4}-\d{2}-\d{2}$/)
    const table = PriceTable.examplePrices
    // the longest key wins: the mini snapshot is not priced as `gpt-5.4`
    assert.strictEqual(PriceTable.priceOf(table, "gpt-5.4-mini-2026-03-17"), table["gpt-5.4-mini"])
    assert.strictEqual(PriceTable.priceOf(table, "claude-haiku-4-5-20251001"), table["claude-haiku-4-5"])
  })

  it.effect("rejects an invalid table, naming the model and field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(PriceTable.make({ "gpt-x": { inputPerMillion: -1, outputPerMillion: 1 } }))
      assert.include(error.message, "gpt-x")
      assert.include(error.message, "inputPerMillion")
    })
  )
})

describe("SpendGuard", () => {
  it.effect("charges exact cost from usage to every scope of the payer", () =>
    Effect.gen(function* () {
      const spend = yield* SpendGuard.make({ prices })
      const payer = { key: "openai/gpt-5.4-mini", tenant: "acme", conversationId: "c1" }
      const a = yield* spend.charge(payer, "gpt-5.4-mini-2026-03-17", { inputTokens: 2_000, outputTokens: 300 })
      const b = yield* spend.charge(payer, "gpt-5.4-mini", {
        inputTokens: 10_000,
        cachedInputTokens: 8_000,
        outputTokens: 0
      })
      assert.closeTo(a, 0.005 + 0.003, 1e-15)
      assert.closeTo(b, 0.005 + 0.01, 1e-15)
      for (const scope of ["global", "key:openai/gpt-5.4-mini", "tenant:acme", "conversation:c1"]) {
        assert.strictEqual(yield* spend.spent(scope), a + b)
      }
      assert.strictEqual(yield* spend.spent("tenant:other"), 0)
    })
  )

  it.effect("a windowed budget fails fast with BudgetExceeded until the window turns over", () =>
    Effect.gen(function* () {
      const spend = yield* SpendGuard.make({
        prices,
        budgets: [{ scope: "tenant", limitUsd: 0.02, window: "1 hour" }]
      })
      let calls = 0
      const provider = Effect.sync(() => {
        calls++
        return response({ inputTokens: 4_000, outputTokens: 0 }) // $0.01 each
      })
      const req = request({ tenant: "acme" })
      yield* TestClock.adjust("10 minutes")
      yield* provider.pipe(spend.protect("openai/gpt-5.4-mini", req))
      yield* provider.pipe(spend.protect("openai/gpt-5.4-mini", req))
      const error = yield* Effect.flip(provider.pipe(spend.protect("openai/gpt-5.4-mini", req)))
      assert.strictEqual(calls, 2)
      assert.strictEqual(error._tag, "BudgetExceeded")
      if (error._tag !== "BudgetExceeded") return
      assert.deepStrictEqual(
        [error.scope, error.spentUsd, error.limitUsd, error.retryAfterMs],
        ["tenant:acme", 0.02, 0.02, 50 * 60_000]
      )
      // another tenant has its own budget
      yield* provider.pipe(spend.protect("openai/gpt-5.4-mini", request({ tenant: "globex" })))
      assert.strictEqual(calls, 3)
      // the next hour allows again
      yield* TestClock.adjust("50 minutes")
      yield* provider.pipe(spend.protect("openai/gpt-5.4-mini", req))
      assert.strictEqual(calls, 4)
    })
  )

  it.effect("budgets per key and per conversation; a lifetime budget never resets by itself", () =>
    Effect.gen(function* () {
      const spend = yield* SpendGuard.make({
        prices,
        budgets: [
          { scope: "key", limitUsd: 1, window: "1 minute" },
          { scope: "conversation", limitUsd: 0.01 }
        ]
      })
      const provider = Effect.succeed(response({ inputTokens: 4_000, outputTokens: 0 }))
      yield* provider.pipe(spend.protect("openai/gpt-5.4-mini", request({ conversationId: "c1" })))
      const error = yield* Effect.flip(
        provider.pipe(spend.protect("openai/gpt-5.4-mini", request({ conversationId: "c1" })))
      )
      assert.deepStrictEqual(error._tag === "BudgetExceeded" ? [error.scope, error.retryAfterMs] : error._tag, [
        "conversation:c1",
        undefined
      ])
      yield* TestClock.adjust("2 hours")
      assert.strictEqual(
        (yield* Effect.flip(spend.check({ key: "openai/gpt-5.4-mini", conversationId: "c1" })))._tag,
        "BudgetExceeded"
      )
      // requests outside the conversation are not affected
      yield* spend.check({ key: "openai/gpt-5.4-mini" })
    })
  )

  it.effect("a request above the cost threshold counts as a breaker failure", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
      const spend = yield* SpendGuard.make({ prices, expensiveRequestUsd: 0.05, breaker })
      const key = "openai/gpt-5.4-mini"
      const cheap = Effect.succeed(response({ inputTokens: 1_000, outputTokens: 100 }))
      const expensive = Effect.succeed(response({ inputTokens: 10_000, outputTokens: 5_000 })) // $0.075
      yield* cheap.pipe(breaker.protect(key), spend.protect(key, request()))
      yield* expensive.pipe(breaker.protect(key), spend.protect(key, request()))
      const status = yield* breaker.status(key)
      assert.deepStrictEqual(status._tag === "Closed" ? [status.calls, status.failures] : status._tag, [2, 1])
      yield* expensive.pipe(breaker.protect(key), spend.protect(key, request()))
      assert.strictEqual((yield* breaker.status(key))._tag, "Open")
    })
  )

  it.effect("an unknown model is charged $0 (with a warning), and the cost metric counts by key", () =>
    Effect.gen(function* () {
      const spend = yield* SpendGuard.make({ prices })
      assert.strictEqual(
        yield* spend.charge({ key: "x/y" }, "mystery-model", { inputTokens: 1e6, outputTokens: 1e6 }),
        0
      )
      yield* spend.charge({ key: "openai/gpt-5.4-mini" }, "gpt-5.4-mini", { inputTokens: 1e6, outputTokens: 0 })
      const cost = yield* Metric.value(
        Metric.withAttributes(SpendGuard.metrics.costUsd, { key: "openai/gpt-5.4-mini" })
      )
      assert.strictEqual(cost.count, 2.5)
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("invalid budgets fail at construction, naming the field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        SpendGuard.make({ prices, budgets: [{ scope: "tenant", limitUsd: -5, window: "often" as never }] })
      )
      assert.include(error.message, "limitUsd")
      assert.include(error.message, "window")
    })
  )
})

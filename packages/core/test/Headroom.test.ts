import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Metric } from "effect"
import { TestClock } from "effect/testing"
import { Headroom, LlmProvider, RateLimitSnapshot, Telemetry } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

const gauge = (key: string, limit: Headroom.LimitKind) =>
  Effect.map(Metric.value(Metric.withAttributes(Headroom.headroom, { key, limit })), (s) => s.value)

describe("Headroom", () => {
  it("reads both providers' header families into a fraction per limit kind", () => {
    const openai = RateLimitSnapshot.fromHeaders(
      {
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "25",
        "x-ratelimit-limit-tokens": "200000",
        "x-ratelimit-remaining-tokens": "150000",
        "x-ratelimit-reset-tokens": "6m0s"
      },
      0
    )
    assert.deepStrictEqual(Headroom.fractions(openai), [
      { limit: "requests", fraction: 0.05 },
      { limit: "tokens", fraction: 0.75 }
    ])
    const anthropic = RateLimitSnapshot.fromHeaders(
      {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "2000",
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "8000",
        // a remaining count without its limit gives no fraction
        "anthropic-ratelimit-tokens-remaining": "100"
      },
      0
    )
    assert.deepStrictEqual(Headroom.fractions(anthropic), [
      { limit: "requests", fraction: 0.98 },
      { limit: "input_tokens", fraction: 0.05 },
      { limit: "output_tokens", fraction: 1 }
    ])
  })

  it.effect(
    "the pipeline's telemetry exports the gauge per key and limit, following the provider over virtual time",
    () =>
      Effect.gen(function* () {
        const llm = yield* LlmProvider.LlmProvider
        const request = { model: "m", messages: [{ role: "user" as const, content: "x".repeat(400) }] }
        const call = llm.complete(request).pipe(Telemetry.observeCall(request, "chat"))
        // 10 requests per minute: each answer reports one fewer remaining
        for (let i = 0; i < 9; i++) yield* call
        assert.closeTo(yield* gauge("fake/m", "requests"), 0.1, 1e-9)
        assert.isBelow(yield* gauge("fake/m", "tokens"), 1)
        yield* call
        assert.strictEqual(yield* gauge("fake/m", "requests"), 0)
        // the 11th call is a 429 whose snapshot says 0 remain: still recorded, from the error
        const refused = yield* Effect.exit(call)
        assert.isTrue(Exit.isFailure(refused))
        assert.strictEqual(yield* gauge("fake/m", "requests"), 0)
        // a minute later the window has emptied: the next answer reports 9 of 10 left
        yield* TestClock.adjust("61 seconds")
        yield* call
        assert.closeTo(yield* gauge("fake/m", "requests"), 0.9, 1e-9)
      }).pipe(
        Effect.provide(
          FakeProvider.layer({ default: { capacity: { requestsPerMinute: 10, tokensPerMinute: 100_000 } } })
        ),
        Effect.provideService(Metric.MetricRegistry, new Map())
      )
  )

  it.effect("observe records a call outside the pipeline, keys of models it was not told of as provider/other", () =>
    Effect.gen(function* () {
      const answer = (model: string, remaining: number) =>
        Effect.succeed({
          text: "ok",
          finishReason: "stop" as const,
          usage: { inputTokens: 1, outputTokens: 1 },
          provider: "anthropic",
          model,
          rateLimit: { tokens: { limit: 1000, remaining } }
        }).pipe(Headroom.observe(["claude"]))
      yield* answer("claude", 50)
      yield* answer("made-up-1", 100)
      yield* answer("made-up-2", 200)
      assert.closeTo(yield* gauge("anthropic/claude", "tokens"), 0.05, 1e-9)
      assert.closeTo(yield* gauge("anthropic/other", "tokens"), 0.2, 1e-9)
      const keys = (yield* Metric.snapshot).filter((m) => m.id === Headroom.headroom.id).map((m) => m.attributes?.key)
      assert.deepStrictEqual([...new Set(keys)].sort(), ["anthropic/claude", "anthropic/other"])
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

/**
 * The new providers as fallback steps behind an existing one in `Resilience`, over real sockets against the
 * chaos server: an Anthropic primary falls back to Gemini, then to Azure OpenAI, whole and streamed.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, layer } from "@effect/vitest"
import { type LlmRequest, Resilience } from "@llm-resilience/core"
import { ChaosServer } from "@llm-resilience/testing"
import { Effect, Layer, Redacted, Stream } from "effect"
import { AnthropicProvider, AzureOpenAiProvider, GeminiProvider } from "../src/index.ts"

const apiKey = Redacted.make("sk-fallback-0123456789abcdef")
const text = "Answered across wire formats."

const TestLayer = Layer.mergeAll(
  ChaosServer.layer({ apiKey: Redacted.value(apiKey), text, stallMs: 300 }),
  NodeHttpClient.layerUndici
)

const request: LlmRequest.LlmRequest = {
  model: "ignored",
  messages: [{ role: "user", content: "Say it" }],
  maxOutputTokens: 64
}

/** The three providers, each behind the given chaos fault (`undefined`: healthy), in a fallback plan. */
const plan = (faults: {
  readonly anthropic?: ChaosServer.Fault
  readonly gemini?: ChaosServer.Fault
  readonly azure?: ChaosServer.Fault
}) =>
  Effect.gen(function* () {
    const chaos = yield* ChaosServer.ChaosServer
    const anthropic = yield* AnthropicProvider.make({ apiKey, baseUrl: chaos.anthropicBaseUrl(faults.anthropic) })
    const gemini = yield* GeminiProvider.make({ apiKey, baseUrl: chaos.geminiBaseUrl(faults.gemini) })
    const azure = yield* AzureOpenAiProvider.make({ apiKey, endpoint: chaos.azureEndpoint(faults.azure) })
    const { provider } = yield* Resilience.make(
      {
        defaultPath: "chat",
        paths: { chat: { retry: "none" } },
        fallback: [
          { provider: "anthropic", model: "claude-haiku-4-5" },
          { provider: "gemini", model: "gemini-2.5-flash" },
          { provider: "azure-openai", model: "gpt-4o-eu" }
        ]
      },
      [anthropic, gemini, azure]
    )
    const before = (yield* chaos.requests).length
    const wires = Effect.map(chaos.requests, (all) => all.slice(before).map((r) => `${r.wire}:${r.model}`))
    return { provider, wires }
  })

layer(TestLayer, { excludeTestServices: true })("fallback across wire formats", (it) => {
  it.effect("Anthropic overloaded -> Gemini answers", () =>
    Effect.gen(function* () {
      const { provider, wires } = yield* plan({ anthropic: "overloaded" })
      const r = yield* provider.complete(request)
      assert.deepStrictEqual([r.provider, r.model, r.text], ["gemini", "gemini-2.5-flash", text])
      assert.deepStrictEqual(yield* wires, ["anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash"])
    })
  )

  it.effect("Anthropic overloaded -> Gemini out of daily quota -> Azure answers, whole and streamed", () =>
    Effect.gen(function* () {
      const { provider, wires } = yield* plan({ anthropic: "overloaded", gemini: "insufficient-quota" })
      const r = yield* provider.complete(request)
      assert.deepStrictEqual([r.provider, r.model, r.text, r.finishReason], ["azure-openai", "gpt-4o-eu", text, "stop"])
      const chunks = yield* Stream.runCollect(provider.stream(request))
      const last = chunks[chunks.length - 1]
      assert.strictEqual(last._tag === "Finish" ? last.provider : last._tag, "azure-openai")
      assert.strictEqual(chunks.map((c) => (c._tag === "TextDelta" ? c.text : "")).join(""), text)
      const steps = ["anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash", "azure-openai:gpt-4o-eu"]
      assert.deepStrictEqual(yield* wires, [...steps, ...steps])
    })
  )

  it.effect(
    "a Gemini stream cut mid-way (before its finish reason) moves on to Azure only before the first chunk",
    () =>
      Effect.gen(function* () {
        // the stream fails at its first event, before any chunk: the plan moves on
        const early = yield* plan({ anthropic: "server-error", gemini: "keep-alive-only" })
        const chunks = yield* Stream.runCollect(early.provider.stream(request))
        const last = chunks[chunks.length - 1]
        assert.strictEqual(last._tag === "Finish" ? last.provider : last._tag, "azure-openai")
        // cut after chunks were delivered: committed, so the caller gets the typed error, no fallback
        const late = yield* plan({ anthropic: "server-error", gemini: "truncated-stream" })
        const error = yield* Effect.flip(Stream.runCollect(late.provider.stream(request)))
        assert.strictEqual(error._tag, "StreamTruncated")
        assert.deepStrictEqual(yield* late.wires, ["anthropic:claude-haiku-4-5", "gemini:gemini-2.5-flash"])
      })
  )
})

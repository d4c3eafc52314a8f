// Generated from docs/testing.md (block 10) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { NodeHttpClient } from "@effect/platform-node"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { Resilience } from "@llm-resilience/core"
import { AnthropicProvider, OpenAiProvider } from "@llm-resilience/providers"
import { ChaosServer } from "@llm-resilience/testing"

export const apiKey = Redacted.make("sk-test")

export const Pipeline = Layer.unwrap(
  Effect.gen(function* () {
    const chaos = yield* ChaosServer.ChaosServer
    return Resilience.layer(
      { fallback: [{ provider: "openai", model: "gpt-5-mini" }, { provider: "anthropic", model: "claude-sonnet-5" }] },
      OpenAiProvider.layer({ apiKey, baseUrl: chaos.openAiBaseUrl() }),
      AnthropicProvider.layer({ apiKey, baseUrl: chaos.anthropicBaseUrl() })
    )
  })
).pipe(
  Layer.provideMerge(ChaosServer.layer({ stallMs: 300, retryAfterSeconds: 0 })), // port 0: a free port
  Layer.provide(NodeHttpClient.layerUndici)
)

layer(Pipeline, { excludeTestServices: true })("the pipeline over HTTP", (it) => {
  it.effect("answers through a rate limit", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      yield* chaos.setScenario(["rate-limit", "ok"])
      const answer = yield* Resilience.call({ model: "gpt-5-mini", messages: [{ role: "user", content: "Hi" }] })
      expect(answer.text).toContain("chaos server")
      expect((yield* chaos.requests).map((r) => r.step)).toEqual(["rate-limit", "ok"])
    })
  )
})

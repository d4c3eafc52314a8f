// Generated from docs/providers.md (block 6) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { NodeHttpClient } from "@effect/platform-node"
import { expect, layer } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { Retry } from "@llm-resilience/core"
import { ChaosServer } from "@llm-resilience/testing"
import { OpenAiProvider } from "@llm-resilience/providers"

export const TestLayer = Layer.mergeAll(ChaosServer.layer({ stallMs: 300 }), NodeHttpClient.layerUndici)

layer(TestLayer, { excludeTestServices: true })("my pipeline", (it) => {
  it.effect("survives a rate limit", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      yield* chaos.setScenario(["rate-limit", "ok"])
      const openai = yield* OpenAiProvider.make({ apiKey: Redacted.make("sk-test"), baseUrl: chaos.openAiBaseUrl() })
      // wrap `openai` with the toolkit (here: the retry stage) and assert
      const answer = yield* openai
        .complete({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] })
        .pipe(Retry.retry({ profile: "interactive" }))
      expect(answer.finishReason).toBe("stop")
    })
  )
})

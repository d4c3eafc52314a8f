// Generated from docs/configuration.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { LlmProvider, Resilience } from "@llm-resilience/core"
import { OpenAiProvider } from "@llm-resilience/providers"

export const OpenAi = OpenAiProvider.layer().pipe(Layer.provide(NodeHttpClient.layerUndici))

// the one line: the same provider, made resilient with the defaults
export const Live = Resilience.layer().pipe(Layer.provide(OpenAi))

export const program = Effect.gen(function* () {
  const llm = yield* LlmProvider.LlmProvider
  const answer = yield* llm.complete({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] })
  return answer.text
}).pipe(Effect.provide(Live))

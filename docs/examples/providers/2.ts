// Generated from docs/providers.md (block 2) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { NodeHttpClient } from "@effect/platform-node"
import { LlmProvider } from "@llm-resilience/core"
import { OpenAiProvider } from "@llm-resilience/providers"
import { Effect, Layer, Stream } from "effect"

// the key is read from OPENAI_API_KEY as a Redacted
export const OpenAiLive = OpenAiProvider.layer().pipe(Layer.provide(NodeHttpClient.layerUndici))

export const program = Effect.gen(function* () {
  const llm = yield* LlmProvider.LlmProvider
  const answer = yield* llm.complete({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] })
  yield* Stream.runForEach(
    llm.stream({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Count to 3" }] }),
    (chunk) => Effect.log(chunk)
  )
  return answer.text
}).pipe(Effect.provide(OpenAiLive))

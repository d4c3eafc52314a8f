// Generated from docs/effect-ai-adapter.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Layer } from "effect"
import type { LanguageModel } from "effect/ai"
import { LanguageModelAdapter, LlmProvider } from "@llm-resilience/core"

// A LanguageModel layer from any effect/ai provider package, e.g. OpenAiLanguageModel.model("gpt-5.4-mini").
// Its Model layer also provides Model.ProviderName / Model.ModelName, which the adapter uses as defaults.
declare const GptMini: Layer.Layer<LanguageModel.LanguageModel>

export const Llm = LanguageModelAdapter.layer({ provider: "openai", model: "gpt-5.4-mini" }).pipe(Layer.provide(GptMini))

export const program = Effect.gen(function* () {
  const llm = yield* LlmProvider.LlmProvider
  return yield* llm.complete({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] })
})

// Generated from docs/timeouts.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Layer, Stream } from "effect"
import { LlmProvider, Timeouts } from "@llm-resilience/core"

declare const RawProvider: Layer.Layer<LlmProvider.LlmProvider> // e.g. OpenAiProvider.layer()

// as a layer over the provider below it
export const Guarded = Timeouts.layer({
  totalMs: 60_000,
  firstTokenMs: 10_000,
  idleMs: 15_000,
  paths: { autocomplete: { totalMs: 2_000, firstTokenMs: 800, idleMs: 500 } } // per request.metadata.path
}).pipe(Layer.provide(RawProvider))

// or by hand (the stage lives in a Scope)
export const program = Effect.scoped(
  Effect.gen(function* () {
    const timeouts = yield* Timeouts.make({ idleMs: 10_000 })
    const llm = timeouts.wrap(yield* LlmProvider.LlmProvider)
    const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }
    return yield* Stream.runCollect(llm.stream(request))
  })
)

// Generated from docs/configuration.md (block 4) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Layer } from "effect"
import { LlmProvider, Resilience, type Stage } from "@llm-resilience/core"

declare const OpenAi: Layer.Layer<LlmProvider.LlmProvider> // e.g. OpenAiProvider.layer()

// how many attempts are in flight per provider/model, for a dashboard
export const inFlight = new Map<string, number>()
export const counting: Stage.Stage<string> = {
  name: "in-flight",
  enter: (attempt) => {
    inFlight.set(attempt.key, (inFlight.get(attempt.key) ?? 0) + 1)
    return attempt.key
  },
  exit: (key) => {
    inFlight.set(key, (inFlight.get(key) ?? 1) - 1)
  }
}

export const Live = Resilience.layer({ paths: { chat: { retry: "interactive" } } }).pipe(
  Layer.provide(OpenAi),
  Layer.provide(Layer.succeed(Resilience.CustomStages, [counting]))
)

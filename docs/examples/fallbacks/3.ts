// Generated from docs/fallbacks.md (block 3) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { FallbackPlan, Hedge, type LlmProvider, SpendGuard } from "@llm-resilience/core"

declare const openai: LlmProvider.LlmProvider["Service"]

export const primaryStep = Effect.gen(function* () {
  const spend = yield* SpendGuard.SpendGuard
  const hedge = yield* Hedge.make(
    { delayMs: 1_500, percentile: 95, minSamples: 20, maxRatio: 0.05, maxPerMinute: 120 },
    {
      // the loser's prompt is billed even though its answer is dropped
      onLoser: (loser) =>
        Effect.asVoid(
          spend.charge({ key: loser.label }, loser.label.split("/")[1], {
            inputTokens: loser.inputTokens,
            outputTokens: 0
          })
        )
    }
  )
  return FallbackPlan.step(openai, { model: "gpt-5.4-mini", hedge }) // hedges into the next eligible provider step
})

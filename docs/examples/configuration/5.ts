// Generated from docs/configuration.md (block 5) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { Resilience } from "@llm-resilience/core"

export const report = Effect.gen(function* () {
  const { stages } = yield* Resilience.Resilience
  const circuit = yield* stages.breaker.status("openai/gpt-5.4-mini")
  const spentToday = stages.spend === undefined ? 0 : yield* stages.spend.spent("global")
  return { circuit: circuit._tag, spentToday }
})

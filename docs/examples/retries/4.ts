// Generated from docs/retries.md (block 4) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { LlmProvider, Retry } from "@llm-resilience/core"

export const stage = Retry.retry({ profile: "interactive" })
export const call = Effect.flatMap(LlmProvider.LlmProvider, (llm) =>
  llm.complete({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] })
)
export const nested = stage(stage(stage(stage(stage(call))))) // at most 2 + 1 provider calls

// Generated from docs/monitoring.md (block 3) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { Headroom, LlmProvider } from "@llm-resilience/core"

export const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }
export const call = Effect.flatMap(LlmProvider.LlmProvider, (llm) =>
  llm.complete(request).pipe(Headroom.observe(["gpt-5.4-mini", "gpt-5.4"]))
)

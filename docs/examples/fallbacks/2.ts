// Generated from docs/fallbacks.md (block 2) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import type { FallbackPlan, LlmRequest } from "@llm-resilience/core"

declare const plan: FallbackPlan.FallbackPlan<FallbackPlan.LaterQueue>
declare const request: LlmRequest.LlmRequest

export const reply = plan.complete(request).pipe(
  Effect.map((r) => r.text),
  Effect.catchTag("AcceptedForLater", (a) => Effect.succeed(`Queued as ${a.ticketId}; we will email you.`))
)

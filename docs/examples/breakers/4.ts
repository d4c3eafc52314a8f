// Generated from docs/breakers.md (block 4) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { AgentGuard, type LlmRequest, LlmProvider } from "@llm-resilience/core"

export const step = (guard: AgentGuard.AgentGuard, request: LlmRequest.LlmRequest) =>
  Effect.flatMap(LlmProvider.LlmProvider, (llm) => llm.complete(request).pipe(guard.protect(request)))

export const program = Effect.gen(function* () {
  const guard = yield* AgentGuard.make({ maxTurns: 20, loopRepeats: 3, loopWindow: "10 minutes" })
  return yield* step(guard, {
    model: "gpt-5.4",
    messages: [{ role: "user", content: "Plan the migration" }],
    metadata: { conversationId: "c-42" }
  })
})

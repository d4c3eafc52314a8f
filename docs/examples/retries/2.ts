// Generated from docs/retries.md (block 2) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { LlmProvider, Retry, RetryBudget } from "@llm-resilience/core"

export const program = Effect.gen(function* () {
  const llm = yield* LlmProvider.LlmProvider
  const budget = yield* RetryBudget.make()
  const agentStep = yield* Retry.profile({
    name: "agent-step",
    extends: "background",
    maxRetries: 3,
    deadline: "2 minutes",
    jitter: "decorrelated"
  })
  const call = llm.complete({ model: "claude-sonnet-4-6", messages: [{ role: "user", content: "Plan the next step" }] })
  return yield* call.pipe(Retry.retry({ profile: agentStep, budget, key: "anthropic/claude-sonnet-4-6" }))
})

// Generated from docs/retries.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { LlmProvider, Retry, RetryBudget } from "@llm-resilience/core"

export const program = Effect.gen(function* () {
  const llm = yield* LlmProvider.LlmProvider
  const budget = yield* RetryBudget.make() // share one budget per process
  const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }

  const answer = yield* llm
    .complete(request)
    .pipe(Retry.retry({ profile: "interactive", budget, key: "openai/gpt-5.4-mini" }))
  const chunks = llm
    .stream(request)
    .pipe(Retry.retryStream({ profile: "interactive", budget, key: "openai/gpt-5.4-mini" }))
  return { answer, chunks }
})

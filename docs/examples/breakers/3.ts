// Generated from docs/breakers.md (block 3) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { CircuitBreaker, LlmProvider, PriceTable, SpendGuard } from "@llm-resilience/core"

export const program = Effect.gen(function* () {
  const llm = yield* LlmProvider.LlmProvider
  const breaker = yield* CircuitBreaker.make()
  const spend = yield* SpendGuard.make({
    prices: PriceTable.examplePrices, // an EXAMPLE, dated: pass your own table
    budgets: [
      { scope: "tenant", limitUsd: 20, window: "1 hour" },
      { scope: "conversation", limitUsd: 1 } // no window: for the conversation's lifetime
    ],
    expensiveRequestUsd: 0.5, // one request above $0.50 counts as a breaker failure
    breaker
  })
  const request = {
    model: "gpt-5.4",
    messages: [{ role: "user" as const, content: "Hi" }],
    metadata: { tenant: "acme", conversationId: "c-42" }
  }
  return yield* llm.complete(request).pipe(breaker.protect("openai/gpt-5.4"), spend.protect("openai/gpt-5.4", request))
})

// Generated from docs/fallbacks.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { CircuitBreaker, FallbackPlan, Hedge, type LlmProvider } from "@llm-resilience/core"

// Raw providers, e.g. from `@llm-resilience/providers`.
declare const openai: LlmProvider.LlmProvider["Service"]
declare const anthropic: LlmProvider.LlmProvider["Service"]
declare const gemini: LlmProvider.LlmProvider["Service"]

export const request = { model: "any", messages: [{ role: "user" as const, content: "Summarize this thread" }] }

export const program = Effect.gen(function* () {
  const breaker = yield* CircuitBreaker.CircuitBreaker
  const hedge = yield* Hedge.make({ percentile: 95, delayMs: 2_000, maxRatio: 0.05 })
  const plan = yield* FallbackPlan.make(
    [
      FallbackPlan.step(openai, { model: "gpt-5.4-mini", contextWindow: 128_000, hedge }),
      FallbackPlan.step(anthropic, { model: "claude-sonnet-4-6", contextWindow: 200_000 }),
      FallbackPlan.step(gemini, { model: "gemini-2.5-pro", contextWindow: 1_000_000 }),
      FallbackPlan.cached, // needs FallbackPlan.ResponseCache
      FallbackPlan.staticAnswer("We are very busy; please try again in a minute.")
    ],
    { circuit: breaker }
  )
  return yield* plan.complete(request) // request.model is replaced by each step's model
})

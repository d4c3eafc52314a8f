// Generated from docs/monitoring.md (block 2) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import type { LlmProvider } from "@llm-resilience/core"
import { CircuitBreaker, FallbackPlan, OutputMonitor, QualityBreaker } from "@llm-resilience/core"

declare const openai: LlmProvider.LlmProvider["Service"]
declare const anthropic: LlmProvider.LlmProvider["Service"]

export const plan = Effect.gen(function* () {
  const monitor = yield* OutputMonitor.make()
  const breaker = yield* CircuitBreaker.make()
  const circuit = yield* QualityBreaker.make(monitor, { circuit: breaker, probeRate: 0.05 })
  return yield* FallbackPlan.make(
    [
      FallbackPlan.step(openai, { model: "gpt-5.4-mini", policy: monitor.policy() }),
      FallbackPlan.step(anthropic, { model: "claude-sonnet-4-6", policy: monitor.policy() })
    ],
    { circuit }
  )
})

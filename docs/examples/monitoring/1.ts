// Generated from docs/monitoring.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Stream } from "effect"
import type { LlmProvider } from "@llm-resilience/core"
import { FallbackPlan, OutputMonitor, QualityJudge } from "@llm-resilience/core"

declare const openai: LlmProvider.LlmProvider["Service"]

export const program = Effect.gen(function* () {
  const monitor = yield* OutputMonitor.make()
  // optional: a judge scoring 5% of the answers feeds the judge_failure signal
  const judge = yield* QualityJudge.make({
    judge: (_request, response) => Effect.succeed(response.text.includes("total") ? 1 : 0),
    sampleRate: 0.05
  })
  // every answer of this step is observed under "openai/gpt-5.4-mini"
  const plan = yield* FallbackPlan.make([
    FallbackPlan.step(openai, { model: "gpt-5.4-mini", policy: monitor.policy({ judge }) })
  ])
  // drift events carry the evidence: log them, page someone, open a ticket
  yield* monitor.events.pipe(
    Stream.runForEach((event) => Effect.logWarning(`${event.key} ${event.evidence.signal}: ${event._tag}`)),
    Effect.forkDetach
  )
  return plan
})

// Generated from docs/telemetry.md (block 2) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { CallReport, LlmProvider } from "@llm-resilience/core"

export const request = { model: "gpt-5.4", messages: [{ role: "user" as const, content: "Summarise this" }] }

export const program = Effect.gen(function* () {
  const llm = yield* LlmProvider.LlmProvider
  const response = yield* llm.complete(request)
  // e.g. [{ step: "openai/gpt-5.4", outcome: "Overloaded", next: "retry", reason: "backoff", waitedMs: 480, ... },
  //       { step: "openai/gpt-5.4", outcome: "ok", next: "answered", ... }]
  yield* Effect.logInfo("answered", response.report?.answeredBy, response.report?.attempts)
  return response.text
}).pipe(
  Effect.catchTag("RateLimited", (error) => {
    const report = CallReport.of(error)
    return Effect.logWarning("still rate limited after", report?.attempts.length, "attempts").pipe(
      Effect.andThen(Effect.fail(error))
    )
  })
)

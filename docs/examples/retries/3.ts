// Generated from docs/retries.md (block 3) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Schedule } from "effect"
import { Backoff, LlmError } from "@llm-resilience/core"

// Any effect that fails with provider errors, e.g. your own SDK call mapped to `LlmError.ProviderError`.
declare const callModel: Effect.Effect<string, LlmError.ProviderError>

export const policy = Backoff.fullJitter({ base: "200 millis", cap: "10 seconds" }).pipe(
  Backoff.withRetryAfter({ maxRetryAfter: "30 seconds" }), // floor + bound
  Schedule.upTo({ times: 3 })
)
// `while` keeps the retryable-only rule that `Retry.retry` applies for you.
export const answer = callModel.pipe(Effect.retry({ schedule: policy, while: LlmError.isRetryable }))

// Generated from docs/errors.md (block 2) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { LlmError } from "@llm-resilience/core"

export const answer = (call: Effect.Effect<string, LlmError.LlmError>) =>
  call.pipe(
    Effect.catchTag(["RetryBudgetExhausted", "DeadlineExceeded", "RetryAfterTooLong", "AcceptedForLater"], (error) => {
      const cause = LlmError.rootCause(error)
      return Effect.as(
        Effect.logWarning("gave up", {
          gaveUp: error._tag,
          cause: cause?._tag ?? "no provider reached",
          provider: cause?.provider,
          status: cause?.status,
          requestId: cause?.requestId
        }),
        cause?._tag === "QuotaExhausted" ? "The assistant is unavailable today." : "The assistant is busy, try again soon."
      )
    })
  )

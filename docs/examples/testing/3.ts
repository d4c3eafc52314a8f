// Generated from docs/testing.md (block 3) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { LlmError } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

export const quota = FakeProvider.fail(new LlmError.QuotaExhausted({ message: "insufficient_quota", status: 429 }))
export const numbered = FakeProvider.fail(
  (ctx) => new LlmError.ServerError({ message: `attempt ${ctx.callIndex}`, status: 502 })
)

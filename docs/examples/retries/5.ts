// Generated from docs/retries.md (block 5) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { RetryBudget } from "@llm-resilience/core"

// An Effect that builds the budget: run it once and share the result between every call to a key.
export const makeBudget = RetryBudget.make({ ratio: 0.1, window: "1 minute", minRetries: 5 })

// Generated from docs/testing.md (block 9) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { ChaosServer } from "@llm-resilience/testing"

export const chaos = ChaosServer.layer({
  rateLimits: { "gpt-5.4-mini": { requestsPerMinute: 60, tokensPerMinute: 40_000 } },
  rateLimitWindowMs: 5_000 // a minute scaled down for a test
})

// Generated from docs/configuration.md (block 3) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import type { Resilience } from "@llm-resilience/core"

export const config: Resilience.Config = {
  limitGroups: { eastus: { tokensPerMinute: 300_000 } },
  models: {
    "azure/gpt-4o-a": { tokensPerMinute: 450_000, groups: ["eastus"] },
    "azure/gpt-4o-b": { tokensPerMinute: 450_000, groups: ["eastus"] }
  }
}

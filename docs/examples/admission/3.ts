// Generated from docs/admission.md (block 3) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Admission } from "@llm-resilience/core"

export const AdmissionLive = Admission.layerMemory({
  limitGroups: { eastus: { tokensPerMinute: 300_000 } },
  keys: {
    "azure/gpt-4o-a": { tokensPerMinute: 450_000, groups: ["eastus"] },
    "azure/gpt-4o-b": { tokensPerMinute: 450_000, groups: ["eastus"] }
  }
})

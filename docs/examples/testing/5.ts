// Generated from docs/testing.md (block 5) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { FakeProvider } from "@llm-resilience/testing"

export const Outage = FakeProvider.layer({
  default: { latency: "100 millis" },
  windows: [{ from: "10 seconds", to: "70 seconds", behavior: FakeProvider.fail(FakeProvider.overloaded()) }]
})

// Generated from docs/testing.md (block 8) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { FakeProvider } from "@llm-resilience/testing"

export const SlowStream = FakeProvider.layer({
  default: {
    latency: "2 seconds",
    stream: { chunks: 10, interval: "100 millis" },
    script: [FakeProvider.stallMidStream(3)]
  }
})

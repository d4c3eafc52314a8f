// Generated from docs/testing.md (block 7) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { FakeProvider } from "@llm-resilience/testing"

export const Flaky = FakeProvider.layer({
  default: {
    script: [FakeProvider.fail(FakeProvider.serverError(503)), FakeProvider.fail(FakeProvider.rateLimited())]
  }
})

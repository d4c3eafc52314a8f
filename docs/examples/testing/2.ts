// Generated from docs/testing.md (block 2) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { FakeProvider } from "@llm-resilience/testing"

export const scenario: FakeProvider.Scenario = {
  name: "openai", // provider name in responses, errors and the log (default "fake")
  models: {
    "gpt-5.4-mini": {
      latency: "300 millis", // default 0
      text: "A summary.", // default "Hello from the fake provider."
      toolCalls: [{ name: "lookup", arguments: '{"q":"x"}' }], // default none; then finish reason tool_calls
      outputTokens: 40, // default ceil((text + the calls' arguments).length / 4)
      stream: { chunks: 5, interval: "50 millis" }, // default 1 chunk
      capacity: { requestsPerMinute: 60, tokensPerMinute: 10_000 }, // default: unlimited
      behavior: FakeProvider.succeed(), // when neither script nor a window applies
      script: [FakeProvider.fail(FakeProvider.rateLimited({ retryAfter: "2 seconds" }))], // call #0 only
      windows: [{ from: "10 seconds", to: "70 seconds", behavior: FakeProvider.fail(FakeProvider.serverError(503)) }]
    }
  },
  default: {}, // script of models not listed in `models`
  windows: [] // provider-wide windows (all models)
}

// Generated from docs/admission.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, pipe } from "effect"
import { Admission, LlmProvider } from "@llm-resilience/core"

export const AdmissionLive = Admission.layerMemory({
  keys: {
    "openai/gpt-5.4-mini": { requestsPerMinute: 500, tokensPerMinute: 200_000, maxConcurrency: 50 },
    "anthropic/claude-sonnet-4-6": { requestsPerMinute: 50, inputTokensPerMinute: 30_000, outputTokensPerMinute: 8_000 }
  },
  maxQueueLength: 1000, // per key
  maxWaitMs: 30_000, // default for every path ...
  paths: { chat: { maxWaitMs: 2_000 } } // ... interactive paths give up sooner
})

export const request = {
  model: "gpt-5.4-mini",
  messages: [{ role: "user" as const, content: "Summarise this ticket" }],
  maxOutputTokens: 256,
  metadata: { path: "chat", priority: "interactive" as const }
}

export const program = Effect.gen(function* () {
  const llm = yield* LlmProvider.LlmProvider
  // reserve -> call -> reconcile from response.usage (and apply response.rateLimit)
  return yield* pipe(llm.complete(request), Admission.admit(request, "openai/gpt-5.4-mini"))
}).pipe(Effect.provide(AdmissionLive))

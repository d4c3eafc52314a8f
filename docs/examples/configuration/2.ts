// Generated from docs/configuration.md (block 2) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { FallbackPlan, PriceTable, Resilience } from "@llm-resilience/core"
import { AnthropicProvider, OpenAiProvider } from "@llm-resilience/providers"

export const config: Resilience.Config = {
  // limits per provider/model: admission keeps each key under them before the provider says 429
  models: {
    "openai/gpt-5.4-mini": { requestsPerMinute: 500, tokensPerMinute: 200_000, contextWindow: 128_000 },
    "anthropic/claude-haiku-4-5": {
      requestsPerMinute: 50,
      inputTokensPerMinute: 50_000,
      outputTokensPerMinute: 10_000,
      maxConcurrency: 20,
      contextWindow: 200_000
    }
  },
  paths: {
    chat: {
      retry: "interactive",
      timeouts: { totalMs: 8_000, firstTokenMs: 3_000, idleMs: 5_000 },
      maxWaitMs: 2_000,
      hedge: { percentile: 95, maxRatio: 0.05 },
      fallback: [
        { provider: "openai", model: "gpt-5.4-mini" },
        { provider: "anthropic", model: "claude-haiku-4-5" },
        { staticAnswer: "The assistant is busy; please try again in a minute." }
      ]
    },
    "nightly-summary": {
      retry: { extends: "background", maxRetries: 8, deadlineMs: "30 minutes" },
      maxWaitMs: "10 minutes",
      fallback: [{ provider: "openai", model: "gpt-5.4-mini" }, { acceptForLater: true }]
    }
  },
  defaultPath: "chat",
  breaker: { failureRateThreshold: 0.3, windowMs: 30_000, minimumCalls: 20, slowCallThresholdMs: 6_000 },
  retryBudget: { ratio: 0.1, windowMs: 60_000, minRetries: 5 },
  admission: { maxQueueLength: 1_000, agingMs: 30_000 },
  prices: PriceTable.examplePrices, // check your provider's pricing page: these go stale
  spend: {
    budgets: [
      { scope: "global", limitUsd: 200, windowMs: "1 day" },
      { scope: "tenant", limitUsd: 5, windowMs: "1 hour" },
      { scope: "conversation", limitUsd: 0.5 }
    ],
    expensiveRequestUsd: 0.25
  },
  agent: { maxTurns: 30, loopRepeats: 3, loopWindowMs: "10 minutes" }
}

export const Live = Resilience.layer(config, OpenAiProvider.layer(), AnthropicProvider.layer()).pipe(
  Layer.provide(Layer.mergeAll(NodeHttpClient.layerUndici, FallbackPlan.layerLaterQueueMemory({ capacity: 1_000 })))
)

export const answer = Resilience.call({
  model: "gpt-5.4-mini", // replaced by each fallback step's model
  messages: [{ role: "user", content: "Where is my order?" }],
  metadata: { path: "chat", tenant: "acme", conversationId: "c-42", priority: "interactive" }
}).pipe(Effect.provide(Live))

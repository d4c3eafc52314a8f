// Generated from docs/queue.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { NodeHttpClient, NodeRedis } from "@effect/platform-node"
import { Layer } from "effect"
import { DurableQueue, Resilience } from "@llm-resilience/core"
import { OpenAiProvider } from "@llm-resilience/providers"
import { RedisQueue } from "@llm-resilience/redis"

// the queue, in Redis
export const Queue = RedisQueue.layer({ name: "later", maxAttempts: 3, resultTtl: "3 days" }).pipe(
  Layer.provide(NodeRedis.layer({ url: "redis://127.0.0.1:6379" }))
)

// the resilient provider: its fallback plan ends in acceptForLater, which writes to the queue
export const Provider = Resilience.layer({
  fallback: [{ provider: "openai", model: "gpt-5.4-mini" }, { acceptForLater: true }]
}).pipe(
  Layer.provide(OpenAiProvider.layer()), // key from OPENAI_API_KEY
  Layer.provide(DurableQueue.layerLaterQueue),
  Layer.provide(Queue),
  Layer.provide(NodeHttpClient.layerUndici)
)

// workers: 8 jobs at a time in this process, through the same resilient provider
export const App = DurableQueue.layerWorkers({ concurrency: 8 }).pipe(Layer.provide(Provider), Layer.provideMerge(Queue))

/**
 * The crash test's worker process: drains the Redis queue through the resilient OpenAI provider pointed at the
 * chaos server, until it is killed. Reads REDIS_URL, CHAOS_URL, QUEUE_PREFIX; prints "ready" once working.
 */
import { NodeHttpClient, NodeRedis, NodeRuntime } from "@effect/platform-node"
import { DurableQueue, Resilience } from "@llm-resilience/core"
import { OpenAiProvider } from "@llm-resilience/providers"
import { RedisQueue } from "@llm-resilience/redis"
import { Effect, Layer, Redacted } from "effect"
import { queueOptions } from "./options.ts"

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const Provider = Resilience.layer({
  // one provider call per queue attempt: the queue's retries are what the test counts
  paths: { default: { retry: "none", timeouts: { totalMs: 3_000 } } },
  breaker: { mode: "metrics-only" }
}).pipe(
  Layer.provide(OpenAiProvider.layer({ apiKey: Redacted.make("sk-crash"), baseUrl: `${env("CHAOS_URL")}/v1` })),
  Layer.provide(NodeHttpClient.layerUndici)
)

const Queue = RedisQueue.layer(queueOptions(env("QUEUE_PREFIX"))).pipe(
  Layer.provide(NodeRedis.layer({ url: env("REDIS_URL") }))
)

const Ready = Layer.effectDiscard(Effect.sync(() => console.log("ready")))

Layer.launch(
  Layer.mergeAll(DurableQueue.layerWorkers({ concurrency: 24 }), Ready).pipe(
    Layer.provide(Layer.merge(Queue, Provider))
  )
).pipe(NodeRuntime.runMain)

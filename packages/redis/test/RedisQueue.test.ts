import { describe, it } from "@effect/vitest"
import { NodeRedis } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { PersistedQueue } from "effect/persistence"
import { DurableQueue } from "@llm-resilience/core"
import { RedisQueue } from "@llm-resilience/redis"
import { functionalSuite } from "../../core/test/durableQueueSuite.ts"
import { useRedisServer } from "./useRedis.ts"

const redisServer = useRedisServer()

let seq = 0

/** The Redis queue with its factory and job store visible, under a fresh prefix per test. */
const redisLayer = (options: DurableQueue.Options) => {
  const prefix = `t${++seq}:`
  const name = options.name ?? "llm-later"
  const redis = Layer.unwrap(Effect.sync(() => NodeRedis.layer({ url: redisServer().url })))
  return DurableQueue.layer(options).pipe(
    Layer.provideMerge(PersistedQueue.layer),
    Layer.provideMerge(
      Layer.merge(
        PersistedQueue.layerStoreRedis({ prefix: `${prefix}pq:`, pollInterval: "20 millis" }),
        RedisQueue.layerJobStore(`${prefix}${name}:`)
      )
    ),
    Layer.provide(redis)
  )
}

describe("RedisQueue", { timeout: 30_000 }, () => {
  functionalSuite({ layer: redisLayer, tick: Effect.sleep("5 millis"), test: it.live })
})

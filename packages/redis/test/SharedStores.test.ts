import { afterAll, beforeAll, describe, it } from "@effect/vitest"
import { NodeRedis } from "@effect/platform-node"
import { Effect, Metric } from "effect"
import { RedisBreakerStore, RedisRetryBudgetStore, RedisSpendStore, RedisTurnStore } from "@llm-resilience/redis"
import { sharedStoreSuite } from "../../core/test/sharedStoreSuite.ts"
import { startRedis, type RedisServer } from "./redisServer.ts"

let server: RedisServer | undefined
beforeAll(async () => {
  server = await startRedis()
}, 20_000)
afterAll(() => server?.stop())

let seq = 0

describe("Redis stores", { timeout: 20_000 }, () => {
  sharedStoreSuite({
    name: "redis",
    test: it.live,
    withStores: (f) =>
      Effect.gen(function* () {
        const options: RedisBreakerStore.Options = { prefix: `conf${++seq}:`, timeout: "2 seconds" }
        return yield* f({
          breaker: yield* RedisBreakerStore.make(options),
          retry: yield* RedisRetryBudgetStore.make(options),
          spend: yield* RedisSpendStore.make({ ...options, reservationTimeToLive: "1 second" }),
          turns: yield* RedisTurnStore.make(options)
        })
      }).pipe(
        Effect.provide(NodeRedis.layer({ url: server!.url })),
        Effect.provideService(Metric.MetricRegistry, new Map())
      ),
    sleep: (ms) => Effect.sleep(ms)
  })
})

import { assert, describe, it } from "@effect/vitest"
import { NodeRedis } from "@effect/platform-node"
import { Effect, Metric } from "effect"
import { Redis } from "effect/persistence"
import { AgentGuard, CircuitBreaker, LlmError, RetryBudget, SpendGuard } from "@llm-resilience/core"
import { RedisBreakerStore, RedisRetryBudgetStore, RedisSpendStore, RedisTurnStore } from "@llm-resilience/redis"
import { sharedStoreSuite } from "../../core/test/sharedStoreSuite.ts"
import { useRedisServer } from "./useRedis.ts"

const redisServer = useRedisServer()

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
        Effect.provide(NodeRedis.layer({ url: redisServer().url })),
        Effect.provideService(Metric.MetricRegistry, new Map())
      ),
    sleep: (ms) => Effect.sleep(ms)
  })

  it.live("every key the stores write has a time-to-live", () =>
    Effect.gen(function* () {
      const prefix = `ttl${++seq}:`
      const breaker = yield* CircuitBreaker.make({
        consecutiveFailures: 1,
        openDuration: "100 millis",
        store: yield* RedisBreakerStore.make({ prefix })
      })
      const down = Effect.fail(new LlmError.ServerError({ message: "down", status: 503 }))
      yield* Effect.exit(down.pipe(breaker.protect("p/m")))
      yield* Effect.sleep("150 millis")
      yield* Effect.exit(Effect.never.pipe(breaker.protect("p/m"), Effect.timeout("10 millis"))) // a lease
      const budget = yield* RetryBudget.make({ store: yield* RedisRetryBudgetStore.make({ prefix }) })
      yield* budget.deposit("p/m")
      yield* budget.withdraw("p/m")
      const spend = yield* SpendGuard.make({
        prices: { m: { inputPerMillion: 1, outputPerMillion: 1 } },
        budgets: [
          { scope: "tenant", limitUsd: 1 },
          { scope: "global", limitUsd: 1, window: "1 hour" }
        ],
        store: yield* RedisSpendStore.make({ prefix })
      })
      const request = { model: "m", messages: [{ role: "user" as const, content: "hi" }], metadata: { tenant: "t" } }
      const usage = { inputTokens: 1, outputTokens: 1 }
      const response = { text: "x", model: "m", provider: "p", finishReason: "stop" as const, usage }
      yield* Effect.succeed(response).pipe(spend.protect("p/m", request))
      yield* Effect.never.pipe(spend.protect("p/m", request), Effect.timeout("10 millis"), Effect.exit)
      const agent = yield* AgentGuard.make({ store: yield* RedisTurnStore.make({ prefix }) })
      yield* agent.turn({ ...request, metadata: { conversationId: "c" } })
      const redis = yield* Redis.Redis
      const keys = yield* redis.send<Array<string>>("KEYS", `${prefix}*`)
      assert.isAtLeast(keys.length, 8)
      for (const key of keys) {
        const ttl = yield* redis.send<number>("PTTL", key)
        assert.isAbove(ttl, 0, key)
      }
    }).pipe(
      Effect.provide(NodeRedis.layer({ url: redisServer().url })),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )
})

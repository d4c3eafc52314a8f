// Generated from docs/shared-stages.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { NodeRedis } from "@effect/platform-node"
import { AgentGuard, CircuitBreaker, PriceTable, RetryBudget, SpendGuard } from "@llm-resilience/core"
import { RedisBreakerStore, RedisRetryBudgetStore, RedisSpendStore, RedisTurnStore } from "@llm-resilience/redis"
import { Effect } from "effect"

export const options = { prefix: "myapp:", timeout: "250 millis", onFailure: "local", instances: 4 } as const

export const stages = Effect.gen(function* () {
  const breaker = yield* CircuitBreaker.make({ store: yield* RedisBreakerStore.make(options) })
  const budget = yield* RetryBudget.make({ store: yield* RedisRetryBudgetStore.make(options) })
  const spend = yield* SpendGuard.make({
    prices: PriceTable.examplePrices,
    budgets: [{ scope: "conversation", limitUsd: 1 }],
    store: yield* RedisSpendStore.make(options)
  })
  const agent = yield* AgentGuard.make({ maxTurns: 20, store: yield* RedisTurnStore.make(options) })
  return { breaker, budget, spend, agent }
}).pipe(Effect.provide(NodeRedis.layer({ url: "redis://127.0.0.1:6379", disableOfflineQueue: true })))

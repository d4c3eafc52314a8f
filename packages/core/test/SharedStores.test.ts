import { it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { TestClock } from "effect/testing"
import { AgentGuard, CircuitBreaker, RetryBudget, SpendGuard } from "@llm-resilience/core"
import { sharedStoreSuite } from "./sharedStoreSuite.ts"

sharedStoreSuite({
  name: "memory",
  test: it.effect,
  withStores: (f) =>
    f({
      breaker: CircuitBreaker.memoryStore(),
      retry: RetryBudget.memoryStore(),
      spend: SpendGuard.memoryStore({ reservationTimeToLive: "1 second" }),
      turns: AgentGuard.memoryStore()
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map())),
  sleep: (ms) => TestClock.adjust(ms)
})

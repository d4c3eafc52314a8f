/**
 * The spend acceptance test's worker process: CALLS calls, CONCURRENCY at a time, all in one conversation
 * whose budget is LIMIT_USD, each answering after 10-40 ms with a fixed usage. STORE is `redis` (the shared
 * budget at REDIS_URL under PREFIX) or `memory` (this process's own). Prints one JSON line: the calls that
 * ran and the calls refused.
 */
import { NodeRedis, NodeRuntime } from "@effect/platform-node"
import { SpendGuard } from "@llm-resilience/core"
import { RedisSpendStore } from "@llm-resilience/redis"
import { Console, Effect, Layer } from "effect"
import { prices, request, usage } from "./fixture.ts"

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}

const program = Effect.gen(function* () {
  const store =
    env("STORE") === "redis"
      ? yield* RedisSpendStore.make({ prefix: env("PREFIX"), timeout: "5 seconds" }).pipe(
          Effect.provide(yield* Layer.build(NodeRedis.layer({ url: env("REDIS_URL") })))
        )
      : SpendGuard.memoryStore()
  const guard = yield* SpendGuard.make({
    prices,
    budgets: [{ scope: "conversation", limitUsd: Number(env("LIMIT_USD")) }],
    store
  })
  let ran = 0
  let refused = 0
  const call = Effect.suspend(() => Effect.sleep(10 + Math.floor(Math.random() * 30))).pipe(
    Effect.andThen(
      Effect.sync(() => (ran++, { text: "x", model: "m", provider: "p", finishReason: "stop" as const, usage }))
    ),
    guard.protect("p/m", request),
    Effect.catchTag("BudgetExceeded", () => Effect.sync(() => refused++))
  )
  yield* Effect.all(
    Array.from({ length: Number(env("CALLS")) }, () => call),
    {
      concurrency: Number(env("CONCURRENCY")),
      discard: true
    }
  )
  yield* Console.log(JSON.stringify({ ran, refused }))
})

NodeRuntime.runMain(program.pipe(Effect.scoped))

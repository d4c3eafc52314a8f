/**
 * Agent turn counts shared by every instance: the {@link AgentGuard.Store} of `@llm-resilience/core` on
 * Redis. One counter per conversation, counted by one Lua script that never counts past the limit, with
 * the conversation's idle time as its time-to-live.
 *
 * @since 0.1.0
 */
import { AgentGuard } from "@llm-resilience/core"
import { Effect } from "effect"
import { Redis } from "effect/persistence"
import { makeGuard, type StoreOptions } from "./internal/shared.ts"

/**
 * Options of the Redis stores: key prefix, timeout of one call, failure policy, expected instances.
 *
 * @since 0.1.0
 */
export type Options = StoreOptions

const take = Redis.script((key: string, maxTurns: number, idleMs: number) => [key, maxTurns, idleMs], {
  numberOfKeys: 1,
  lua: `local n = tonumber(redis.call("GET", KEYS[1]) or "0")
if n >= tonumber(ARGV[1]) then
  redis.call("PEXPIRE", KEYS[1], ARGV[2])
  return n + 1
end
n = redis.call("INCR", KEYS[1])
redis.call("PEXPIRE", KEYS[1], ARGV[2])
return n`
}).withReturnType<number>()

/**
 * The turn store on the {@link Redis.Redis} in context. Under `onFailure: "local"` an unavailable Redis
 * leaves each instance counting the conversation's turns itself, with the whole limit (a conversation is
 * usually served by one instance at a time); under `"reject"` every turn is refused until Redis answers.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AgentGuard } from "@llm-resilience/core"
 * import { RedisTurnStore } from "@llm-resilience/redis"
 * const guard = Effect.flatMap(RedisTurnStore.make({ prefix: "app:" }), (store) => AgentGuard.make({ maxTurns: 20, store }))
 * ```
 * @since 0.1.0
 */
export const make: (options?: Options) => Effect.Effect<AgentGuard.Store, never, Redis.Redis> = Effect.fnUntraced(
  function* (options?: Options) {
    const redis = yield* Redis.Redis
    const guard = makeGuard("agent-turns", options)
    const local = AgentGuard.memoryStore()
    const takeFn = redis.eval(take)
    const keyOf = (id: string) => `${guard.prefix}turns:${id}`
    const store: AgentGuard.Store = {
      take: (id, maxTurns, idleMs, now) =>
        guard.run(takeFn(keyOf(id), maxTurns, idleMs), () =>
          guard.onFailure === "local" ? local.take(id, maxTurns, idleMs, now) : maxTurns + 1
        ),
      turns: (id, now) =>
        guard.run(
          Effect.map(redis.send<string | null>("GET", keyOf(id)), (n) => Number(n ?? 0)),
          () => local.turns(id, now)
        ),
      end: (id) =>
        Effect.andThen(
          Effect.sync(() => local.end(id)),
          guard.run(Effect.asVoid(redis.send("DEL", keyOf(id))), () => undefined)
        )
    }
    return store
  }
)

/**
 * A retry budget shared by every instance: the {@link RetryBudget.Store} of `@llm-resilience/core` on
 * Redis. Per key one hash holds, for each tenth of the window, the credit deposited and the retries taken
 * (in micro-retries); a retry is granted while the retries in the window stay within max(credit,
 * minRetries). One Lua script per operation, on Redis' own clock; every key lives two windows.
 *
 * @since 0.1.0
 */
import { RetryBudget } from "@llm-resilience/core"
import { Effect } from "effect"
import { Redis } from "effect/persistence"
import { luaNow, makeGuard, type StoreOptions } from "./internal/shared.ts"

/**
 * Options of the Redis stores: key prefix, timeout of one call, failure policy, expected instances.
 *
 * @since 0.1.0
 */
export type Options = StoreOptions

const UNIT = 1_000_000

// per slice of a tenth of the window: "c<slice>" credit deposited, "s<slice>" retries taken (micro-retries)
const prune = `
for _, f in ipairs(redis.call("HKEYS", KEYS[1])) do
  if tonumber(string.sub(f, 2)) <= cur - 10 then redis.call("HDEL", KEYS[1], f) end
end
redis.call("PEXPIRE", KEYS[1], 2 * tonumber(ARGV[2]))`

const deposit = Redis.script((key: string, credit: number, windowMs: number) => [key, credit, windowMs], {
  numberOfKeys: 1,
  lua: `${luaNow}
local cur = math.floor(now / (tonumber(ARGV[2]) / 10))
redis.call("HINCRBY", KEYS[1], "c" .. cur, ARGV[1])
${prune}
return 1`
})

const withdraw = Redis.script((key: string, floor: number, windowMs: number) => [key, floor, windowMs], {
  numberOfKeys: 1,
  lua: `${luaNow}
local cur = math.floor(now / (tonumber(ARGV[2]) / 10))
local credit = 0
local spent = 0
for k = 0, 9 do
  credit = credit + tonumber(redis.call("HGET", KEYS[1], "c" .. (cur - k)) or "0")
  spent = spent + tonumber(redis.call("HGET", KEYS[1], "s" .. (cur - k)) or "0")
end
${prune}
if spent + ${UNIT} > math.max(credit, tonumber(ARGV[1])) then return 0 end
redis.call("HINCRBY", KEYS[1], "s" .. cur, ${UNIT})
return 1`
}).withReturnType<0 | 1>()

/**
 * The retry-budget store on the {@link Redis.Redis} in context. Under `onFailure: "local"` an unavailable
 * Redis leaves each instance its own in-process budget (its requests earn its retries; `minRetries` is
 * divided by `instances`); under `"reject"` no retry is granted until Redis answers.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RetryBudget } from "@llm-resilience/core"
 * import { RedisRetryBudgetStore } from "@llm-resilience/redis"
 * const budget = Effect.flatMap(RedisRetryBudgetStore.make({ prefix: "app:" }), (store) => RetryBudget.make({ store }))
 * ```
 * @since 0.1.0
 */
export const make: (options?: Options) => Effect.Effect<RetryBudget.Store, never, Redis.Redis> = Effect.fnUntraced(
  function* (options?: Options) {
    const redis = yield* Redis.Redis
    const guard = makeGuard("retry-budget", options)
    const local = RetryBudget.memoryStore()
    const depositFn = redis.eval(deposit)
    const withdrawFn = redis.eval(withdraw)
    const keyOf = (key: string) => `${guard.prefix}rb:${key}`
    const share = (policy: RetryBudget.Policy): RetryBudget.Policy => ({
      ...policy,
      minRetries: policy.minRetries / guard.instances
    })
    const store: RetryBudget.Store = {
      deposit: (key, now, policy) =>
        guard.run(Effect.asVoid(depositFn(keyOf(key), Math.round(policy.ratio * UNIT), policy.windowMs)), () =>
          guard.onFailure === "local" ? local.deposit(key, now, share(policy)) : undefined
        ),
      withdraw: (key, now, policy) =>
        guard.run(
          Effect.map(withdrawFn(keyOf(key), Math.round(policy.minRetries * UNIT), policy.windowMs), (r) => r === 1),
          () => (guard.onFailure === "local" ? local.withdraw(key, now, share(policy)) : false)
        )
    }
    return store
  }
)

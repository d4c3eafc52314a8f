/**
 * A retry budget shared by every instance: the {@link RetryBudget.Store} of `@llm-resilience/core` on
 * Redis. Per key one hash holds the credit of each tenth of the window (in micro-retries) and the floor's
 * token bucket; one Lua script per operation, on Redis' own clock, every key with a time-to-live of two
 * windows plus the floor's refill time.
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

const deposit = Redis.script(
  (key: string, credit: number, windowMs: number, ttlMs: number) => [key, credit, windowMs, ttlMs],
  {
    numberOfKeys: 1,
    lua: `${luaNow}
local sliceMs = tonumber(ARGV[2]) / 10
local cur = math.floor(now / sliceMs)
redis.call("HINCRBY", KEYS[1], "s" .. cur, ARGV[1])
for _, f in ipairs(redis.call("HKEYS", KEYS[1])) do
  if string.sub(f, 1, 1) == "s" and tonumber(string.sub(f, 2)) <= cur - 10 then redis.call("HDEL", KEYS[1], f) end
end
redis.call("PEXPIRE", KEYS[1], ARGV[3])
return 1`
  }
)

const withdraw = Redis.script(
  (key: string, windowMs: number, rate: number, ttlMs: number) => [key, windowMs, rate, ttlMs],
  {
    numberOfKeys: 1,
    lua: `${luaNow}
local unit = ${UNIT}
local sliceMs = tonumber(ARGV[1]) / 10
local cur = math.floor(now / sliceMs)
local available = 0
for k = 9, 0, -1 do available = available + tonumber(redis.call("HGET", KEYS[1], "s" .. (cur - k)) or "0") end
redis.call("PEXPIRE", KEYS[1], ARGV[3])
if available >= unit then
  local owed = unit
  for k = 9, 0, -1 do
    if owed <= 0 then break end
    local f = "s" .. (cur - k)
    local v = tonumber(redis.call("HGET", KEYS[1], f) or "0")
    if v > 0 then
      local take = math.min(owed, v)
      redis.call("HINCRBY", KEYS[1], f, -take)
      owed = owed - take
    end
  end
  return 1
end
local rate = tonumber(ARGV[2])
if rate <= 0 then return 0 end
local cap = math.max(1, rate) * unit
local floor = tonumber(redis.call("HGET", KEYS[1], "f") or cap)
local at = tonumber(redis.call("HGET", KEYS[1], "fa") or now)
if now > at then
  floor = math.min(cap, floor + math.floor((now - at) * rate * (unit / 1000)))
  at = now
end
local granted = 0
if floor >= unit then
  floor = floor - unit
  granted = 1
end
redis.call("HSET", KEYS[1], "f", floor, "fa", at)
return granted`
  }
).withReturnType<0 | 1>()

/**
 * The retry-budget store on the {@link Redis.Redis} in context. Under `onFailure: "local"` an unavailable
 * Redis leaves each instance its own in-process budget (its requests earn its retries; the floor is
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
export const make = Effect.fnUntraced(function* (options?: Options) {
  const redis = yield* Redis.Redis
  const guard = makeGuard("retry-budget", options)
  const local = RetryBudget.memoryStore()
  const depositFn = redis.eval(deposit)
  const withdrawFn = redis.eval(withdraw)
  const keyOf = (key: string) => `${guard.prefix}rb:${key}`
  const share = (policy: RetryBudget.Policy): RetryBudget.Policy => ({
    ...policy,
    minRetriesPerSecond: policy.minRetriesPerSecond / guard.instances
  })
  const ttlOf = (policy: RetryBudget.Policy) =>
    Math.ceil(
      2 * policy.windowMs + (policy.minRetriesPerSecond > 0 ? 1000 * Math.max(1, 1 / policy.minRetriesPerSecond) : 0)
    )
  const store: RetryBudget.Store = {
    deposit: (key, now, policy) =>
      guard.run(depositFn(keyOf(key), Math.round(policy.ratio * UNIT), policy.windowMs, ttlOf(policy)), () =>
        guard.onFailure === "local" ? local.deposit(key, now, share(policy)) : undefined
      ),
    withdraw: (key, now, policy) =>
      guard.run(
        Effect.map(withdrawFn(keyOf(key), policy.windowMs, policy.minRetriesPerSecond, ttlOf(policy)), (r) => r === 1),
        () => (guard.onFailure === "local" ? local.withdraw(key, now, share(policy)) : false)
      )
  }
  return store
})

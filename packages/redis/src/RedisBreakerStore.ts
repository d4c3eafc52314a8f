/**
 * Circuit-breaker transitions shared by every instance: the {@link CircuitBreaker.Store} of
 * `@llm-resilience/core` on Redis.
 *
 * Per key one hash holds the shared state (closed, open until a time, half-open), the count of
 * consecutive openings, the length of the last one and when its backoff resets; a sorted set holds the
 * leases of the half-open probes, scored by their expiry. `enter`, `trip` and `probeDone` are one Lua
 * script each, on Redis' clock. The keys expire once they no longer matter: a closed circuit's when its
 * backoff resets, an open one's after its opening plus two probe timeouts and one more opening.
 *
 * @since 0.1.0
 */
import type { CircuitBreaker } from "@llm-resilience/core"
import { Effect } from "effect"
import { Redis } from "effect/persistence"
import { luaNow, makeGuard, type StoreOptions } from "./internal/shared.ts"

/**
 * Options of the Redis stores: key prefix, timeout of one call, failure policy, expected instances.
 *
 * @since 0.1.0
 */
export type Options = StoreOptions

type Policy = Parameters<CircuitBreaker.Store["enter"]>[1]
type Verdict = Exclude<ReturnType<CircuitBreaker.Store["enter"]>, Effect.Effect<unknown, unknown, unknown>>
type SharedState = Exclude<ReturnType<CircuitBreaker.Store["probeDone"]>, Effect.Effect<unknown, unknown, unknown>>

// shared by the three scripts: the state in the hash KEYS[1], the leases in KEYS[2]
// ARGV[1] probes, ARGV[2] probe timeout, ARGV[3] max Retry-After, ARGV[4] open durations "a,b,c"
const prelude = `${luaNow}
local probes = tonumber(ARGV[1])
local probeTimeout = tonumber(ARGV[2])
local maxRetryAfter = tonumber(ARGV[3])
local durations = {}
for d in string.gmatch(ARGV[4], "[^,]+") do durations[#durations + 1] = tonumber(d) end
local function keep(state, untilMs, lastOpenFor, resetAt)
  local ttl
  if state == 0 then ttl = resetAt - now else ttl = math.max(untilMs - now, 0) + 2 * probeTimeout + lastOpenFor end
  if ttl < 1 then
    redis.call("DEL", KEYS[1], KEYS[2])
  else
    redis.call("PEXPIRE", KEYS[1], ttl)
    redis.call("PEXPIRE", KEYS[2], ttl)
  end
end
local function open(openings, hint)
  local base = durations[math.min(openings, #durations)]
  local ms = math.max(base, math.min(hint, maxRetryAfter))
  redis.call("HSET", KEYS[1], "s", 1, "u", now + ms, "o", openings, "l", ms, "k", 0)
  redis.call("DEL", KEYS[2])
  keep(1, now + ms, ms, 0)
  return now + ms
end
local h = redis.call("HMGET", KEYS[1], "s", "u", "o", "l", "r", "k")
local state = tonumber(h[1] or "0")
local untilMs = tonumber(h[2] or "0")
local openings = tonumber(h[3] or "0")
local lastOpenFor = tonumber(h[4] or "0")
local resetAt = tonumber(h[5] or "0")
local successes = tonumber(h[6] or "0")
`

// returns {0} closed, {1, lease} probe, {2, retryAfterMs, openings, halfOpen}
const enter = Redis.script(
  (state: string, leases: string, ...policy: Array<string | number>) => [state, leases, ...policy],
  {
    numberOfKeys: 2,
    lua: `${prelude}
if state == 0 then return {0} end
if state == 1 then
  if now < untilMs then return {2, untilMs - now, openings, 0} end
  redis.call("HSET", KEYS[1], "s", 2, "k", 0)
  redis.call("DEL", KEYS[2])
  successes = 0
end
local first = redis.call("ZRANGE", KEYS[2], 0, 0, "WITHSCORES")
if #first > 0 and tonumber(first[2]) <= now then
  local u = open(openings + 1, 0)
  return {2, u - now, openings + 1, 0}
end
local leased = redis.call("ZCARD", KEYS[2])
if leased + successes < probes then
  local lease = redis.call("HINCRBY", KEYS[1], "n", 1)
  redis.call("ZADD", KEYS[2], now + probeTimeout, lease)
  keep(2, now, lastOpenFor, 0)
  return {1, tostring(lease)}
end
local wait = 0
if #first > 0 then wait = tonumber(first[2]) - now end
return {2, wait, openings, 1}`
  }
).withReturnType<Array<number | string>>()

// ARGV[5] Retry-After hint (0: none)
const trip = Redis.script(
  (state: string, leases: string, ...args: Array<string | number>) => [state, leases, ...args],
  {
    numberOfKeys: 2,
    lua: `${prelude}
if state ~= 0 then return state end
local n = 1
if now < resetAt then n = openings + 1 end
open(n, tonumber(ARGV[5]))
return 1`
  }
)

// ARGV[5] hint, ARGV[6] lease, ARGV[7] result: 0 success, 1 failure, 2 ignored. Returns 0 closed, 1 open, 2 half-open.
const probeDone = Redis.script(
  (state: string, leases: string, ...args: Array<string | number>) => [state, leases, ...args],
  {
    numberOfKeys: 2,
    lua: `${prelude}
if state ~= 2 then return state end
if redis.call("ZREM", KEYS[2], ARGV[6]) == 0 then return 2 end
local result = tonumber(ARGV[7])
if result == 1 then
  open(openings + 1, tonumber(ARGV[5]))
  return 1
end
if result == 0 then
  successes = redis.call("HINCRBY", KEYS[1], "k", 1)
  if successes >= probes then
    redis.call("HSET", KEYS[1], "s", 0, "r", now + lastOpenFor, "k", 0)
    redis.call("DEL", KEYS[2])
    keep(0, 0, lastOpenFor, now + lastOpenFor)
    return 0
  end
end
return 2`
  }
).withReturnType<0 | 1 | 2>()

/**
 * The breaker store on the {@link Redis.Redis} in context. Under `onFailure: "local"` an unavailable
 * Redis leaves each instance's own circuit to decide (it keeps counting, opening and probing alone); under
 * `"reject"` every call is rejected with `CircuitOpen` until Redis answers.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "@llm-resilience/core"
 * import { RedisBreakerStore } from "@llm-resilience/redis"
 * const breaker = Effect.flatMap(RedisBreakerStore.make({ prefix: "app:" }), (store) => CircuitBreaker.make({ store }))
 * ```
 * @since 0.1.0
 */
export const make: (options?: Options) => Effect.Effect<CircuitBreaker.Store, never, Redis.Redis> = Effect.fnUntraced(
  function* (options?: Options) {
    const redis = yield* Redis.Redis
    const guard = makeGuard("breaker", options)
    const enterFn = redis.eval(enter)
    const tripFn = redis.eval(trip)
    const probeDoneFn = redis.eval(probeDone)
    const keys = (key: string) => [`${guard.prefix}cb:${key}`, `${guard.prefix}cb:${key}:p`] as const
    const policyArgs = (p: Policy) => [p.probes, p.probeTimeoutMs, p.maxRetryAfterMs, p.openDurationsMs.join(",")]
    const store: CircuitBreaker.Store = {
      enter: (key, policy) =>
        guard.run(
          Effect.map(enterFn(...keys(key), ...policyArgs(policy)), (r): Verdict => {
            if (r[0] === 0) return { _tag: "Closed" as const }
            if (r[0] === 1) return { _tag: "Probe" as const, lease: String(r[1]) }
            return { _tag: "Open" as const, retryAfterMs: Number(r[1]), openings: Number(r[2]), halfOpen: r[3] === 1 }
          }),
          (): Verdict =>
            guard.onFailure === "local"
              ? { _tag: "Local" as const }
              : { _tag: "Open" as const, retryAfterMs: guard.timeoutMs, openings: 0, halfOpen: false }
        ),
      trip: (key, policy, retryAfterMs) =>
        guard.run(Effect.asVoid(tripFn(...keys(key), ...policyArgs(policy), retryAfterMs ?? 0)), () => undefined),
      probeDone: (key, lease, result, policy, retryAfterMs) =>
        guard.run(
          Effect.map(
            probeDoneFn(
              ...keys(key),
              ...policyArgs(policy),
              retryAfterMs ?? 0,
              lease,
              result === "success" ? 0 : result === "failure" ? 1 : 2
            ),
            (s): SharedState => (s === 0 ? "Closed" : s === 1 ? "Open" : "HalfOpen")
          ),
          (): SharedState => "Local"
        )
    }
    return store
  }
)

/**
 * Spend budgets shared by every instance: the {@link SpendGuard.Store} of `@llm-resilience/core` on Redis.
 *
 * Per account (a scope's budget in one window) a counter holds the nano-dollars spent and a sorted set the
 * reservations of the calls in flight, each scored by its expiry, so that a caller that dies before it
 * settles holds its estimate only until the reservation's time-to-live. `reserve` checks every account and
 * reserves in all of them in one Lua script; `settle` drops the reservation and adds the cost in another.
 * Windows follow Redis' clock. Every key expires: a window's keys after the window (plus the reservation
 * time-to-live), a lifetime account's after its idle time.
 *
 * @since 0.1.0
 */
import { SpendGuard } from "@llm-resilience/core"
import { Duration, Effect } from "effect"
import { Redis } from "effect/persistence"
import { luaNow, makeGuard, type StoreOptions } from "./internal/shared.ts"

/**
 * Options of the spend store: those of every Redis store, plus the idle and reservation times-to-live.
 *
 * @since 0.1.0
 */
export interface Options extends StoreOptions {
  /** Lifetime accounts and totals idle this long are forgotten. ["1 day"] */
  readonly idleTimeToLive?: Duration.Input | undefined
  /** A reservation not settled this long after it was made stops counting. ["10 minutes"] */
  readonly reservationTimeToLive?: Duration.Input | undefined
}

const NANO = 1_000_000_000

// KEYS: the accounts' base keys. ARGV: id, estimate, reservation ttl, idle ttl, then limit and window per account.
const reserve = Redis.script(
  (keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) => [...keys, ...args],
  {
    numberOfKeys: (keys) => keys.length,
    lua: `${luaNow}
local resTtl = tonumber(ARGV[3])
local idle = tonumber(ARGV[4])
local names = {}
local starts = {}
for i = 1, #KEYS do
  local w = tonumber(ARGV[4 + 2 * i])
  local k = KEYS[i]
  local start = 0
  if w > 0 then
    start = math.floor(now / w) * w
    k = k .. "@" .. w .. ":" .. start
  end
  names[i] = k
  starts[i] = start
  redis.call("ZREMRANGEBYSCORE", k .. ":r", "-inf", now)
  local used = tonumber(redis.call("GET", k) or "0")
  for _, m in ipairs(redis.call("ZRANGE", k .. ":r", 0, -1)) do
    used = used + tonumber(string.match(m, "|(%d+)$"))
  end
  if used >= tonumber(ARGV[3 + 2 * i]) then
    local wait = -1
    if w > 0 then wait = start + w - now end
    return {0, i, used, wait}
  end
end
local member = ARGV[1] .. "|" .. ARGV[2]
for i = 1, #KEYS do
  local w = tonumber(ARGV[4 + 2 * i])
  local ttl = math.max(idle, resTtl)
  if w > 0 then ttl = starts[i] + w - now + resTtl end
  redis.call("ZADD", names[i] .. ":r", now + resTtl, member)
  redis.call("PEXPIRE", names[i] .. ":r", ttl)
  if redis.call("EXISTS", names[i]) == 1 then redis.call("PEXPIRE", names[i], ttl) end
end
local out = {1, member}
for i = 1, #KEYS do out[#out + 1] = starts[i] end
return out`
  }
).withReturnType<Array<number | string>>()

// KEYS: the accounts' base keys, then the totals' keys. ARGV: accounts, member, cost, idle ttl, reservation
// ttl, then window and window start (-1: the current one) per account.
const settle = Redis.script((keys: ReadonlyArray<string>, args: ReadonlyArray<string | number>) => [...keys, ...args], {
  numberOfKeys: (keys) => keys.length,
  lua: `${luaNow}
local n = tonumber(ARGV[1])
local cost = tonumber(ARGV[3])
local idle = tonumber(ARGV[4])
local resTtl = tonumber(ARGV[5])
for i = 1, n do
  local w = tonumber(ARGV[4 + 2 * i])
  local start = tonumber(ARGV[5 + 2 * i])
  local k = KEYS[i]
  local ttl = math.max(idle, resTtl)
  if w > 0 then
    if start < 0 then start = math.floor(now / w) * w end
    k = k .. "@" .. w .. ":" .. start
    ttl = math.max(1000, start + w - now + resTtl)
  end
  redis.call("ZREM", k .. ":r", ARGV[2])
  if cost > 0 then redis.call("INCRBY", k, cost) end
  if redis.call("EXISTS", k) == 1 then redis.call("PEXPIRE", k, ttl) end
end
for i = n + 1, #KEYS do
  if cost > 0 then redis.call("INCRBY", KEYS[i], cost) end
  if redis.call("EXISTS", KEYS[i]) == 1 then redis.call("PEXPIRE", KEYS[i], idle) end
end
return 1`
})

const ms = (input: Duration.Input | undefined, fallback: Duration.Input) =>
  Duration.toMillis(Duration.fromInputUnsafe(input ?? fallback))

/**
 * The spend store on the {@link Redis.Redis} in context. Under `onFailure: "local"` an unavailable Redis
 * leaves each instance an in-process budget of limit / `instances` (a reservation made there is settled
 * there); under `"reject"` every call with a budget is refused until Redis answers.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PriceTable, SpendGuard } from "@llm-resilience/core"
 * import { RedisSpendStore } from "@llm-resilience/redis"
 * const guard = Effect.flatMap(RedisSpendStore.make({ prefix: "app:", instances: 4 }), (store) =>
 *   SpendGuard.make({ prices: PriceTable.examplePrices, budgets: [{ scope: "conversation", limitUsd: 1 }], store })
 * )
 * ```
 * @since 0.1.0
 */
export const make: (options?: Options) => Effect.Effect<SpendGuard.Store, never, Redis.Redis> = Effect.fnUntraced(
  function* (options?: Options) {
    const redis = yield* Redis.Redis
    const guard = makeGuard("spend", options)
    const idleMs = ms(options?.idleTimeToLive, "1 day")
    const reservationMs = ms(options?.reservationTimeToLive, "10 minutes")
    const local = SpendGuard.memoryStore(options)
    const reserveFn = redis.eval(reserve)
    const settleFn = redis.eval(settle)
    const keyOf = (name: string) => `${guard.prefix}spend:${name}`
    const totalOf = (name: string) => `${guard.prefix}spent:${name}`
    const share = (accounts: ReadonlyArray<SpendGuard.Account>) =>
      accounts.map((a) => ({ ...a, limitUsd: a.limitUsd / guard.instances }))
    const LOCAL = "local:"

    const store: SpendGuard.Store = {
      reserve: (id, accounts, estimateUsd, now) => {
        if (accounts.length === 0) return { _tag: "Reserved", reservation: { id, accounts, windows: [] } }
        const args: Array<string | number> = [id, Math.round(estimateUsd * NANO), reservationMs, idleMs]
        for (const a of accounts) args.push(Math.round(a.limitUsd * NANO), a.windowMs ?? 0)
        const remote = Effect.map(
          reserveFn(
            accounts.map((a) => keyOf(a.name)),
            args
          ),
          (r): SpendGuard.Reserved => {
            if (r[0] === 1) {
              return {
                _tag: "Reserved",
                reservation: { id: String(r[1]), accounts, windows: r.slice(2).map(Number) }
              }
            }
            const account = accounts[Number(r[1]) - 1]
            const wait = Number(r[3])
            return {
              _tag: "Refused",
              account,
              spentUsd: Number(r[2]) / NANO,
              retryAfterMs: wait < 0 ? undefined : wait
            }
          }
        )
        return guard.run(remote, (): SpendGuard.Reserved | Effect.Effect<SpendGuard.Reserved> => {
          if (guard.onFailure === "reject") {
            return {
              _tag: "Refused",
              account: accounts[0],
              spentUsd: accounts[0].limitUsd,
              retryAfterMs: guard.timeoutMs
            }
          }
          const answer = local.reserve(LOCAL + id, share(accounts), estimateUsd, now)
          const restore = (r: SpendGuard.Reserved): SpendGuard.Reserved =>
            r._tag === "Reserved"
              ? { _tag: "Reserved", reservation: { ...r.reservation, accounts } }
              : { ...r, account: accounts[share(accounts).findIndex((a) => a.name === r.account.name)] ?? accounts[0] }
          return Effect.isEffect(answer) ? Effect.map(answer, restore) : restore(answer)
        })
      },
      settle: (reservation, costUsd, scopes, now) => {
        const { accounts, windows } = reservation
        if (reservation.id.startsWith(LOCAL)) {
          const done = local.settle({ ...reservation, accounts: share(accounts) }, costUsd, scopes, now)
          return Effect.isEffect(done) ? done : Effect.void
        }
        const args: Array<string | number> = [
          accounts.length,
          reservation.id,
          Math.round(costUsd * NANO),
          idleMs,
          reservationMs
        ]
        for (let i = 0; i < accounts.length; i++) args.push(accounts[i].windowMs ?? 0, windows[i] ?? -1)
        return guard.run(
          Effect.asVoid(settleFn([...accounts.map((a) => keyOf(a.name)), ...scopes.map(totalOf)], args)),
          () => undefined
        )
      },
      spent: (scope, now) =>
        guard.run(
          Effect.map(redis.send<string | null>("GET", totalOf(scope)), (n) => Number(n ?? 0) / NANO),
          () => local.spent(scope, now)
        )
    }
    return store
  }
)

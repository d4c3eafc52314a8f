/**
 * The durable accept-for-later queue (`DurableQueue` of `@llm-resilience/core`) kept in Redis: delivery by
 * `effect/persistence/PersistedQueue`'s Redis store (claims with expiring locks, so a job whose worker died is
 * delivered again once its lock expires), job records by {@link layerJobStore}. Any number of processes can
 * accept and work on the same queue.
 *
 * Keys, under `prefix` (default `llmq:`) and the queue's name: `<prefix><name>:job:<ticket>` (the job record,
 * JSON; done records expire after the queue's `resultTtl`), `<prefix><name>:active` (ZSET of queued and
 * running tickets by acceptance time), `<prefix><name>:dead` (ZSET of dead tickets by death time), and
 * `PersistedQueue`'s own keys under `<prefix>pq:`.
 *
 * Give it a `Redis.Redis` (from `NodeRedis.layer` of `@effect/platform-node`). With node-redis' default
 * options a command sent while Redis is down waits in the client's offline queue; pass
 * `disableOfflineQueue: true` to fail fast instead (an accept then fails with `DurableQueueError`, and a
 * fallback plan moves on as from a full queue).
 *
 * @since 0.1.0
 */
import { DurableQueue } from "@llm-resilience/core"
import type { Duration, Schema } from "effect"
import { Effect, Layer, Option } from "effect"
import { PersistedQueue, Redis } from "effect/persistence"

/**
 * Options of the Redis queue: the queue's own ({@link DurableQueue.Options}) plus where its keys live and
 * how claims are kept.
 *
 * @since 0.1.0
 */
export interface Options extends DurableQueue.Options {
  /** Prefix of every key (default `llmq:`). */
  readonly prefix?: string | undefined
  /** How often idle workers look for work (default 1 second; an offer in the same process wakes them at once). */
  readonly pollInterval?: Duration.Input | undefined
  /** A claim not renewed for this long is given to another worker (default 90 seconds). */
  readonly lockExpiration?: Duration.Input | undefined
  /** How often claims are renewed and expired ones looked for (default 30 seconds). */
  readonly lockRefreshInterval?: Duration.Input | undefined
}

const insertScript = Redis.script(
  (key: string, active: string, ticket: string, record: string, acceptedAt: number) => [
    key,
    active,
    ticket,
    record,
    acceptedAt
  ],
  {
    numberOfKeys: 2,
    lua: `
local existing = redis.call("GET", KEYS[1])
if existing then return existing end
redis.call("SET", KEYS[1], ARGV[2])
redis.call("ZADD", KEYS[2], ARGV[3], ARGV[1])
return false
`
  }
).withReturnType<string | null>()

const putScript = Redis.script(
  (
    key: string,
    active: string,
    dead: string,
    ticket: string,
    record: string,
    status: string,
    acceptedAt: number,
    finishedAt: number,
    ttlMs: number
  ) => [key, active, dead, ticket, record, status, acceptedAt, finishedAt, ttlMs],
  {
    numberOfKeys: 3,
    lua: `
if tonumber(ARGV[6]) > 0 then
  redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[6])
else
  redis.call("SET", KEYS[1], ARGV[2])
end
if ARGV[3] == "queued" or ARGV[3] == "running" then
  redis.call("ZADD", KEYS[2], ARGV[4], ARGV[1])
else
  redis.call("ZREM", KEYS[2], ARGV[1])
end
if ARGV[3] == "dead" then
  redis.call("ZADD", KEYS[3], ARGV[5], ARGV[1])
else
  redis.call("ZREM", KEYS[3], ARGV[1])
end
return 1
`
  }
)

const removeScript = Redis.script(
  (key: string, active: string, dead: string, ticket: string) => [key, active, dead, ticket],
  {
    numberOfKeys: 3,
    lua: `
redis.call("ZREM", KEYS[2], ARGV[1])
redis.call("ZREM", KEYS[3], ARGV[1])
return redis.call("DEL", KEYS[1])
`
  }
).withReturnType<number>()

const statsScript = Redis.script((active: string, dead: string) => [active, dead], {
  numberOfKeys: 2,
  lua: `
local oldest = redis.call("ZRANGE", KEYS[1], 0, 0, "WITHSCORES")
local at = -1
if oldest[2] then at = tonumber(oldest[2]) end
return {redis.call("ZCARD", KEYS[1]), at, redis.call("ZCARD", KEYS[2])}
`
}).withReturnType<[active: number, oldestAcceptedAt: number, dead: number]>()

const storeError = (message: string) => (cause: Redis.RedisError) =>
  new DurableQueue.DurableQueueError({ message: `${message}: ${String(cause.cause)}`, cause })

/**
 * A `DurableQueue.JobStore` in Redis, its keys under `keyPrefix` (e.g. `llmq:later:`).
 *
 * @example
 * ```ts
 * import { RedisQueue } from "@llm-resilience/redis"
 * const Store = RedisQueue.layerJobStore("llmq:later:")
 * ```
 * @since 0.1.0
 */
export const layerJobStore = (keyPrefix: string): Layer.Layer<DurableQueue.JobStore, never, Redis.Redis> =>
  Layer.effect(
    DurableQueue.JobStore,
    Effect.gen(function* () {
      const redis = yield* Redis.Redis
      const insert = redis.eval(insertScript)
      const put = redis.eval(putScript)
      const remove = redis.eval(removeScript)
      const stats = redis.eval(statsScript)
      const key = (ticket: string) => `${keyPrefix}job:${ticket}`
      const active = `${keyPrefix}active`
      const dead = `${keyPrefix}dead`
      return DurableQueue.JobStore.of({
        insert: (ticket, record, index) =>
          insert(key(ticket), active, ticket, record, index.acceptedAt).pipe(
            Effect.map(Option.fromNullishOr),
            Effect.mapError(storeError("cannot insert a job"))
          ),
        get: (ticket) =>
          redis
            .send<string | null>("GET", key(ticket))
            .pipe(Effect.map(Option.fromNullishOr), Effect.mapError(storeError("cannot read a job"))),
        put: (ticket, record, index) =>
          put(
            key(ticket),
            active,
            dead,
            ticket,
            record,
            index.status,
            index.acceptedAt,
            index.finishedAt ?? 0,
            index.ttlMs ?? 0
          ).pipe(Effect.asVoid, Effect.mapError(storeError("cannot write a job"))),
        remove: (ticket) =>
          remove(key(ticket), active, dead, ticket).pipe(
            Effect.map((n) => n > 0),
            Effect.mapError(storeError("cannot remove a job"))
          ),
        dead: Effect.gen(function* () {
          const tickets = yield* redis.send<Array<string>>("ZRANGE", dead, "0", "-1")
          if (tickets.length === 0) return []
          const records = yield* redis.send<Array<string | null>>("MGET", ...tickets.map(key))
          return records.filter((r): r is string => r !== null)
        }).pipe(Effect.mapError(storeError("cannot list dead jobs"))),
        stats: stats(active, dead).pipe(
          Effect.map(([a, oldest, d]) => ({ active: a, oldestAcceptedAt: oldest < 0 ? undefined : oldest, dead: d })),
          Effect.mapError(storeError("cannot read queue stats"))
        )
      })
    })
  )

/**
 * A `DurableQueue` in Redis: delivery and job records, for any number of processes.
 *
 * @example
 * ```ts
 * import { NodeRedis } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { DurableQueue } from "@llm-resilience/core"
 * import { RedisQueue } from "@llm-resilience/redis"
 *
 * const Queue = RedisQueue.layer({ name: "later", maxAttempts: 3 }).pipe(
 *   Layer.provide(NodeRedis.layer({ url: "redis://127.0.0.1:6379" }))
 * )
 * const Workers = DurableQueue.layerWorkers({ concurrency: 8 }).pipe(Layer.provideMerge(Queue))
 * ```
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<DurableQueue.DurableQueue, Schema.SchemaError, Redis.Redis> => {
  const prefix = options.prefix ?? "llmq:"
  const name = options.name ?? "llm-later"
  return DurableQueue.layer(options).pipe(
    Layer.provide(PersistedQueue.layer),
    Layer.provide(
      PersistedQueue.layerStoreRedis({
        prefix: `${prefix}pq:`,
        pollInterval: options.pollInterval,
        lockExpiration: options.lockExpiration,
        lockRefreshInterval: options.lockRefreshInterval
      })
    ),
    Layer.provide(layerJobStore(`${prefix}${name}:`))
  )
}

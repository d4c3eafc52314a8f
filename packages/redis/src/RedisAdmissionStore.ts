/**
 * The admission store (`AdmissionStore` of `@llm-resilience/core`) kept in Redis, so that every instance of
 * a service draws on one budget per key and per limit group: requests, tokens, input and output tokens per
 * window, reserved before a call and settled with the reported usage after it.
 *
 * Each operation is one Lua script (one round trip), atomic, on the Redis server's clock, so instances with
 * skewed clocks still agree on the window; times in the answers are converted back into the caller's clock.
 * A successful call costs two round trips: one to reserve, one to settle (with the provider's feedback in
 * the same script).
 *
 * Every call is bounded by `timeout`. When Redis fails or does not answer in time, `onFailure` says what
 * happens:
 * - `local` (default): the instance admits on its own, in memory, its share of every limit
 *   (`limit / instances`), counting what it admitted through Redis in the same window
 *   (`AdmissionFallback` of the core package says exactly what is guaranteed), logs one warning, sets the
 *   gauge `llm_shared_store_local` (attribute `store`: `admission`) to 1 and counts each answer in
 *   `llm_shared_store_fallbacks`. It tries Redis again every `retryInterval`; once Redis answers, shared
 *   admission resumes (one log line, gauge back to 0). Admission re-examines its waiters at each switch.
 * - `reject`: calls that need a reservation fail at once with `AdmissionRejected` (`store-unavailable`).
 *
 * Nothing leaks: a reservation whose settlement cannot reach Redis counts its estimate until it leaves the
 * window, and one made locally is settled locally. Keys, under `prefix` (default `llm:`):
 * `<prefix>adm:k:<provider/model>` and `<prefix>adm:g:<group>`, each expiring two windows after its last
 * write (longer while a provider-reported debit lasts).
 *
 * @since 0.1.0
 */
import { AdmissionFallback, AdmissionStore } from "@llm-resilience/core"
import { Effect, Layer } from "effect"
import { Redis } from "effect/persistence"
import * as Scripts from "./internal/admissionScripts.ts"
import { makeGuard, type StoreOptions } from "./internal/shared.ts"

/**
 * Options of the Redis admission store: those of every Redis store (`prefix`, `timeout`, `onFailure`,
 * `instances`, `retryInterval`) and whose clock the window follows: `server` (default: Redis' `TIME`, one
 * clock for every instance) or `caller` (the `nowMs` admission passes, from the caller's `Clock`: for tests
 * driven by `TestClock`).
 *
 * @since 0.1.0
 */
export interface Options extends StoreOptions {
  readonly clock?: "server" | "caller" | undefined
}

// Lua numbers have no infinity that survives `cjson`: ±Infinity crosses as ±1e300 both ways, and anything
// beyond ±1e299 on the way back is taken for it (a drained budget's `free` is `limit - used - 1e300`).
const INF = 1e299
const num = (x: number): string => (x === Infinity ? "1e300" : x === -Infinity ? "-1e300" : String(x))
const fromLua = (x: number): number => (x >= INF ? Infinity : x <= -INF ? -Infinity : x)
const toCost = (a: ReadonlyArray<number>): AdmissionStore.Cost => ({
  requests: fromLua(a[0]),
  tokens: fromLua(a[1]),
  inputTokens: fromLua(a[2]),
  outputTokens: fromLua(a[3])
})
const four = (c: AdmissionStore.Cost): Array<string> => [
  num(c.requests),
  num(c.tokens),
  num(c.inputTokens),
  num(c.outputTokens)
]
const dimension: Record<AdmissionStore.Dimension, number> = { requests: 1, tokens: 2, inputTokens: 3, outputTokens: 4 }
const correctionArgs = (corrections: ReadonlyArray<AdmissionStore.Correction>): Array<string> => {
  const out = [String(corrections.length)]
  for (const c of corrections) {
    out.push(
      String(dimension[c.dimension]),
      c.limit === undefined ? "" : num(c.limit),
      c.remaining === undefined ? "" : num(c.remaining),
      c.resetAfterMs === undefined ? "" : num(c.resetAfterMs),
      c.drain === true ? "1" : "0"
    )
  }
  return out
}

/** A reservation recorded in Redis: where (the logs and their bucket ids) and what it counts now. */
class RedisReservation implements AdmissionStore.Reservation {
  readonly key: string
  readonly atMs: number
  readonly reserved: AdmissionStore.Cost
  readonly limits: AdmissionStore.Limits
  readonly keys: ReadonlyArray<string>
  readonly ids: ReadonlyArray<number>
  readonly usedAfter: ReadonlyArray<number>
  counted: AdmissionStore.Cost
  constructor(
    key: string,
    atMs: number,
    reserved: AdmissionStore.Cost,
    limits: AdmissionStore.Limits,
    keys: ReadonlyArray<string>,
    ids: ReadonlyArray<number>,
    usedAfter: ReadonlyArray<number>
  ) {
    this.key = key
    this.atMs = atMs
    this.reserved = reserved
    this.limits = limits
    this.keys = keys
    this.ids = ids
    this.usedAfter = usedAfter
    this.counted = reserved
  }
}

/**
 * Builds the store over the `Redis` service in context.
 *
 * @example
 * ```ts
 * import { NodeRedis } from "@effect/platform-node"
 * import { Admission, AdmissionStore } from "@llm-resilience/core"
 * import { RedisAdmissionStore } from "@llm-resilience/redis"
 * import { Effect, Layer } from "effect"
 *
 * const StoreLive = Layer.effect(
 *   AdmissionStore.AdmissionStore,
 *   RedisAdmissionStore.make({ prefix: "chat:", instances: 4 })
 * ).pipe(Layer.provide(NodeRedis.layer({ url: "redis://127.0.0.1:6379", disableOfflineQueue: true })))
 * const AdmissionLive = Admission.layer({ defaults: { requestsPerMinute: 500 } }).pipe(Layer.provide(StoreLive))
 * ```
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (options: Options = {}) {
  const redis = yield* Redis.Redis
  const guard = makeGuard("admission", options)
  const { prefix } = guard
  const callerClock = options.clock === "caller"
  const reserveScript = redis.eval(Scripts.reserve)
  const settleScript = redis.eval(Scripts.settle)
  const correctScript = redis.eval(Scripts.correct)
  const usageScript = redis.eval(Scripts.usage)
  const keyOf = (key: string) => `${prefix}adm:k:${key}`
  const logsOf = (key: string, limits: AdmissionStore.Limits): Array<string> => {
    const keys = [keyOf(key)]
    for (const g of limits.groups ?? []) keys.push(`${prefix}adm:g:${g.name}`)
    return keys
  }
  const timeArg = (nowMs: number) => (callerClock ? String(nowMs) : "")

  const tryReserve: AdmissionFallback.Remote["tryReserve"] = (key, limits, cost, nowMs, within) => {
    const keys = logsOf(key, limits)
    const args: Array<string> = [timeArg(nowMs), num(limits.windowMs), ...four(cost)]
    args.push(within === undefined ? "0" : "1", ...four(within ?? cost), ...four(limits))
    for (const g of limits.groups ?? []) args.push(...four(g))
    return Effect.map(reserveScript(keys, args), (raw): AdmissionStore.Decision => {
      const r = JSON.parse(raw) as [number, number, ...Array<unknown>]
      if (r[0] === 1) {
        const ids = r[2] as Array<number>
        return {
          _tag: "Reserved",
          reservation: new RedisReservation(key, nowMs, cost, limits, keys, ids, r[3] as Array<number>)
        }
      }
      if (r[0] === 0) return { _tag: "Wait", availableAtMs: Number.NaN, slack: within!, free: within! }
      return {
        _tag: "Wait",
        availableAtMs: nowMs + ((r[2] as number) - r[1]),
        slack: toCost(r[3] as Array<number>),
        free: toCost(r[4] as Array<number>)
      }
    })
  }

  const settle: AdmissionFallback.Remote["settle"] = (reservation, actual, corrections, nowMs) => {
    if (!(reservation instanceof RedisReservation)) return Effect.void
    const counted = reservation.counted
    const delta = actual ?? counted
    const args: Array<string> = [timeArg(nowMs), num(reservation.limits.windowMs), actual === undefined ? "0" : "1"]
    args.push(
      String(delta.requests - counted.requests),
      String(delta.tokens - counted.tokens),
      String(delta.inputTokens - counted.inputTokens),
      String(delta.outputTokens - counted.outputTokens)
    )
    for (const id of reservation.ids) args.push(String(id))
    args.push(...four(reservation.limits), ...reservation.usedAfter.map(num), ...correctionArgs(corrections))
    return Effect.map(settleScript(reservation.keys, args), () => {
      if (actual !== undefined) reservation.counted = actual
    })
  }

  const correct: AdmissionFallback.Remote["correct"] = (key, limits, corrections, nowMs) =>
    Effect.asVoid(
      correctScript(keyOf(key), [timeArg(nowMs), num(limits.windowMs), ...four(limits), ...correctionArgs(corrections)])
    )

  const usage: AdmissionFallback.Remote["usage"] = (key, limits, nowMs) =>
    Effect.map(usageScript(keyOf(key), [timeArg(nowMs), num(limits.windowMs)]), (raw) => toCost(JSON.parse(raw)))

  // the failure policy (the local share or a refusal) around the scripts
  return AdmissionStore.AdmissionStore.of(
    AdmissionFallback.make(
      { tryReserve, settle, correct, usage },
      { onFailure: guard.onFailure, instances: guard.instances, guard: guard.run }
    )
  )
})

/**
 * The store as a layer over the `Redis` service in context.
 *
 * @example
 * ```ts
 * import { NodeRedis } from "@effect/platform-node"
 * import { RedisAdmissionStore } from "@llm-resilience/redis"
 * import { Layer } from "effect"
 *
 * const StoreLive = RedisAdmissionStore.layer({ onFailure: "reject" }).pipe(
 *   Layer.provide(NodeRedis.layer({ url: "redis://127.0.0.1:6379", disableOfflineQueue: true }))
 * )
 * ```
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<AdmissionStore.AdmissionStore, never, Redis.Redis> =>
  Layer.effect(AdmissionStore.AdmissionStore, make(options))

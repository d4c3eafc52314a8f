/**
 * Where admission control keeps its rate-limit state, behind one atomic operation.
 *
 * The store holds, per key (`provider/model`) and per limit group, a bucketed sliding log of reservations
 * over the last window (60 s by default) and answers {@link AdmissionStoreShape.tryReserve}: check the
 * request, token, input-token and output-token budgets of the key and of every group it belongs to
 * together and, only if all of them allow it, record the reservation in each, in one atomic step. It never
 * takes one budget and then fails on another. After the call, {@link AdmissionStoreShape.settle} replaces
 * the estimate with the actual usage (or zero for a refund) and applies the provider's feedback (rate-limit
 * headers, a 429) in the same step; feedback without a reservation arrives through
 * {@link AdmissionStoreShape.correct}.
 *
 * A limit group is a budget several keys share: five Azure deployments configured for 450K tokens per
 * minute each that draw on one regional quota of 300K belong to one group of 300K. A reservation fits only
 * when the key and each of its groups allow it.
 *
 * The log is bucketed (see `Bucket` below): reservations close together share one bucket, which counts in
 * full until its latest reservation leaves the window. That is conservative, so no window of `windowMs` ever
 * holds more than the limit, which a token bucket cannot promise (it allows a full burst plus the refill
 * within one window); and the log holds at most 61 buckets per key, whatever the request rate.
 *
 * The in-memory store ({@link layerMemory}) follows the `Clock` passed in as `nowMs`, so TestClock drives it.
 * The Redis store of `@llm-resilience/redis` implements the same operations as Lua scripts (one per
 * operation, each atomic, on the Redis server's clock), so any number of instances share one budget; both
 * pass the same conformance tests.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, type Scope } from "effect"
import { Deque } from "./internal/Deque.ts"

/**
 * The four budgets a request draws on.
 *
 * @since 0.1.0
 */
export interface Cost {
  readonly requests: number
  readonly tokens: number
  readonly inputTokens: number
  readonly outputTokens: number
}

/**
 * The name of one budget.
 *
 * @since 0.1.0
 */
export type Dimension = keyof Cost

/**
 * A limit group a key belongs to: its name and its own limits per window (`Infinity` where not limited).
 *
 * @since 0.1.0
 */
export interface Group extends Cost {
  readonly name: string
}

/**
 * Limits per window for one key; `Infinity` where a budget is not limited. `groups` are the limit groups the
 * key also draws on, each reserved together with the key.
 *
 * @since 0.1.0
 */
export interface Limits extends Cost {
  readonly windowMs: number
  readonly groups?: ReadonlyArray<Group> | undefined
}

/**
 * A recorded reservation, handed back to {@link AdmissionStoreShape.settle}.
 *
 * @since 0.1.0
 */
export interface Reservation {
  readonly key: string
  readonly atMs: number
  /** What was reserved (the estimate). */
  readonly reserved: Cost
  /** The limits it was reserved under. */
  readonly limits: Limits
}

/**
 * The answer of {@link AdmissionStoreShape.tryReserve}.
 *
 * - `Reserved`: every budget allowed the cost and it is recorded.
 * - `Wait`: some budget does not allow it now. `availableAtMs` is the earliest time the window frees
 *   enough (computed from the log, not polled); `slack` is what other requests may still reserve now
 *   without moving that time later (used for backfilling behind a blocked head of line); `free` is what
 *   fits right now. For a call with `within` (a backfill attempt) these three are not computed.
 * - `Unavailable`: the store could not answer (a shared store that is down, under the `reject` policy).
 *
 * @since 0.1.0
 */
export type Decision =
  | { readonly _tag: "Reserved"; readonly reservation: Reservation }
  | { readonly _tag: "Wait"; readonly availableAtMs: number; readonly slack: Cost; readonly free: Cost }
  | { readonly _tag: "Unavailable" }

/**
 * Feedback from the provider about one budget: its real limit, what remains, and when it resets. A 429
 * naming a budget arrives as `drain: true`: nothing more is admitted on that budget until the reset.
 *
 * @since 0.1.0
 */
export interface Correction {
  readonly dimension: Dimension
  readonly limit?: number | undefined
  readonly remaining?: number | undefined
  readonly resetAfterMs?: number | undefined
  readonly drain?: boolean | undefined
}

/**
 * The store interface. `tryReserve` and `settle`, called on every admitted call, answer directly when the
 * store is in the process (no effect to run) and with an `Effect` when it is remote: admission runs what
 * it is given. A remote store bounds every call and never fails: what it cannot do it says
 * (`Unavailable`) or leaves to the window (a reservation it could not settle expires with it).
 *
 * @since 0.1.0
 */
export interface AdmissionStoreShape {
  /**
   * Atomically: if every budget of `key` and of each of its groups allows `cost` at `nowMs` (and, when
   * `within` is given, `cost` fits in it), record the reservation in each. Otherwise record nothing and say
   * when it could fit.
   */
  readonly tryReserve: (
    key: string,
    limits: Limits,
    cost: Cost,
    nowMs: number,
    within?: Cost | undefined
  ) => Decision | Effect.Effect<Decision>
  /**
   * Atomically: replace a reservation's amounts with `actual` (a refund is all zeros; `undefined` keeps the
   * estimate), in the key and its groups (no-op in a log the reservation already left), then apply
   * `corrections` to the key as {@link AdmissionStoreShape.correct} does, with the reservation as basis.
   */
  readonly settle: (
    reservation: Reservation,
    actual: Cost | undefined,
    corrections: ReadonlyArray<Correction>,
    nowMs: number
  ) => void | Effect.Effect<void>
  /**
   * Move the key's budget toward what the provider reported: a lower limit caps the configured one; a
   * `remaining` below the local view adds a debit (usage we cannot see, e.g. other clients on the same key)
   * until `resetAfterMs` (default: one window). A `remaining` at or above the local view clears the debit.
   * The budget never rises above the configured limit, and never above what the log allows. When the
   * feedback came with the response to a reservation (through `settle`), the provider counted at the moment
   * that request was sent, so it is compared with the usage recorded at that reservation, not with the
   * usage now (which a window slide or later admissions have moved since).
   */
  readonly correct: (
    key: string,
    limits: Limits,
    corrections: ReadonlyArray<Correction>,
    nowMs: number
  ) => Effect.Effect<void>
  /** What is reserved in the key's current window (without debits). */
  readonly usage: (key: string, limits: Limits, nowMs: number) => Effect.Effect<Cost>
  /**
   * Only for a store whose answers can change all at once rather than through reservations: a shared store
   * that falls back to this instance's share when it fails, and back when it recovers. Runs `listener` on
   * each such switch until the scope closes; admission registers one that re-examines its parked waiters
   * (a waiter parked until the shared window frees may fit the local share now).
   */
  readonly onSwitch?: ((listener: Effect.Effect<void>) => Effect.Effect<void, never, Scope.Scope>) | undefined
}

/**
 * The store service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AdmissionStore } from "@llm-resilience/core"
 *
 * const limits = { windowMs: 60_000, requests: 60, tokens: 10_000, inputTokens: Infinity, outputTokens: Infinity }
 * const program = Effect.gen(function*() {
 *   const store = yield* AdmissionStore.AdmissionStore
 *   const cost = { requests: 1, tokens: 500, inputTokens: 300, outputTokens: 200 }
 *   const decision = store.tryReserve("openai/gpt-5.4", limits, cost, 0)
 *   return Effect.isEffect(decision) ? yield* decision : decision
 * }).pipe(Effect.provide(AdmissionStore.layerMemory))
 * ```
 * @since 0.1.0
 */
export class AdmissionStore extends Context.Service<AdmissionStore, AdmissionStoreShape>()(
  "@llm-resilience/core/AdmissionStore"
) {}

/**
 * The limits of `limits` divided by `n` (requests rounded down, at least one): one instance's share when `n`
 * instances split a budget without a shared store.
 *
 * @example
 * ```ts
 * import { AdmissionStore } from "@llm-resilience/core"
 * const limits = { windowMs: 60_000, requests: 100, tokens: 40_000, inputTokens: Infinity, outputTokens: Infinity }
 * AdmissionStore.share(limits, 4) // requests 25, tokens 10_000
 * ```
 * @since 0.1.0
 */
export const share = (limits: Limits, n: number): Limits => {
  const part = <C extends Cost>(c: C): C => ({
    ...c,
    requests: Math.max(1, Math.floor(c.requests / n)),
    tokens: c.tokens / n,
    inputTokens: c.inputTokens / n,
    outputTokens: c.outputTokens / n
  })
  return { ...part(limits), groups: limits.groups?.map(part) }
}

// ---------------------------------------------------------------------------------------------------------
// in-memory implementation
// ---------------------------------------------------------------------------------------------------------

const R = 0
const T = 1
const I = 2
const O = 3

const toArray = (c: Cost): Array<number> => [c.requests, c.tokens, c.inputTokens, c.outputTokens]
const toCost = (a: ArrayLike<number>): Cost => ({ requests: a[R], tokens: a[T], inputTokens: a[I], outputTokens: a[O] })
const dimIndex: Record<Dimension, number> = { requests: R, tokens: T, inputTokens: I, outputTokens: O }

/**
 * Reservations made close together share one bucket of the log: the bucket opened by a reservation at
 * `startMs` takes every reservation until `startMs + windowMs / BUCKETS_PER_WINDOW`, and sums them. A
 * bucket counts in full until its latest reservation (`lastMs`) leaves the window, so the sums are
 * conservative: a reservation counts at least as long as it would in an exact log, never less, and no
 * window ever holds more than a limit. The log holds at most `BUCKETS_PER_WINDOW + 1` buckets per key,
 * however many calls are admitted: an admitted call retains nothing after it settles.
 */
const BUCKETS_PER_WINDOW = 60

class Bucket {
  live = true
  readonly startMs: number
  lastMs: number
  readonly c = [0, 0, 0, 0]
  constructor(startMs: number) {
    this.startMs = startMs
    this.lastMs = startMs
  }
}

class Entry implements Reservation {
  readonly key: string
  readonly atMs: number
  readonly reserved: Cost
  readonly limits: Limits
  /** The key's log first, then its groups'; `buckets[i]` is the bucket in `logs[i]`. */
  readonly logs: ReadonlyArray<KeyLog>
  readonly buckets: ReadonlyArray<Bucket>
  readonly c: Array<number>
  /** The key's usage right after this reservation (per budget, without debits). */
  readonly usedAfter: Array<number>
  constructor(
    key: string,
    atMs: number,
    reserved: Cost,
    limits: Limits,
    logs: ReadonlyArray<KeyLog>,
    buckets: ReadonlyArray<Bucket>,
    c: Array<number>
  ) {
    this.key = key
    this.atMs = atMs
    this.reserved = reserved
    this.limits = limits
    this.logs = logs
    this.buckets = buckets
    this.c = c
    const u = logs[0].used
    this.usedAfter = [u[R], u[T], u[I], u[O]]
  }
}

/** What `room` leaves once `debit` is taken: nothing at all under a drain, even in an unlimited budget. */
const left = (room: number, debit: number): number => (debit === Infinity ? -Infinity : room - debit)

class KeyLog {
  readonly log = new Deque<Bucket>(64)
  readonly used = [0, 0, 0, 0]
  readonly debit = [0, 0, 0, 0]
  readonly debitUntil = [0, 0, 0, 0]
  readonly cap = [Infinity, Infinity, Infinity, Infinity]

  expire(windowMs: number, now: number): void {
    const log = this.log
    let b = log.peek()
    while (b !== undefined && b.lastMs + windowMs <= now) {
      log.shift()
      b.live = false
      const used = this.used
      used[R] -= b.c[R]
      used[T] -= b.c[T]
      used[I] -= b.c[I]
      used[O] -= b.c[O]
      b = log.peek()
    }
    if (log.length === 0) {
      // drop float drift once the window is empty
      this.used[R] = this.used[T] = this.used[I] = this.used[O] = 0
    }
  }

  /** Records `c` at `now` in the open bucket (or a new one) and returns that bucket. */
  add(c: Array<number>, windowMs: number, now: number): Bucket {
    const log = this.log
    let b = log.length === 0 ? undefined : log.at(log.length - 1)
    if (b === undefined || now >= b.startMs + windowMs / BUCKETS_PER_WINDOW || now < b.lastMs) {
      b = new Bucket(now)
      log.push(b)
    }
    b.lastMs = now
    const used = this.used
    for (let d = 0; d < 4; d++) {
      b.c[d] += c[d]
      used[d] += c[d]
    }
    return b
  }

  limit(limits: Cost, d: number): number {
    const configured =
      d === R ? limits.requests : d === T ? limits.tokens : d === I ? limits.inputTokens : limits.outputTokens
    return Math.min(configured, this.cap[d])
  }

  debitAt(d: number, t: number): number {
    return this.debitUntil[d] > t ? this.debit[d] : 0
  }

  /** Earliest time at which the log's usage in `d` is at most `x`. */
  earliest(d: number, x: number, windowMs: number, now: number): number {
    if (x < 0) return Infinity
    const used = this.used[d]
    if (used <= x) return now
    let freed = 0
    const log = this.log
    for (let i = 0; i < log.length; i++) {
      const b = log.at(i)
      freed += b.c[d]
      if (used - freed <= x) return b.lastMs + windowMs
    }
    return Infinity
  }

  /** Whether `x` more in `d` would exceed the budget at `now` (a drain blocks even an unlimited one). */
  over(limits: Cost, d: number, x: number, now: number): boolean {
    const debit = this.debitAt(d, now)
    return debit === Infinity || this.used[d] + debit + x > this.limit(limits, d)
  }

  /** Whether `c` fits at `now` under `limits`. */
  fits(limits: Cost, c: Array<number>, now: number): boolean {
    for (let d = 0; d < 4; d++) {
      if (c[d] > 0 && this.over(limits, d, c[d], now)) return false
    }
    return true
  }

  /** Earliest time every budget allows `c` (each budget's condition is monotone in time). */
  availableAt(limits: Cost, c: Array<number>, windowMs: number, now: number): number {
    let at = now
    for (let d = 0; d < 4; d++) {
      const limit = this.limit(limits, d)
      if (c[d] === 0 || !this.over(limits, d, c[d], now)) continue
      let td: number
      if (this.debitAt(d, now) > 0) {
        const withDebit = this.earliest(d, limit - c[d] - this.debit[d], windowMs, now)
        const afterDebit = Math.max(this.earliest(d, limit - c[d], windowMs, now), this.debitUntil[d])
        td = withDebit < this.debitUntil[d] ? Math.min(withDebit, afterDebit) : afterDebit
      } else {
        td = this.earliest(d, limit - c[d], windowMs, now)
      }
      if (td > at) at = td
    }
    return at
  }

  /** Lowers `slack` and `free` (in place) to what this log leaves: now, and without delaying `at`. */
  spare(
    limits: Cost,
    c: Array<number>,
    windowMs: number,
    now: number,
    at: number,
    slack: Array<number>,
    free: Array<number>
  ) {
    const freed = [0, 0, 0, 0]
    const log = this.log
    for (let i = 0; i < log.length; i++) {
      const b = log.at(i)
      if (b.lastMs + windowMs > at) break
      for (let d = 0; d < 4; d++) freed[d] += b.c[d]
    }
    for (let d = 0; d < 4; d++) {
      const limit = this.limit(limits, d)
      slack[d] = Math.min(slack[d], left(limit - c[d] - (this.used[d] - freed[d]), this.debitAt(d, at)))
      free[d] = Math.min(free[d], left(limit - this.used[d], this.debitAt(d, now)))
    }
  }

  correct(limits: Limits, corrections: ReadonlyArray<Correction>, now: number, usedThen: Array<number>): void {
    for (const correction of corrections) {
      const d = dimIndex[correction.dimension]
      if (correction.limit !== undefined && correction.limit > 0) this.cap[d] = correction.limit
      if (correction.drain === true) {
        // a 429 naming this budget: nothing more until the reset
        this.debit[d] = Infinity
        this.debitUntil[d] = Math.max(this.debitUntil[d], now + (correction.resetAfterMs ?? limits.windowMs))
        continue
      }
      if (correction.remaining === undefined) continue
      const available = this.limit(limits, d) - usedThen[d]
      if (correction.remaining < available) {
        this.debit[d] = available - correction.remaining
        this.debitUntil[d] = now + (correction.resetAfterMs ?? limits.windowMs)
      } else {
        this.debit[d] = 0
        this.debitUntil[d] = 0
      }
    }
  }
}

/**
 * Creates an in-memory store (one per process; keys are independent).
 *
 * @example
 * ```ts
 * import { AdmissionStore } from "@llm-resilience/core"
 * const store = AdmissionStore.makeMemory()
 * ```
 * @since 0.1.0
 */
export const makeMemory = (): AdmissionStoreShape => {
  const keys = new Map<string, KeyLog>()
  const groups = new Map<string, KeyLog>()
  const get = (map: Map<string, KeyLog>, name: string): KeyLog => {
    let k = map.get(name)
    if (k === undefined) {
      k = new KeyLog()
      map.set(name, k)
    }
    return k
  }

  const tryReserveUnsafe = (key: string, limits: Limits, cost: Cost, now: number, within?: Cost): Decision => {
    const windowMs = limits.windowMs
    const logs = [get(keys, key)]
    const each: Array<Cost> = [limits]
    for (const g of limits.groups ?? []) {
      logs.push(get(groups, g.name))
      each.push(g)
    }
    const c = toArray(cost)
    let fits = true
    for (let i = 0; i < logs.length; i++) {
      logs[i].expire(windowMs, now)
      if (fits && !logs[i].fits(each[i], c, now)) fits = false
    }
    if (within !== undefined) {
      if (
        !fits ||
        c[R] > within.requests ||
        c[T] > within.tokens ||
        c[I] > within.inputTokens ||
        c[O] > within.outputTokens
      ) {
        return { _tag: "Wait", availableAtMs: Number.NaN, slack: within, free: within }
      }
    }
    if (fits) {
      const buckets = logs.map((log) => log.add(c, windowMs, now))
      return { _tag: "Reserved", reservation: new Entry(key, now, cost, limits, logs, buckets, c) }
    }
    let at = now
    for (let i = 0; i < logs.length; i++) at = Math.max(at, logs[i].availableAt(each[i], c, windowMs, now))
    // cannot fit under the current (provider-lowered) limit: look again after one window
    if (!Number.isFinite(at)) at = now + windowMs
    if (at <= now) at = now + 1
    const slack = [Infinity, Infinity, Infinity, Infinity]
    const free = [Infinity, Infinity, Infinity, Infinity]
    for (let i = 0; i < logs.length; i++) logs[i].spare(each[i], c, windowMs, now, at, slack, free)
    return { _tag: "Wait", availableAtMs: at, slack: toCost(slack), free: toCost(free) }
  }

  const settleUnsafe = (
    reservation: Reservation,
    actual: Cost | undefined,
    corrections: ReadonlyArray<Correction>,
    now: number
  ): void => {
    if (!(reservation instanceof Entry)) return
    if (actual !== undefined) {
      const a = toArray(actual)
      for (let i = 0; i < reservation.logs.length; i++) {
        const bucket = reservation.buckets[i]
        if (!bucket.live) continue
        const used = reservation.logs[i].used
        for (let d = 0; d < 4; d++) {
          const delta = a[d] - reservation.c[d]
          used[d] += delta
          bucket.c[d] += delta
        }
      }
      for (let d = 0; d < 4; d++) reservation.c[d] = a[d]
    }
    if (corrections.length > 0) {
      const k = reservation.logs[0]
      k.expire(reservation.limits.windowMs, now)
      k.correct(reservation.limits, corrections, now, reservation.usedAfter)
    }
  }

  return {
    tryReserve: tryReserveUnsafe,
    settle: settleUnsafe,
    correct: (key, limits, corrections, nowMs) =>
      Effect.sync(() => {
        const k = get(keys, key)
        k.expire(limits.windowMs, nowMs)
        k.correct(limits, corrections, nowMs, k.used)
      }),
    usage: (key, limits, nowMs) =>
      Effect.sync(() => {
        const k = get(keys, key)
        k.expire(limits.windowMs, nowMs)
        return toCost(k.used)
      })
  }
}

/**
 * The in-memory store as a layer.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Admission, AdmissionStore } from "@llm-resilience/core"
 * const AdmissionLive = Admission.layer({ keys: { "openai/gpt-5.4": { requestsPerMinute: 500 } } }).pipe(
 *   Layer.provide(AdmissionStore.layerMemory)
 * )
 * ```
 * @since 0.1.0
 */
export const layerMemory: Layer.Layer<AdmissionStore> = Layer.sync(AdmissionStore, makeMemory)

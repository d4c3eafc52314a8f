/**
 * Where admission control keeps its rate-limit state, behind one atomic operation.
 *
 * The store holds, per key (`provider/model`), a bucketed sliding log of reservations over the last window (60 s by
 * default) and answers {@link AdmissionStoreShape.tryReserve}: check the request, token, input-token and
 * output-token budgets together and, only if all of them allow it, record the reservation, in one atomic
 * step. It never takes one budget and then fails on another. After the call,
 * {@link AdmissionStoreShape.reconcile} replaces the estimate with the actual usage (or zero for a refund).
 * Provider feedback (rate-limit headers, a 429) arrives through {@link AdmissionStoreShape.correct}.
 *
 * The log is bucketed (see `Bucket` below): reservations close together share one bucket, which counts in
 * full until its latest reservation leaves the window. That is conservative, so no window of `windowMs` ever
 * holds more than the limit, which a token bucket cannot promise (it allows a full burst plus the refill
 * within one window); and the log holds at most 61 buckets per key, whatever the request rate.
 *
 * The in-memory store ({@link layerMemory}) follows the `Clock` passed in as `nowMs`, so TestClock drives it.
 * A Redis store (later) implements the same three operations as Lua scripts, each one atomic.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer } from "effect"
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
 * Limits per window for one key; `Infinity` where a budget is not limited.
 *
 * @since 0.1.0
 */
export interface Limits extends Cost {
  readonly windowMs: number
}

/**
 * A recorded reservation, handed back to {@link AdmissionStoreShape.reconcile}.
 *
 * @since 0.1.0
 */
export interface Reservation {
  readonly key: string
  readonly atMs: number
  /** What was reserved (the estimate). */
  readonly reserved: Cost
}

/**
 * The answer of {@link AdmissionStoreShape.tryReserve}.
 *
 * - `Reserved`: every budget allowed the cost and it is recorded.
 * - `Wait`: some budget does not allow it now. `availableAtMs` is the earliest time the window frees
 *   enough (computed from the log, not polled); `slack` is what other requests may still reserve now
 *   without moving that time later (used for backfilling behind a blocked head of line); `free` is what
 *   fits right now. For a call with `within` (a backfill attempt) these three are not computed.
 *
 * @since 0.1.0
 */
export type Decision =
  | { readonly _tag: "Reserved"; readonly reservation: Reservation }
  | { readonly _tag: "Wait"; readonly availableAtMs: number; readonly slack: Cost; readonly free: Cost }

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
 * The store interface. `tryReserve` and `reconcile`, called on every admitted call, answer directly when
 * the store is in the process (no effect to run) and with an `Effect` when it is remote: admission runs
 * what it is given.
 *
 * @since 0.1.0
 */
export interface AdmissionStoreShape {
  /**
   * Atomically: if every budget of `key` allows `cost` at `nowMs` (and, when `within` is given, `cost`
   * fits in it), record the reservation. Otherwise record nothing and say when it could fit.
   */
  readonly tryReserve: (
    key: string,
    limits: Limits,
    cost: Cost,
    nowMs: number,
    within?: Cost | undefined
  ) => Decision | Effect.Effect<Decision>
  /** Replace a reservation's amounts with `actual` (a refund is all zeros). No-op once it left the window. */
  readonly reconcile: (reservation: Reservation, actual: Cost, nowMs: number) => void | Effect.Effect<void>
  /**
   * Move the local budget toward what the provider reported: a lower limit caps the configured one; a
   * `remaining` below the local view adds a debit (usage we cannot see, e.g. other clients on the same key)
   * until `resetAfterMs` (default: one window). A `remaining` at or above the local view clears the debit.
   * The budget never rises above the configured limit, and never above what the local log allows.
   * When the feedback came with the response to `basis`, the provider counted at the moment that request
   * was sent, so it is compared with the local usage recorded at that reservation, not with the usage now
   * (which a window slide or later admissions have moved since).
   */
  readonly correct: (
    key: string,
    limits: Limits,
    corrections: ReadonlyArray<Correction>,
    nowMs: number,
    basis?: Reservation | undefined
  ) => Effect.Effect<void>
  /** What is reserved in the current window (without debits). */
  readonly usage: (key: string, limits: Limits, nowMs: number) => Effect.Effect<Cost>
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
  readonly owner: KeyLog
  readonly bucket: Bucket
  readonly c: Array<number>
  /** The key's usage right after this reservation (per budget, without debits). */
  readonly usedAfter: Array<number>
  constructor(key: string, atMs: number, reserved: Cost, owner: KeyLog, bucket: Bucket, c: Array<number>) {
    this.key = key
    this.atMs = atMs
    this.reserved = reserved
    this.owner = owner
    this.bucket = bucket
    this.c = c
    const u = owner.used
    this.usedAfter = [u[R], u[T], u[I], u[O]]
  }
}

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

  limit(limits: Limits, d: number): number {
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
  const get = (key: string): KeyLog => {
    let k = keys.get(key)
    if (k === undefined) {
      k = new KeyLog()
      keys.set(key, k)
    }
    return k
  }

  const tryReserveUnsafe = (key: string, limits: Limits, cost: Cost, now: number, within?: Cost): Decision => {
    const k = get(key)
    const windowMs = limits.windowMs
    k.expire(windowMs, now)
    const c = toArray(cost)
    const used = k.used
    let fits = true
    for (let d = 0; d < 4; d++) {
      if (c[d] > 0 && used[d] + k.debitAt(d, now) + c[d] > k.limit(limits, d)) {
        fits = false
        break
      }
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
      const bucket = k.add(c, windowMs, now)
      return { _tag: "Reserved", reservation: new Entry(key, now, cost, k, bucket, c) }
    }
    // earliest time every budget allows the cost; each budget's condition is monotone in time
    let at = now
    for (let d = 0; d < 4; d++) {
      const limit = k.limit(limits, d)
      if (c[d] === 0 || used[d] + k.debitAt(d, now) + c[d] <= limit) continue
      let td: number
      if (k.debitAt(d, now) > 0) {
        const withDebit = k.earliest(d, limit - c[d] - k.debit[d], windowMs, now)
        const afterDebit = Math.max(k.earliest(d, limit - c[d], windowMs, now), k.debitUntil[d])
        td = withDebit < k.debitUntil[d] ? Math.min(withDebit, afterDebit) : afterDebit
      } else {
        td = k.earliest(d, limit - c[d], windowMs, now)
      }
      if (td > at) at = td
    }
    // cannot fit under the current (provider-lowered) limit: look again after one window
    if (!Number.isFinite(at)) at = now + windowMs
    if (at <= now) at = now + 1
    // what can still be taken now without delaying this request at `at`
    const freed = [0, 0, 0, 0]
    const log = k.log
    for (let i = 0; i < log.length; i++) {
      const b = log.at(i)
      if (b.lastMs + windowMs > at) break
      freed[R] += b.c[R]
      freed[T] += b.c[T]
      freed[I] += b.c[I]
      freed[O] += b.c[O]
    }
    const slack = [0, 0, 0, 0]
    for (let d = 0; d < 4; d++) {
      slack[d] = k.limit(limits, d) - c[d] - (used[d] - freed[d]) - k.debitAt(d, at)
    }
    const free = [0, 0, 0, 0]
    for (let d = 0; d < 4; d++) free[d] = k.limit(limits, d) - used[d] - k.debitAt(d, now)
    return { _tag: "Wait", availableAtMs: at, slack: toCost(slack), free: toCost(free) }
  }

  const reconcileUnsafe = (reservation: Reservation, actual: Cost): void => {
    if (!(reservation instanceof Entry) || !reservation.bucket.live) return
    const a = toArray(actual)
    const used = reservation.owner.used
    const bucket = reservation.bucket.c
    for (let d = 0; d < 4; d++) {
      const delta = a[d] - reservation.c[d]
      used[d] += delta
      bucket[d] += delta
      reservation.c[d] = a[d]
    }
  }

  const correctUnsafe = (
    key: string,
    limits: Limits,
    corrections: ReadonlyArray<Correction>,
    now: number,
    basis: Reservation | undefined
  ): void => {
    const k = get(key)
    k.expire(limits.windowMs, now)
    const usedThen = basis instanceof Entry && basis.owner === k ? basis.usedAfter : k.used
    for (const correction of corrections) {
      const d = dimIndex[correction.dimension]
      if (correction.limit !== undefined && correction.limit > 0) k.cap[d] = correction.limit
      if (correction.drain === true) {
        // a 429 naming this budget: nothing more until the reset
        k.debit[d] = Infinity
        k.debitUntil[d] = Math.max(k.debitUntil[d], now + (correction.resetAfterMs ?? limits.windowMs))
        continue
      }
      if (correction.remaining === undefined) continue
      const available = k.limit(limits, d) - usedThen[d]
      if (correction.remaining < available) {
        k.debit[d] = available - correction.remaining
        k.debitUntil[d] = now + (correction.resetAfterMs ?? limits.windowMs)
      } else {
        k.debit[d] = 0
        k.debitUntil[d] = 0
      }
    }
  }

  return {
    tryReserve: tryReserveUnsafe,
    reconcile: reconcileUnsafe,
    correct: (key, limits, corrections, nowMs, basis) =>
      Effect.sync(() => correctUnsafe(key, limits, corrections, nowMs, basis)),
    usage: (key, limits, nowMs) =>
      Effect.sync(() => {
        const k = get(key)
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

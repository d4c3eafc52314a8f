/**
 * Admission control: requests-per-minute and tokens-per-minute limits per key (`provider/model`), a priority
 * queue for what does not fit yet, and an optional concurrency cap.
 *
 * A call is admitted only when every budget of its key allows it: requests, tokens (input estimate plus the
 * output cap) and, where configured, separate input- and output-token budgets. The check and the
 * reservation are one atomic {@link AdmissionStore} operation. After the call the reservation is reconciled
 * with the usage the provider reported; a call that fails before reaching the provider (a toolkit rejection,
 * a defect, an interruption) is refunded in full, and every refund admits waiting calls at once.
 *
 * What does not fit waits in a queue:
 * - order: `interactive` before `background`, FIFO within a priority; a background waiter that has waited
 *   `agingMs` ranks with interactive ones by arrival time (no starvation of background work);
 * - head-of-line reservation: when the head cannot fit, nothing behind it may take budget that the head
 *   needs at the earliest time it can fit (computed from the reservation log). Smaller requests behind it
 *   may only backfill from the slack left over at that time (scanning at most `backfillScan` waiters), so a
 *   large request is never starved by small ones: each backfill provably leaves its admission time unchanged;
 * - bounds: `maxQueueLength` per key (`queue-full`), `maxWaitMs` per path (`wait-too-long`), each with a
 *   `retryAfterMs` hint; a request whose estimate exceeds a whole per-window budget fails at once
 *   (`never-admissible`).
 *
 * Waiting is driven by `Clock`: one timer per key sleeps until the earliest moment the window frees enough
 * for the head, or the earliest waiter deadline, whichever comes first. There is no polling. With budget
 * available and an empty queue the reservation is synchronous: no fiber, no `Deferred`, no timer.
 *
 * Provider feedback corrects the local view: a response's {@link RateLimitSnapshot} moves the budget toward
 * the provider's `remaining` until its reset (never above the configured limit), and a 429 that names
 * requests or tokens drains that budget until its reset.
 *
 * Metrics (attribute `key`): `llm_admission_admitted`, `llm_admission_rejected` (attribute `reason`),
 * `llm_admission_queue_depth`, `llm_admission_wait_ms`, `llm_admission_tokens_reserved`,
 * `llm_admission_tokens_actual`.
 *
 * @since 0.1.0
 */
import { Cause, Clock, Context, Effect, Exit, type Fiber, Layer, Metric, Schema, Scope, Stream } from "effect"
import * as AdmissionStore from "./AdmissionStore.ts"
import * as CallReport from "./CallReport.ts"
import * as Attempts from "./internal/attempt.ts"
import { acquire as acquirePermit, Permits } from "./internal/permits.ts"
import { MinHeap } from "./internal/MinHeap.ts"
import { WAITING, type Waiter, WaitQueue } from "./internal/WaitQueue.ts"
import { AdmissionRejected, type AdmissionRejectionReason, isProviderError, type LlmError } from "./LlmError.ts"
import type { LlmProvider } from "./LlmProvider.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse, StreamChunk, Usage } from "./LlmResponse.ts"
import type { RateLimitSnapshot } from "./RateLimitSnapshot.ts"
import type { Attempt, Stage } from "./Stage.ts"
import { TokenEstimator } from "./TokenEstimator.ts"

// ---------------------------------------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------------------------------------

const Positive = Schema.Finite.check(Schema.isGreaterThan(0))
const NonNegative = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * The limits of one key. A budget left out is not limited.
 *
 * @since 0.1.0
 */
export const KeyLimits = Schema.Struct({
  requestsPerMinute: Schema.optional(PositiveInt),
  /** Input plus output tokens (OpenAI's TPM, Anthropic's combined limit). */
  tokensPerMinute: Schema.optional(Positive),
  /** Anthropic's ITPM. */
  inputTokensPerMinute: Schema.optional(Positive),
  /** Anthropic's OTPM, charged with the output cap and reconciled with real output. */
  outputTokensPerMinute: Schema.optional(Positive),
  /** Concurrency cap (bulkhead) for the key. */
  maxConcurrency: Schema.optional(PositiveInt),
  /** Waiters allowed in the bulkhead's own queue. Default 1000. */
  maxConcurrencyQueue: Schema.optional(NonNegativeInt)
})

/**
 * @since 0.1.0
 */
export type KeyLimits = typeof KeyLimits.Type

/**
 * Admission options. Every field is optional except that a key needs limits to be controlled: a key with
 * neither an entry in `keys` nor `defaults` passes through untouched.
 *
 * @since 0.1.0
 */
export const AdmissionOptions = Schema.Struct({
  /** Limits per key (`provider/model`). */
  keys: Schema.optional(Schema.Record(Schema.String, KeyLimits)),
  /** Limits for keys not listed in `keys`. Default: none (unlisted keys pass through). */
  defaults: Schema.optional(KeyLimits),
  /** Length of the rate window; the `...PerMinute` limits apply per window. Default 60000 (one minute). */
  windowMs: Schema.optional(Positive),
  /** Waiters allowed per key before `queue-full`. Default 10000. */
  maxQueueLength: Schema.optional(NonNegativeInt),
  /** Longest wait before `wait-too-long`. Default 60000. */
  maxWaitMs: Schema.optional(NonNegative),
  /** Per-path overrides of `maxWaitMs`, keyed by `request.metadata.path`. */
  paths: Schema.optional(Schema.Record(Schema.String, Schema.Struct({ maxWaitMs: NonNegative }))),
  /** A background waiter older than this ranks with interactive ones by arrival. Default 30000. */
  agingMs: Schema.optional(NonNegative),
  /** Waiters behind a blocked head examined for backfill. Default 16; 0 = strict head-of-line. */
  backfillScan: Schema.optional(NonNegativeInt)
})

/**
 * @since 0.1.0
 */
export type AdmissionOptions = typeof AdmissionOptions.Type

// ---------------------------------------------------------------------------------------------------------
// service
// ---------------------------------------------------------------------------------------------------------

/**
 * What admission knows about one key right now.
 *
 * @since 0.1.0
 */
export interface AdmissionStats {
  readonly key: string
  /** Calls waiting for rate budget. */
  readonly queued: number
  /** Calls waiting for a concurrency permit. */
  readonly concurrencyQueued: number
  /** Free concurrency permits (`Infinity` without a cap). */
  readonly availablePermits: number
  /** Reserved in the current window. */
  readonly reserved: AdmissionStore.Cost
}

/**
 * How a finished call settles its reservation: the usage the provider reported, or `undefined` to keep
 * the estimate. The snapshot, when present, corrects the local budget.
 *
 * @since 0.1.0
 */
export interface Settlement {
  readonly usage?: Usage | undefined
  readonly rateLimit?: RateLimitSnapshot | undefined
}

/**
 * @since 0.1.0
 */
export interface AdmissionShape {
  /**
   * Reserves for `request` under `key`, runs `self`, then settles: with `settle(a)` on success, in full
   * (refund) on interruption or a failure that is not a provider error, keeping the estimate (and reading
   * any 429 or snapshot) on a provider error.
   */
  readonly run: <A, E, R>(
    request: LlmRequest,
    key: string,
    self: Effect.Effect<A, E, R>,
    settle: (a: A) => Settlement
  ) => Effect.Effect<A, E | AdmissionRejected, R>
  /** Like `run` for a stream: settles from the `Finish` chunk's usage, holds any permit until the end. */
  readonly runStream: <E, R>(
    request: LlmRequest,
    key: string,
    self: Stream.Stream<StreamChunk, E, R>
  ) => Stream.Stream<StreamChunk, E | AdmissionRejected, R>
  /** Applies a response's rate-limit snapshot to `key`. */
  readonly observe: (key: string, snapshot: RateLimitSnapshot) => Effect.Effect<void>
  /** Applies what a failure says about `key`'s limits (a 429 drains the budget it names). */
  readonly observeError: (key: string, error: unknown) => Effect.Effect<void>
  readonly stats: (key: string) => Effect.Effect<AdmissionStats>
  /**
   * Admission as a stage ({@link Stage.Stage}): reserves for the attempt's request under its key (at once
   * when nobody waits and the budget allows, else through the queue), then settles with the response's
   * usage. `run` is this stage run alone.
   */
  readonly stage: Stage<unknown>
}

/**
 * The admission service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Admission } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const admission = yield* Admission.Admission
 *   return yield* admission.stats("openai/gpt-5.4-mini")
 * }).pipe(Effect.provide(Admission.layerMemory({ defaults: { requestsPerMinute: 500, tokensPerMinute: 200_000 } })))
 * ```
 * @since 0.1.0
 */
export class Admission extends Context.Service<Admission, AdmissionShape>()("@llm-resilience/core/Admission") {}

/**
 * The key admission uses for a provider and model.
 *
 * @example
 * ```ts
 * import { Admission } from "@llm-resilience/core"
 * Admission.key("openai", "gpt-5.4-mini") // "openai/gpt-5.4-mini"
 * ```
 * @since 0.1.0
 */
export const key = (provider: string, model: string): string => `${provider}/${model}`

// ---------------------------------------------------------------------------------------------------------
// implementation
// ---------------------------------------------------------------------------------------------------------

const ADMITTED = 1
const CANCELLED = 2
const REJECTED = 3
const RELEASED = 4

interface RateWaiter extends Waiter {
  readonly cost: AdmissionStore.Cost
  readonly deadline: number
  resume: ((effect: Effect.Effect<void>) => void) | undefined
  reservation: AdmissionStore.Reservation | undefined
  error: AdmissionRejected | undefined
}

interface KeyMetrics {
  readonly admitted: Metric.Counter<number>
  readonly rejected: Record<AdmissionRejectionReason, Metric.Counter<number>>
  readonly queueDepth: Metric.Gauge<number>
  readonly waitMs: Metric.Histogram<number>
  readonly reserved: Metric.Counter<number>
  readonly actual: Metric.Counter<number>
}

interface KeyState {
  readonly key: string
  readonly limits: AdmissionStore.Limits
  readonly rateLimited: boolean
  readonly permits: Permits | undefined
  readonly queue: WaitQueue<RateWaiter>
  deadlines: MinHeap<RateWaiter>
  draining: boolean
  again: boolean
  timerAt: number
  /** When the head of the queue can fit, as of the last drain (`-Infinity`: unknown). */
  blockedUntil: number
  /** As of the last drain, while the head is blocked: what may be backfilled / what fits now. */
  slack: AdmissionStore.Cost
  free: AdmissionStore.Cost
  readonly metrics: KeyMetrics
}

class Ticket {
  readonly ks: KeyState
  readonly cost: AdmissionStore.Cost
  reservation: AdmissionStore.Reservation | undefined = undefined
  permit = false
  settled = false
  constructor(ks: KeyState, cost: AdmissionStore.Cost) {
    this.ks = ks
    this.cost = cost
  }
}

const admittedOptions = { description: "calls admitted by admission control", incremental: true } as const
const rejectedOptions = { description: "calls rejected by admission control, by reason", incremental: true } as const
const queueDepthOptions = { description: "calls waiting for rate budget" } as const
const waitMsOptions = {
  description: "time from arrival to admission, ms",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 4, count: 12 })
} as const
const reservedOptions = { description: "tokens reserved at admission (estimates)", incremental: true } as const
const actualOptions = { description: "tokens actually used, as reported by the provider", incremental: true } as const

const admittedMetric = Metric.counter("llm_admission_admitted", admittedOptions)
const rejectedMetric = Metric.counter("llm_admission_rejected", rejectedOptions)
const queueDepthMetric = Metric.gauge("llm_admission_queue_depth", queueDepthOptions)
const waitMsMetric = Metric.histogram("llm_admission_wait_ms", waitMsOptions)
const reservedMetric = Metric.counter("llm_admission_tokens_reserved", reservedOptions)
const actualMetric = Metric.counter("llm_admission_tokens_actual", actualOptions)

/**
 * The metrics admission records, each with a `key` attribute (and `reason` for rejections). Read them with
 * `Metric.value(Metric.withAttributes(metric, { key }))` or export them with `PrometheusMetrics`.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { Admission } from "@llm-resilience/core"
 * const depth = Metric.value(Metric.withAttributes(Admission.metrics.queueDepth, { key: "openai/gpt-5.4" }))
 * ```
 * @since 0.1.0
 */
export const metrics = {
  admitted: admittedMetric,
  rejected: rejectedMetric,
  queueDepth: queueDepthMetric,
  waitMs: waitMsMetric,
  tokensReserved: reservedMetric,
  tokensActual: actualMetric
} as const

// Per-key metric objects carry their attributes from construction: `Metric.withAttributes` would rebuild
// the context and the series key on every update (about a microsecond each), which the hot path cannot pay.
const metricsFor = (key: string): KeyMetrics => {
  const attributes = { key }
  const rejected = (reason: AdmissionRejectionReason) =>
    Metric.counter("llm_admission_rejected", { ...rejectedOptions, attributes: { key, reason } })
  return {
    admitted: Metric.counter("llm_admission_admitted", { ...admittedOptions, attributes }),
    rejected: {
      "queue-full": rejected("queue-full"),
      "wait-too-long": rejected("wait-too-long"),
      "never-admissible": rejected("never-admissible"),
      "concurrency-queue-full": rejected("concurrency-queue-full")
    },
    queueDepth: Metric.gauge("llm_admission_queue_depth", { ...queueDepthOptions, attributes }),
    waitMs: Metric.histogram("llm_admission_wait_ms", { ...waitMsOptions, attributes }),
    reserved: Metric.counter("llm_admission_tokens_reserved", { ...reservedOptions, attributes }),
    actual: Metric.counter("llm_admission_tokens_actual", { ...actualOptions, attributes })
  }
}

const ZERO: AdmissionStore.Cost = { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0 }

const usageCost = (u: Usage): AdmissionStore.Cost => ({
  requests: 1,
  tokens: u.inputTokens + u.outputTokens,
  inputTokens: u.inputTokens,
  outputTokens: u.outputTokens
})

const fitsIn = (c: AdmissionStore.Cost, s: AdmissionStore.Cost): boolean =>
  c.requests <= s.requests && c.tokens <= s.tokens && c.inputTokens <= s.inputTokens && c.outputTokens <= s.outputTokens

const minus = (s: AdmissionStore.Cost, c: AdmissionStore.Cost): AdmissionStore.Cost => ({
  requests: s.requests - c.requests,
  tokens: s.tokens - c.tokens,
  inputTokens: s.inputTokens - c.inputTokens,
  outputTokens: s.outputTokens - c.outputTokens
})

const DIMENSIONS: ReadonlyArray<AdmissionStore.Dimension> = ["requests", "tokens", "inputTokens", "outputTokens"]

/** Snapshot windows as store corrections. */
const snapshotCorrections = (snapshot: RateLimitSnapshot): Array<AdmissionStore.Correction> => {
  const out: Array<AdmissionStore.Correction> = []
  for (const d of DIMENSIONS) {
    const w = snapshot[d]
    if (w !== undefined)
      out.push({ dimension: d, limit: w.limit, remaining: w.remaining, resetAfterMs: w.resetAfterMs })
  }
  return out
}

/**
 * Builds the admission service. Needs an {@link AdmissionStore.AdmissionStore} and a `Scope` (for the
 * per-key wake-up timers); fails with a `SchemaError` naming the field when the options are invalid.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Admission, AdmissionStore } from "@llm-resilience/core"
 * const admission = Admission.make({ defaults: { requestsPerMinute: 60 } }).pipe(
 *   Effect.provide(AdmissionStore.layerMemory),
 *   Effect.scoped
 * )
 * ```
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (options: AdmissionOptions) {
  const opts = yield* Schema.decodeUnknownEffect(AdmissionOptions)(options)
  const store = yield* AdmissionStore.AdmissionStore
  /** Whether the store has answered synchronously so far (an in-process store); a remote one is awaited. */
  let storeSync = true
  const tryReserve = (
    key: string,
    limits: AdmissionStore.Limits,
    cost: AdmissionStore.Cost,
    now: number,
    within?: AdmissionStore.Cost
  ): Effect.Effect<AdmissionStore.Decision> => {
    const d = store.tryReserve(key, limits, cost, now, within)
    if (Effect.isEffect(d)) {
      storeSync = false
      return d
    }
    return Effect.succeed(d)
  }
  const reconcile = (r: AdmissionStore.Reservation, actual: AdmissionStore.Cost, now: number) => {
    const done = store.reconcile(r, actual, now)
    return Effect.isEffect(done) ? done : undefined
  }
  const scope = yield* Effect.scope
  const windowMs = opts.windowMs ?? 60_000
  const maxQueueLength = opts.maxQueueLength ?? 10_000
  const defaultMaxWait = opts.maxWaitMs ?? 60_000
  const agingMs = opts.agingMs ?? 30_000
  const backfillScan = opts.backfillScan ?? 16
  const paths = opts.paths ?? {}
  const perKey = opts.keys ?? {}
  const states = new Map<string, KeyState | null>()

  const stateFor = (key: string): KeyState | undefined => {
    let ks = states.get(key)
    if (ks === undefined) {
      const l = Object.hasOwn(perKey, key) ? perKey[key] : opts.defaults
      if (l === undefined) {
        states.set(key, null)
        return undefined
      }
      const limits: AdmissionStore.Limits = {
        windowMs,
        requests: l.requestsPerMinute ?? Infinity,
        tokens: l.tokensPerMinute ?? Infinity,
        inputTokens: l.inputTokensPerMinute ?? Infinity,
        outputTokens: l.outputTokensPerMinute ?? Infinity
      }
      ks = {
        key,
        limits,
        rateLimited:
          l.requestsPerMinute !== undefined ||
          l.tokensPerMinute !== undefined ||
          l.inputTokensPerMinute !== undefined ||
          l.outputTokensPerMinute !== undefined,
        permits:
          l.maxConcurrency === undefined
            ? undefined
            : new Permits(key, l.maxConcurrency, l.maxConcurrencyQueue ?? 1000, agingMs),
        queue: new WaitQueue(agingMs),
        deadlines: new MinHeap(),
        draining: false,
        again: false,
        timerAt: Infinity,
        blockedUntil: -Infinity,
        slack: ZERO,
        free: ZERO,
        metrics: metricsFor(key)
      }
      states.set(key, ks)
    }
    return ks ?? undefined
  }

  const retryHint = (ks: KeyState, now: number): number | undefined =>
    Number.isFinite(ks.blockedUntil) && ks.blockedUntil > now ? ks.blockedUntil - now : undefined

  const reject = (
    ks: KeyState,
    fiber: Fiber.Fiber<unknown, unknown>,
    reason: AdmissionRejectionReason,
    retryAfterMs: number | undefined
  ) => {
    ks.metrics.rejected[reason].updateUnsafe(1, fiber.context)
    return Effect.fail(
      new AdmissionRejected(
        retryAfterMs === undefined ? { key: ks.key, reason } : { key: ks.key, reason, retryAfterMs }
      )
    )
  }

  // -------------------------------------------------------------------------------------------------------
  // the scheduler: admits waiters in order, backfills, rejects expired ones, arms one timer per key
  // -------------------------------------------------------------------------------------------------------

  // Waiters are resumed with `yieldNow`: they continue on the scheduler, after the drain loop, instead of
  // running their call (and its settlement) inside it.
  const admitWaiter = (ks: KeyState, w: RateWaiter, reservation: AdmissionStore.Reservation) => {
    w.state = ADMITTED
    w.reservation = reservation
    ks.queue.removed()
    if (w.resume !== undefined) w.resume(Effect.yieldNow)
  }

  const rejectWaiter = (ks: KeyState, w: RateWaiter, now: number) => {
    w.state = REJECTED
    const retryAfterMs = retryHint(ks, now)
    w.error = new AdmissionRejected(
      retryAfterMs === undefined
        ? { key: ks.key, reason: "wait-too-long" }
        : { key: ks.key, reason: "wait-too-long", retryAfterMs }
    )
    ks.queue.removed()
    if (w.resume !== undefined) w.resume(Effect.yieldNow)
  }

  const drainLoop = Effect.fnUntraced(function* (ks: KeyState) {
    do {
      ks.again = false
      const now = (yield* Clock.Clock).currentTimeMillisUnsafe()
      let blockedAt = Infinity
      while (true) {
        const head = ks.queue.head(now)
        if (head === undefined) break
        const d = yield* tryReserve(ks.key, ks.limits, head.cost, now)
        if (d._tag === "Reserved") {
          admitWaiter(ks, head, d.reservation)
          continue
        }
        blockedAt = d.availableAtMs
        let slack = d.slack
        let free = d.free
        if (backfillScan > 0) {
          const candidates: Array<RateWaiter> = []
          ks.queue.forEach(now, backfillScan + 1, (w) => {
            if (w !== head && fitsIn(w.cost, slack) && fitsIn(w.cost, free)) candidates.push(w)
            return true
          })
          for (const w of candidates) {
            if (w.state !== WAITING || !fitsIn(w.cost, slack) || !fitsIn(w.cost, free)) continue
            const r = yield* tryReserve(ks.key, ks.limits, w.cost, now, slack)
            if (r._tag === "Reserved") {
              admitWaiter(ks, w, r.reservation)
              slack = minus(slack, w.cost)
              free = minus(free, w.cost)
            }
          }
        }
        ks.slack = slack
        ks.free = free
        break
      }
      ks.blockedUntil = blockedAt
      // wait bounds
      const deadlines = ks.deadlines
      while (deadlines.length > 0 && deadlines.peekKey() <= now) {
        const w = deadlines.pop()!
        if (w.state === WAITING) rejectWaiter(ks, w, now)
      }
      while (deadlines.length > 0 && deadlines.peek()!.state !== WAITING) deadlines.pop()
      if (ks.queue.size === 0) {
        ks.deadlines = new MinHeap()
        continue
      }
      yield* armTimer(ks, Math.min(blockedAt, deadlines.peekKey()), now)
    } while (ks.again)
  })

  const armTimer = (ks: KeyState, at: number, now: number): Effect.Effect<void> => {
    if (at >= ks.timerAt) return Effect.void
    ks.timerAt = at
    return Effect.asVoid(
      Effect.forkIn(
        Effect.flatMap(Effect.sleep(Math.max(0, at - now)), () => {
          if (ks.timerAt === at) ks.timerAt = Infinity
          return drain(ks)
        }),
        scope
      )
    )
  }

  const backfillArrival = (ks: KeyState, w: RateWaiter, now: number): Effect.Effect<void> => {
    if (backfillScan > 0 && fitsIn(w.cost, ks.slack) && fitsIn(w.cost, ks.free)) {
      const slack = ks.slack
      const onDecision = (r: AdmissionStore.Decision): Effect.Effect<void> => {
        if (r._tag !== "Reserved") return armTimer(ks, w.deadline, now)
        ks.slack = minus(slack, w.cost)
        ks.free = minus(ks.free, w.cost)
        admitWaiter(ks, w, r.reservation)
        return Effect.void
      }
      return Effect.flatMap(tryReserve(ks.key, ks.limits, w.cost, now, slack), onDecision)
    }
    return armTimer(ks, w.deadline, now)
  }

  const drain = (ks: KeyState): Effect.Effect<void> =>
    Effect.suspend(() => {
      if (ks.draining) {
        ks.again = true
        return Effect.void
      }
      ks.draining = true
      return Effect.ensuring(
        drainLoop(ks),
        Effect.sync(() => {
          ks.draining = false
        })
      )
    })

  // -------------------------------------------------------------------------------------------------------
  // acquire: permit (if capped), then rate budget; synchronous when both are free
  // -------------------------------------------------------------------------------------------------------

  type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

  const enqueue = (
    ks: KeyState,
    ticket: Ticket,
    request: LlmRequest,
    lane: 0 | 1,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>,
    restore: Restore
  ): Effect.Effect<Ticket, AdmissionRejected> => {
    if (ks.queue.size >= maxQueueLength) return reject(ks, fiber, "queue-full", retryHint(ks, now))
    const path = request.metadata?.path
    const maxWait = path !== undefined && Object.hasOwn(paths, path) ? paths[path].maxWaitMs : defaultMaxWait
    const w: RateWaiter = {
      state: WAITING,
      lane,
      enqueuedAt: now,
      cost: ticket.cost,
      deadline: now + maxWait,
      resume: undefined,
      reservation: undefined,
      error: undefined
    }
    const wasEmpty = ks.queue.size === 0
    ks.queue.push(w)
    ks.deadlines.push(w.deadline, w)
    ks.metrics.queueDepth.updateUnsafe(ks.queue.size, fiber.context)
    // Behind a head that is known to be blocked until `blockedUntil`, a new arrival changes nothing for the
    // waiters ahead of it: it may only backfill from the slack left by the last drain (the store re-checks
    // atomically). This keeps an arrival O(1) however long the queue is; a full drain runs only when the
    // arrival becomes the head or the head's status is unknown.
    const settleArrival =
      !wasEmpty && now < ks.blockedUntil && ks.queue.head(now) !== w ? backfillArrival(ks, w, now) : drain(ks)
    const wait = restore(
      Effect.callback<void>((resume) => {
        if (w.state !== WAITING) return resume(Effect.void)
        w.resume = resume
        return Effect.suspend(() => {
          if (w.state !== WAITING) return Effect.void
          w.state = CANCELLED
          ks.queue.removed()
          return drain(ks)
        })
      })
    )
    return settleArrival.pipe(
      Effect.andThen(Effect.suspend(() => (w.state === WAITING ? wait : Effect.void))),
      Effect.onInterrupt(() =>
        Effect.suspend(() => {
          if (w.state !== ADMITTED) return Effect.void
          w.state = RELEASED
          return Effect.andThen(reconcile(w.reservation!, ZERO, now) ?? Effect.void, drain(ks))
        })
      ),
      Effect.flatMap(() =>
        Effect.withFiber((fiber) => {
          const m = ks.metrics
          m.queueDepth.updateUnsafe(ks.queue.size, fiber.context)
          if (w.state === ADMITTED) {
            w.state = RELEASED
            ticket.reservation = w.reservation
            m.admitted.updateUnsafe(1, fiber.context)
            m.reserved.updateUnsafe(ticket.cost.tokens, fiber.context)
            m.waitMs.updateUnsafe(fiber.getRef(Clock.Clock).currentTimeMillisUnsafe() - now, fiber.context)
            return Effect.succeed(ticket)
          }
          m.rejected["wait-too-long"].updateUnsafe(1, fiber.context)
          return Effect.fail(w.error!)
        })
      )
    )
  }

  const reserve = (
    ks: KeyState,
    ticket: Ticket,
    request: LlmRequest,
    lane: 0 | 1,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>,
    restore: Restore
  ): Effect.Effect<Ticket, AdmissionRejected> => {
    if (!ks.rateLimited) {
      ks.metrics.admitted.updateUnsafe(1, fiber.context)
      return Effect.succeed(ticket)
    }
    if (ks.queue.size > 0) return enqueue(ks, ticket, request, lane, now, fiber, restore)
    const onDecision = (d: AdmissionStore.Decision): Effect.Effect<Ticket, AdmissionRejected> => {
      if (d._tag === "Reserved") {
        ticket.reservation = d.reservation
        ks.metrics.admitted.updateUnsafe(1, fiber.context)
        ks.metrics.reserved.updateUnsafe(ticket.cost.tokens, fiber.context)
        ks.metrics.waitMs.updateUnsafe(0, fiber.context)
        return Effect.succeed(ticket)
      }
      ks.blockedUntil = d.availableAtMs
      return enqueue(ks, ticket, request, lane, now, fiber, restore)
    }
    return Effect.flatMap(tryReserve(ks.key, ks.limits, ticket.cost, now), onDecision)
  }

  /** What `request` will reserve: one request and its estimated tokens. */
  const costOf = (request: LlmRequest, fiber: Fiber.Fiber<unknown, unknown>): AdmissionStore.Cost => {
    const estimate = fiber.getRef(TokenEstimator).estimate(request)
    return {
      requests: 1,
      tokens: estimate.inputTokens + estimate.outputTokens,
      inputTokens: estimate.inputTokens,
      outputTokens: estimate.outputTokens
    }
  }

  /** Whether `cost` could ever be admitted: no single budget smaller than it. */
  const fits = (cost: AdmissionStore.Cost, l: AdmissionStore.Limits): boolean =>
    cost.tokens <= l.tokens && cost.inputTokens <= l.inputTokens && cost.outputTokens <= l.outputTokens

  const acquire = (
    ks: KeyState,
    request: LlmRequest,
    fiber: Fiber.Fiber<unknown, unknown>,
    restore: Restore
  ): Effect.Effect<Ticket, AdmissionRejected> => {
    const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    const cost = costOf(request, fiber)
    if (!fits(cost, ks.limits)) return reject(ks, fiber, "never-admissible", undefined)
    const lane = request.metadata?.priority === "background" ? 1 : 0
    const ticket = new Ticket(ks, cost)
    const permits = ks.permits
    if (permits === undefined) return reserve(ks, ticket, request, lane, now, fiber, restore)
    return acquirePermit(permits, lane, now, restore).pipe(
      Effect.tapError(() =>
        Effect.sync(() => ks.metrics.rejected["concurrency-queue-full"].updateUnsafe(1, fiber.context))
      ),
      Effect.flatMap(() => {
        ticket.permit = true
        return Effect.onExit(reserve(ks, ticket, request, lane, now, fiber, restore), (exit) =>
          Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => permits.release(now))
        )
      })
    )
  }

  // -------------------------------------------------------------------------------------------------------
  // settle: reconcile with actual usage, refund, read provider feedback, release the permit
  // -------------------------------------------------------------------------------------------------------

  const correctionsOfError = (ks: KeyState, error: unknown): Array<AdmissionStore.Correction> => {
    if (typeof error !== "object" || error === null || !("_tag" in error)) return []
    const e = error as LlmError
    const snapshot = "rateLimit" in e ? e.rateLimit : undefined
    const out = snapshot !== undefined ? snapshotCorrections(snapshot) : []
    if (e._tag !== "RateLimited") return out
    // a 429 that does not say which limit it hit stops everything: drain the request budget
    const named: Array<AdmissionStore.Dimension> = e.limit === "tokens" ? ["tokens"] : ["requests"]
    if (e.limit === "tokens") {
      if (snapshot?.inputTokens?.remaining === 0) named.push("inputTokens")
      if (snapshot?.outputTokens?.remaining === 0) named.push("outputTokens")
    }
    for (const d of named) {
      out.push({
        dimension: d,
        drain: true,
        resetAfterMs: snapshot?.[d]?.resetAfterMs ?? e.retryAfterMs ?? snapshot?.retryAfterMs ?? ks.limits.windowMs
      })
    }
    return out
  }

  const settleTicket = (
    ticket: Ticket,
    actual: AdmissionStore.Cost | undefined,
    corrections: Array<AdmissionStore.Correction> | undefined
  ): Effect.Effect<void> =>
    Effect.withFiber((fiber) => settleTicketUnsafe(fiber, ticket, actual, corrections) ?? Effect.void)

  /**
   * Settles synchronously what an in-process store allows; returns the rest (a remote store's reconcile, a
   * correction, a drain of the queue) as an effect, or `undefined` when nothing is left to run.
   */
  const settleTicketUnsafe = (
    fiber: Fiber.Fiber<unknown, unknown>,
    ticket: Ticket,
    actual: AdmissionStore.Cost | undefined,
    corrections: Array<AdmissionStore.Correction> | undefined,
    at?: number
  ): Effect.Effect<void> | undefined => {
    if (ticket.settled) return undefined
    ticket.settled = true
    const ks = ticket.ks
    const now = at ?? fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    let effects: Array<Effect.Effect<void>> | undefined
    if (ticket.reservation !== undefined && actual !== undefined) {
      const rest = reconcile(ticket.reservation, actual, now)
      if (rest !== undefined) (effects ??= []).push(rest)
      if (actual !== ZERO) ks.metrics.actual.updateUnsafe(actual.tokens, fiber.context)
    } else if (ticket.reservation !== undefined) {
      ks.metrics.actual.updateUnsafe(ticket.cost.tokens, fiber.context)
    }
    if (corrections !== undefined && corrections.length > 0 && ks.rateLimited) {
      ;(effects ??= []).push(store.correct(ks.key, ks.limits, corrections, now, ticket.reservation))
    }
    if (ticket.permit) {
      ticket.permit = false
      ks.permits!.release(now)
    }
    if (ks.queue.size > 0) (effects ??= []).push(drain(ks))
    return effects === undefined
      ? undefined
      : effects.length === 1
        ? effects[0]
        : Effect.all(effects, { discard: true })
  }

  const releasePermit = (ticket: Ticket): Effect.Effect<void> =>
    Effect.withFiber((fiber) => {
      if (ticket.permit) {
        ticket.permit = false
        ticket.ks.permits!.release(fiber.getRef(Clock.Clock).currentTimeMillisUnsafe())
      }
      return Effect.void
    })

  const settleExit = <A, E>(ticket: Ticket, exit: Exit.Exit<A, E>, settle: (a: A) => Settlement) =>
    Effect.withFiber((fiber) => settleExitUnsafe(fiber, ticket, exit, settle) ?? Effect.void)

  const settleExitUnsafe = <A, E>(
    fiber: Fiber.Fiber<unknown, unknown>,
    ticket: Ticket,
    exit: Exit.Exit<A, E>,
    settle: (a: A) => Settlement,
    at?: number
  ): Effect.Effect<void> | undefined => {
    if (Exit.isSuccess(exit)) {
      const s = settle(exit.value)
      return settleTicketUnsafe(
        fiber,
        ticket,
        s.usage === undefined ? undefined : usageCost(s.usage),
        s.rateLimit === undefined ? undefined : snapshotCorrections(s.rateLimit),
        at
      )
    }
    if (Cause.hasInterrupts(exit.cause)) return settleTicketUnsafe(fiber, ticket, ZERO, undefined, at)
    const found = Cause.findError(exit.cause)
    if (found._tag === "Success" && isProviderError(found.success)) {
      return settleTicketUnsafe(fiber, ticket, undefined, correctionsOfError(ticket.ks, found.success), at)
    }
    return settleTicketUnsafe(fiber, ticket, ZERO, undefined, at)
  }

  /**
   * The happy path, synchronous: nobody waits, a permit (where capped) is free and the in-process store
   * reserves at once. Takes the permit and the reservation and returns the ticket, or takes nothing and
   * returns `undefined` when the call must take the general path (which decides again from scratch).
   */
  const admitNow = (
    ks: KeyState,
    request: LlmRequest,
    fiber: Fiber.Fiber<unknown, unknown>,
    at?: number
  ): Ticket | undefined => {
    if (ks.queue.size > 0 || (ks.rateLimited && !storeSync)) return undefined
    const permits = ks.permits
    if (permits !== undefined && (permits.available <= 0 || permits.queue.size > 0)) return undefined
    const cost = costOf(request, fiber)
    if (!fits(cost, ks.limits)) return undefined
    const ticket = new Ticket(ks, cost)
    const m = ks.metrics
    if (ks.rateLimited) {
      const now = at ?? fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const d = store.tryReserve(ks.key, ks.limits, cost, now)
      if (Effect.isEffect(d)) {
        // a remote store: the queued path awaits it (this effect was only described, never run)
        storeSync = false
        return undefined
      }
      if (d._tag !== "Reserved") return undefined
      ticket.reservation = d.reservation
      m.reserved.updateUnsafe(cost.tokens, fiber.context)
      m.waitMs.updateUnsafe(0, fiber.context)
    }
    if (permits !== undefined) {
      permits.available--
      ticket.permit = true
    }
    m.admitted.updateUnsafe(1, fiber.context)
    return ticket
  }

  /** The general path of an attempt, telling the listener (`CallReport.Events`) how long it waited. */
  const waited = (attempt: Attempt, acquired: Effect.Effect<Ticket, AdmissionRejected>) =>
    Effect.tap(acquired, () =>
      Effect.withFiber((fiber) => {
        const waitedMs = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe() - attempt.startMs
        if (waitedMs > 0) CallReport.emitUnsafe(fiber, () => ({ _tag: "AdmissionWaited", key: attempt.key, waitedMs }))
        return Effect.void
      })
    )

  /** Admission as a stage, settling a success with `settle`. */
  const stageWith = <A>(settle: (a: A) => Settlement): Stage<Ticket | null> => ({
    name: "admission",
    enter: (attempt) => {
      const ks = stateFor(attempt.key)
      if (ks === undefined) return null
      const fiber = attempt.fiber
      // nobody waits and the budget allows: the ticket at once; otherwise the queued path decides from scratch
      return (
        admitNow(ks, attempt.request, fiber) ??
        waited(attempt, acquire(ks, attempt.request, fiber, Effect.interruptible))
      )
    },
    exit: (ticket, exit, attempt) =>
      ticket === null
        ? undefined
        : settleExitUnsafe(
            attempt.fiber,
            ticket,
            exit as Exit.Exit<unknown, unknown> as Exit.Exit<A, unknown>,
            settle,
            attempt.endMs
          )
  })
  const stage = stageWith(settleResponse)

  const run = <A, E, R>(
    request: LlmRequest,
    key: string,
    self: Effect.Effect<A, E, R>,
    settle: (a: A) => Settlement
  ): Effect.Effect<A, E | AdmissionRejected, R> =>
    Attempts.run([settle === settleResponse ? stage : stageWith(settle)], request, key, self)

  const runStream = <E, R>(
    request: LlmRequest,
    key: string,
    self: Stream.Stream<StreamChunk, E, R>
  ): Stream.Stream<StreamChunk, E | AdmissionRejected, R> =>
    Stream.unwrap(
      Effect.withFiber((fiber) => {
        const ks = stateFor(key)
        if (ks === undefined) return Effect.succeed(self)
        return Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(acquire(ks, request, fiber, restore), (ticket) =>
            Effect.flatMap(Effect.scope, (scope) =>
              Effect.as(
                Scope.addFinalizerExit(scope, (exit) =>
                  Effect.andThen(
                    settleExit(ticket, exit as Exit.Exit<void, unknown>, () => ({})),
                    releasePermit(ticket)
                  )
                ),
                Stream.tap(self, (chunk) =>
                  chunk._tag === "Finish"
                    ? settleTicket(
                        ticket,
                        usageCost(chunk.usage),
                        chunk.rateLimit === undefined ? undefined : snapshotCorrections(chunk.rateLimit)
                      )
                    : Effect.void
                )
              )
            )
          )
        )
      })
    )

  const observe = (key: string, snapshot: RateLimitSnapshot): Effect.Effect<void> =>
    Effect.withFiber((fiber) => {
      const ks = stateFor(key)
      if (ks === undefined || !ks.rateLimited) return Effect.void
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      return Effect.andThen(store.correct(key, ks.limits, snapshotCorrections(snapshot), now), drain(ks))
    })

  const observeError = (key: string, error: unknown): Effect.Effect<void> =>
    Effect.withFiber((fiber) => {
      const ks = stateFor(key)
      if (ks === undefined || !ks.rateLimited) return Effect.void
      const corrections = correctionsOfError(ks, error)
      if (corrections.length === 0) return Effect.void
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      return store.correct(key, ks.limits, corrections, now)
    })

  const stats = (key: string): Effect.Effect<AdmissionStats> =>
    Effect.withFiber((fiber) => {
      const ks = stateFor(key)
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const base = {
        key,
        queued: ks?.queue.size ?? 0,
        concurrencyQueued: ks?.permits?.queue.size ?? 0,
        availablePermits: ks?.permits?.available ?? Infinity
      }
      if (ks === undefined || !ks.rateLimited) return Effect.succeed({ ...base, reserved: ZERO })
      return Effect.map(store.usage(key, ks.limits, now), (reserved) => ({ ...base, reserved }))
    })

  return Admission.of({ run, runStream, observe, observeError, stats, stage })
})

/**
 * The admission layer over a given store.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Admission, AdmissionStore } from "@llm-resilience/core"
 * const AdmissionLive = Admission.layer({
 *   keys: { "anthropic/claude-sonnet-4-6": { requestsPerMinute: 50, inputTokensPerMinute: 30_000, outputTokensPerMinute: 8_000 } }
 * }).pipe(Layer.provide(AdmissionStore.layerMemory))
 * ```
 * @since 0.1.0
 */
export const layer = (
  options: AdmissionOptions
): Layer.Layer<Admission, Schema.SchemaError, AdmissionStore.AdmissionStore> => Layer.effect(Admission, make(options))

/**
 * The admission layer with its own in-memory store.
 *
 * @example
 * ```ts
 * import { Admission } from "@llm-resilience/core"
 * const AdmissionLive = Admission.layerMemory({ defaults: { requestsPerMinute: 500, tokensPerMinute: 200_000 } })
 * ```
 * @since 0.1.0
 */
export const layerMemory = (options: AdmissionOptions): Layer.Layer<Admission, Schema.SchemaError> =>
  layer(options).pipe(Layer.provide(AdmissionStore.layerMemory))

// ---------------------------------------------------------------------------------------------------------
// pipeable stages
// ---------------------------------------------------------------------------------------------------------

/**
 * Runs a completion under admission for `key`: waits for (or is refused) budget, runs the call, then
 * reconciles the reservation with `response.usage` and applies `response.rateLimit`.
 *
 * @example
 * ```ts
 * import { Effect, pipe } from "effect"
 * import { Admission, LlmProvider } from "@llm-resilience/core"
 *
 * const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }], maxOutputTokens: 64 }
 * const program = Effect.gen(function*() {
 *   const llm = yield* LlmProvider.LlmProvider
 *   return yield* pipe(llm.complete(request), Admission.admit(request, "openai/gpt-5.4-mini"))
 * })
 * ```
 * @since 0.1.0
 */
export const admit =
  (request: LlmRequest, key: string) =>
  <E, R>(self: Effect.Effect<LlmResponse, E, R>): Effect.Effect<LlmResponse, E | AdmissionRejected, R | Admission> =>
    Effect.flatMap(Admission, (a) => a.run(request, key, self, settleResponse))

const settleResponse = (r: LlmResponse): Settlement => r

/**
 * Runs a stream under admission for `key`; the reservation is reconciled from the `Finish` chunk's usage.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { Admission, LlmProvider } from "@llm-resilience/core"
 *
 * const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }
 * const chunks = Stream.unwrap(Effect.map(LlmProvider.LlmProvider, (llm) => llm.stream(request))).pipe(
 *   Admission.admitStream(request, "openai/gpt-5.4-mini")
 * )
 * ```
 * @since 0.1.0
 */
export const admitStream =
  (request: LlmRequest, key: string) =>
  <E, R>(self: Stream.Stream<StreamChunk, E, R>): Stream.Stream<StreamChunk, E | AdmissionRejected, R | Admission> =>
    Stream.unwrap(Effect.map(Admission, (a) => a.runStream(request, key, self)))

/**
 * Wraps a provider so that every call goes through admission under `provider.name/request.model`.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Admission, LlmProvider } from "@llm-resilience/core"
 *
 * const Admitted = Layer.effect(
 *   LlmProvider.LlmProvider,
 *   Effect.flatMap(LlmProvider.LlmProvider, Admission.wrapProvider)
 * )
 * ```
 * @since 0.1.0
 */
export const wrapProvider = (
  provider: LlmProvider["Service"]
): Effect.Effect<LlmProvider["Service"], never, Admission> =>
  Effect.map(Admission, (a) => ({
    name: provider.name,
    complete: (request) =>
      a.run(request, key(provider.name, request.model), provider.complete(request), settleResponse),
    stream: (request) => a.runStream(request, key(provider.name, request.model), provider.stream(request))
  }))

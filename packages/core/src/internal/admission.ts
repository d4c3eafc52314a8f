/**
 * The admission scheduler: per-key state, the queue with head-of-line reservation and backfill, one wake-up
 * timer per key, and settlement (reconcile, refund, provider feedback). `Admission` (Admission.ts) is its
 * public face; everything here is reached through its one stage, as the breaker's state machine is
 * reached through `internal/circuit.ts`.
 *
 * One module, longer than most: the scheduler is one closure over a key's state, and its parts (admit now,
 * enqueue, drain, settle) each read and update the same per-key queue, timer and budget view.
 *
 * @internal
 */
import { Cause, Clock, Effect, Exit, type Fiber, Metric, type Scope, type Stream } from "effect"
import type { AdmissionOptions, AdmissionShape, AdmissionStats, GroupLimits, Settlement } from "../Admission.ts"
import * as AdmissionStore from "../AdmissionStore.ts"
import { AdmissionRejected, type AdmissionRejectionReason, isProviderError, type LlmError } from "../LlmError.ts"
import type { LlmRequest } from "../LlmRequest.ts"
import type { LlmResponse, StreamChunk, Usage } from "../LlmResponse.ts"
import type { RateLimitSnapshot } from "../RateLimitSnapshot.ts"
import * as CallReport from "../CallReport.ts"
import type { Attempt, Stage } from "../Stage.ts"
import { TokenEstimator } from "../TokenEstimator.ts"
import * as Attempts from "./attempt.ts"
import { MinHeap } from "./MinHeap.ts"
import { acquire as acquirePermit, Permits } from "./permits.ts"
import { WAITING, type Waiter, WaitQueue } from "./WaitQueue.ts"

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

/** The metrics without attributes (`Admission.metrics`); each key records into its own series (`metricsFor`). */
export const metrics = {
  admitted: Metric.counter("llm_admission_admitted", admittedOptions),
  rejected: Metric.counter("llm_admission_rejected", rejectedOptions),
  queueDepth: Metric.gauge("llm_admission_queue_depth", queueDepthOptions),
  waitMs: Metric.histogram("llm_admission_wait_ms", waitMsOptions),
  tokensReserved: Metric.counter("llm_admission_tokens_reserved", reservedOptions),
  tokensActual: Metric.counter("llm_admission_tokens_actual", actualOptions)
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
      "concurrency-queue-full": rejected("concurrency-queue-full"),
      "store-unavailable": rejected("store-unavailable")
    },
    queueDepth: Metric.gauge("llm_admission_queue_depth", { ...queueDepthOptions, attributes }),
    waitMs: Metric.histogram("llm_admission_wait_ms", { ...waitMsOptions, attributes }),
    reserved: Metric.counter("llm_admission_tokens_reserved", { ...reservedOptions, attributes }),
    actual: Metric.counter("llm_admission_tokens_actual", { ...actualOptions, attributes })
  }
}

const ZERO: AdmissionStore.Cost = { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0 }
const NONE: ReadonlyArray<AdmissionStore.Correction> = []

const usageCost = (u: Usage): AdmissionStore.Cost => ({
  requests: 1,
  tokens: u.inputTokens + u.outputTokens,
  inputTokens: u.inputTokens,
  outputTokens: u.outputTokens
})

const fitsOne = (cost: AdmissionStore.Cost, l: AdmissionStore.Cost): boolean =>
  cost.tokens <= l.tokens && cost.inputTokens <= l.inputTokens && cost.outputTokens <= l.outputTokens

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

/** The per-window limits of configured per-minute limits (`Infinity` where not limited). */
const perMinute = (l: GroupLimits): AdmissionStore.Cost => ({
  requests: l.requestsPerMinute ?? Infinity,
  tokens: l.tokensPerMinute ?? Infinity,
  inputTokens: l.inputTokensPerMinute ?? Infinity,
  outputTokens: l.outputTokensPerMinute ?? Infinity
})

/** A response's settlement; a stream that ended without a `Finish` chunk keeps its estimate. */
export const settleResponse = (r: LlmResponse | undefined): Settlement => r ?? {}

/** Builds the scheduler of decoded `opts` over `store`, its timers forked in `scope`. */
export const make = (
  opts: AdmissionOptions,
  store: AdmissionStore.AdmissionStoreShape,
  scope: Scope.Scope
): AdmissionShape => {
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
  const settleStore = (
    r: AdmissionStore.Reservation,
    actual: AdmissionStore.Cost | undefined,
    corrections: ReadonlyArray<AdmissionStore.Correction>,
    now: number
  ) => {
    const done = store.settle(r, actual, corrections, now)
    return Effect.isEffect(done) ? done : undefined
  }
  const windowMs = opts.windowMs ?? 60_000
  const maxQueueLength = opts.maxQueueLength ?? 10_000
  const defaultMaxWait = opts.maxWaitMs ?? 60_000
  const agingMs = opts.agingMs ?? 30_000
  const backfillScan = opts.backfillScan ?? 16
  const paths = opts.paths ?? {}
  const perKey = opts.keys ?? {}
  const limitGroups = opts.limitGroups ?? {}
  const states = new Map<string, KeyState>()

  const stateFor = (key: string): KeyState | undefined => {
    let ks = states.get(key)
    if (ks === undefined) {
      const l = Object.hasOwn(perKey, key) ? perKey[key] : opts.defaults
      // a key without limits keeps no state: the caller chooses the model string
      if (l === undefined) return undefined
      const groups = (l.groups ?? []).map((name) => ({ name, ...perMinute(limitGroups[name]) }))
      const limits: AdmissionStore.Limits = {
        windowMs,
        ...perMinute(l),
        groups: groups.length === 0 ? undefined : groups
      }
      ks = {
        key,
        limits,
        rateLimited:
          groups.length > 0 ||
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
    return ks
  }

  const sharesGroup = (a: KeyState, b: KeyState): boolean =>
    a.limits.groups !== undefined && a.limits.groups.some((g) => b.limits.groups!.some((h) => h.name === g.name))

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

  const rejectWaiter = (
    ks: KeyState,
    w: RateWaiter,
    now: number,
    reason: "wait-too-long" | "store-unavailable" = "wait-too-long"
  ) => {
    w.state = REJECTED
    const retryAfterMs = reason === "wait-too-long" ? retryHint(ks, now) : undefined
    w.error = new AdmissionRejected(
      retryAfterMs === undefined ? { key: ks.key, reason } : { key: ks.key, reason, retryAfterMs }
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
        if (d._tag === "Unavailable") {
          rejectWaiter(ks, head, now, "store-unavailable")
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

  const enqueue = (
    ks: KeyState,
    ticket: Ticket,
    request: LlmRequest,
    lane: 0 | 1,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>
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
    const wait = Effect.interruptible(
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
          return Effect.andThen(settleStore(w.reservation!, ZERO, NONE, now) ?? Effect.void, drain(ks))
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
          m.rejected[w.error!.reason].updateUnsafe(1, fiber.context)
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
    fiber: Fiber.Fiber<unknown, unknown>
  ): Effect.Effect<Ticket, AdmissionRejected> => {
    if (!ks.rateLimited) {
      ks.metrics.admitted.updateUnsafe(1, fiber.context)
      return Effect.succeed(ticket)
    }
    if (ks.queue.size > 0) return enqueue(ks, ticket, request, lane, now, fiber)
    const onDecision = (d: AdmissionStore.Decision): Effect.Effect<Ticket, AdmissionRejected> => {
      if (d._tag === "Reserved") {
        ticket.reservation = d.reservation
        ks.metrics.admitted.updateUnsafe(1, fiber.context)
        ks.metrics.reserved.updateUnsafe(ticket.cost.tokens, fiber.context)
        ks.metrics.waitMs.updateUnsafe(0, fiber.context)
        return Effect.succeed(ticket)
      }
      if (d._tag === "Unavailable") return reject(ks, fiber, "store-unavailable", undefined)
      ks.blockedUntil = d.availableAtMs
      return enqueue(ks, ticket, request, lane, now, fiber)
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
    fitsOne(cost, l) && (l.groups === undefined || l.groups.every((g) => fitsOne(cost, g)))

  const acquire = (
    ks: KeyState,
    request: LlmRequest,
    fiber: Fiber.Fiber<unknown, unknown>
  ): Effect.Effect<Ticket, AdmissionRejected> => {
    const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    const cost = costOf(request, fiber)
    if (!fits(cost, ks.limits)) return reject(ks, fiber, "never-admissible", undefined)
    const lane = request.metadata?.priority === "background" ? 1 : 0
    const ticket = new Ticket(ks, cost)
    const permits = ks.permits
    if (permits === undefined) return reserve(ks, ticket, request, lane, now, fiber)
    return acquirePermit(permits, lane, now, Effect.interruptible).pipe(
      Effect.tapError(() =>
        Effect.sync(() => ks.metrics.rejected["concurrency-queue-full"].updateUnsafe(1, fiber.context))
      ),
      Effect.flatMap(() => {
        ticket.permit = true
        return Effect.onExit(reserve(ks, ticket, request, lane, now, fiber), (exit) =>
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
    if (ticket.reservation !== undefined) {
      // one store operation settles the usage and applies the feedback
      if (actual !== undefined || (corrections !== undefined && corrections.length > 0)) {
        const rest = settleStore(ticket.reservation, actual, corrections ?? NONE, now)
        if (rest !== undefined) (effects ??= []).push(rest)
      }
      if (actual !== ZERO) ks.metrics.actual.updateUnsafe((actual ?? ticket.cost).tokens, fiber.context)
    } else if (corrections !== undefined && corrections.length > 0 && ks.rateLimited) {
      ;(effects ??= []).push(store.correct(ks.key, ks.limits, corrections, now))
    }
    if (ticket.permit) {
      ticket.permit = false
      ks.permits!.release(now)
    }
    if (ks.queue.size > 0) (effects ??= []).push(drain(ks))
    // budget freed in a group may admit the waiters of the other keys in it
    if (ks.limits.groups !== undefined) {
      for (const peer of states.values()) {
        if (peer !== ks && peer.queue.size > 0 && sharesGroup(peer, ks)) (effects ??= []).push(drain(peer))
      }
    }
    return effects === undefined
      ? undefined
      : effects.length === 1
        ? effects[0]
        : Effect.all(effects, { discard: true })
  }

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

  /** The queued path of an attempt, telling the listener (`CallReport.Events`) how long it waited. */
  const waited = <T>(attempt: Attempt, acquired: Effect.Effect<T, AdmissionRejected>) =>
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
      return admitNow(ks, attempt.request, fiber) ?? waited(attempt, acquire(ks, attempt.request, fiber))
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

  // `run` and `runStream` are the stage run alone: one admission path for completions, streams and `Resilience`
  const run = <A, E, R>(
    request: LlmRequest,
    key: string,
    self: Effect.Effect<A, E, R>,
    settle: (a: A) => Settlement
  ): Effect.Effect<A, E | AdmissionRejected, R> =>
    Attempts.run([(settle as unknown) === settleResponse ? stage : stageWith(settle)], request, key, self)

  const runStream = <E, R>(
    request: LlmRequest,
    key: string,
    self: Stream.Stream<StreamChunk, E, R>
  ): Stream.Stream<StreamChunk, E | AdmissionRejected, R> =>
    Attempts.runStream([stage], request, key, self) as Stream.Stream<StreamChunk, E | AdmissionRejected, R>

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

  return { run, runStream, observe, observeError, stats, stage }
}

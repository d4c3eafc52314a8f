/**
 * Admission's queue scheduler: admits waiters in order with head-of-line reservation, backfills smaller
 * waiters from the slack the head leaves, rejects expired ones, and arms one wake-up timer per key at the
 * earliest moment the window frees enough (or a waiter's deadline). Arrivals enqueue through it.
 *
 * @internal
 */
import { Clock, Effect, type Fiber, type Scope } from "effect"
import type * as AdmissionStore from "../AdmissionStore.ts"
import { AdmissionRejected } from "../LlmError.ts"
import type { LlmRequest } from "../LlmRequest.ts"
import {
  ADMITTED,
  CANCELLED,
  fitsIn,
  type KeyState,
  minus,
  NONE,
  type RateWaiter,
  REJECTED,
  reject,
  RELEASED,
  retryHint,
  type Ticket,
  ZERO
} from "./admissionKeys.ts"
import { MinHeap } from "./MinHeap.ts"
import { WAITING } from "./WaitQueue.ts"

/** The store operations the scheduler runs (already lifted to effects by admission). */
export interface QueueStore {
  readonly tryReserve: (
    key: string,
    limits: AdmissionStore.Limits,
    cost: AdmissionStore.Cost,
    now: number,
    within?: AdmissionStore.Cost
  ) => Effect.Effect<AdmissionStore.Decision>
  readonly settle: (
    r: AdmissionStore.Reservation,
    actual: AdmissionStore.Cost | undefined,
    corrections: ReadonlyArray<AdmissionStore.Correction>,
    now: number
  ) => Effect.Effect<void> | undefined
}

/** The queue's bounds. */
export interface QueueOptions {
  readonly maxQueueLength: number
  readonly defaultMaxWait: number
  readonly backfillScan: number
  readonly paths: Readonly<Record<string, { readonly maxWaitMs: number }>>
}

/** The scheduler over `store`, its timers forked in `scope`. */
export const makeQueue = (store: QueueStore, options: QueueOptions, scope: Scope.Scope) => {
  const { backfillScan, defaultMaxWait, maxQueueLength, paths } = options
  const tryReserve = store.tryReserve
  const settleStore = store.settle

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
  // enqueue: an arrival that does not fit waits, or backfills behind a blocked head
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

  /**
   * Makes every key of `keys` with waiters decide again from the store's current answers (the store switched,
   * `AdmissionStoreShape.onSwitch`). It runs in whichever call noticed the switch, so the drains are forked.
   */
  const reexamine = (keys: Iterable<KeyState>): Effect.Effect<void> => {
    const drains: Array<Effect.Effect<void>> = []
    for (const ks of keys) {
      if (ks.queue.size === 0) continue
      // what the last drain learnt from the store no longer holds
      ks.blockedUntil = -Infinity
      ks.slack = ZERO
      ks.free = ZERO
      drains.push(drain(ks))
    }
    return drains.length === 0
      ? Effect.void
      : Effect.asVoid(Effect.forkIn(Effect.all(drains, { discard: true }), scope))
  }

  return { drain, enqueue, reexamine }
}

/**
 * The admission scheduler: per-key state, the way in (at once, or through the queue of
 * `admissionQueue.ts`), and settlement (reconcile, refund, provider feedback). `Admission` (Admission.ts) is
 * its public face; everything here is reached through its one stage, as the breaker's state machine is
 * reached through `internal/circuit.ts`. The per-key state and its helpers are in `admissionKeys.ts`.
 *
 * @internal
 */
import { Cause, Clock, Effect, Exit, type Fiber, type Scope, type Stream } from "effect"
import type { AdmissionOptions, AdmissionShape, AdmissionStats, Settlement } from "../Admission.ts"
import type * as AdmissionStore from "../AdmissionStore.ts"
import { type AdmissionRejected, isProviderError } from "../LlmError.ts"
import type { LlmRequest } from "../LlmRequest.ts"
import type { StreamChunk } from "../LlmResponse.ts"
import type { RateLimitSnapshot } from "../RateLimitSnapshot.ts"
import * as CallReport from "../CallReport.ts"
import type { Attempt, Stage } from "../Stage.ts"
import { TokenEstimator } from "../TokenEstimator.ts"
import {
  correctionsOfError,
  fitsOne,
  type KeyState,
  metricsFor,
  NONE,
  perMinute,
  reject,
  settleResponse,
  snapshotCorrections,
  Ticket,
  usageCost,
  ZERO
} from "./admissionKeys.ts"
import { makeQueue } from "./admissionQueue.ts"
import * as Attempts from "./attempt.ts"
import { MinHeap } from "./MinHeap.ts"
import { acquire as acquirePermit, Permits } from "./permits.ts"
import { WaitQueue } from "./WaitQueue.ts"

export { metrics, settleResponse } from "./admissionKeys.ts"

/** Whether an attempt got past every stage to the provider call (an attempt of another kind: assume so). */
const reachedProvider = (attempt: Attempt): boolean =>
  !(attempt instanceof Attempts.Run) || attempt.entered === attempt.stages.length

/**
 * Builds the scheduler of decoded `opts` over `store`, its timers forked in `scope`; `reexamine` makes every
 * key with waiters decide again from the store's current answers (for `AdmissionStoreShape.onSwitch`).
 */
export const make = (
  opts: AdmissionOptions,
  store: AdmissionStore.AdmissionStoreShape,
  scope: Scope.Scope
): { readonly admission: AdmissionShape; readonly reexamine: Effect.Effect<void> } => {
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

  const {
    drain,
    enqueue,
    reexamine: reexamineAll
  } = makeQueue({ tryReserve, settle: settleStore }, { maxQueueLength, defaultMaxWait, backfillScan, paths }, scope)

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

  /**
   * Settles an attempt's exit: a success with its reported usage; a provider error (a timeout is one) keeps
   * the estimate, since the provider counted the request; a refund (all zeros) for a call the provider never
   * saw: one that a stage inside admission refused or that was interrupted before the provider was called
   * (`sent` false), or one that failed with a toolkit error (a refusal, not the provider's answer). A call
   * interrupted or dying once the provider call had started keeps its estimate: the request may have
   * arrived, and nothing says what it used.
   */
  const settleExitUnsafe = <A, E>(
    fiber: Fiber.Fiber<unknown, unknown>,
    ticket: Ticket,
    exit: Exit.Exit<A, E>,
    settle: (a: A) => Settlement,
    sent: boolean,
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
    const found = Cause.findError(exit.cause)
    if (found._tag === "Success" && isProviderError(found.success)) {
      return settleTicketUnsafe(fiber, ticket, undefined, correctionsOfError(ticket.ks, found.success), at)
    }
    const refund = !sent || (found._tag === "Success" && !Cause.hasInterrupts(exit.cause))
    return settleTicketUnsafe(fiber, ticket, refund ? ZERO : undefined, undefined, at)
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
            reachedProvider(attempt),
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

  const reexamine = Effect.suspend(() => reexamineAll(states.values()))
  return { admission: { run, runStream, observe, observeError, stats, stage }, reexamine }
}

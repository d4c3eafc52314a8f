/**
 * The failure policy of a shared admission store: a store outside the process (the Redis store of
 * `@llm-resilience/redis`) that every instance of a service reserves in, and what each instance does while
 * it cannot reach it.
 *
 * - `local`: the instance admits on its own, from an in-process store ({@link AdmissionStore.makeMemory}),
 *   **its share** of every limit: `limit / instances` (requests rounded down, at least one). The local log
 *   also holds a copy of every reservation the instance made in the shared store (taken when the shared
 *   store answered, settled with it), so the share counts what the instance took in the window before the
 *   switch: in any window, the calls an instance admits (shared and local together) exceed its share only
 *   by what the shared store admitted before the switch, and every call admitted locally is admitted when
 *   the window ending at it holds fewer than its share. A local decision is taken, and recorded, at the
 *   moment it is made (after the failed attempt), not when the caller asked.
 * - `reject`: a call that needs a reservation is refused (`Unavailable`).
 *
 * Settlements follow their reservations: one made locally is settled locally; one made in the shared
 * store is settled there (what cannot be settled there counts its estimate until it leaves the window).
 * Each switch, to the fallback and back, is announced to the listeners of
 * {@link AdmissionStore.AdmissionStoreShape.onSwitch}: admission re-examines its waiters, which were
 * parked on answers of the other store. Nothing moves the other way: reservations made locally are not
 * written to the shared store when it returns, so for up to one window after it does, the instances can
 * together admit more than the shared limit.
 *
 * How long an operation may take, how often a failing store is tried again and what is logged is the
 * `guard`'s business (the Redis stores share one).
 *
 * @since 0.1.0
 */
import { Clock, Effect } from "effect"
import * as AdmissionStore from "./AdmissionStore.ts"

type Shape = AdmissionStore.AdmissionStoreShape

/**
 * The shared store's operations, each an effect that fails when the store cannot answer.
 *
 * @since 0.1.0
 */
export interface Remote {
  readonly tryReserve: (...args: Parameters<Shape["tryReserve"]>) => Effect.Effect<AdmissionStore.Decision, unknown>
  readonly settle: (...args: Parameters<Shape["settle"]>) => Effect.Effect<void, unknown>
  readonly correct: (...args: Parameters<Shape["correct"]>) => Effect.Effect<void, unknown>
  readonly usage: (...args: Parameters<Shape["usage"]>) => Effect.Effect<AdmissionStore.Cost, unknown>
}

/**
 * The policy and how it runs a shared operation: `guard(op, fallback)` runs `op`, or `fallback` when `op`
 * fails (or takes too long, or the store is known to be failing).
 *
 * @since 0.1.0
 */
export interface Options {
  readonly onFailure: "local" | "reject"
  readonly instances: number
  readonly guard: <A, E>(op: Effect.Effect<A, E>, fallback: () => Effect.Effect<A>) => Effect.Effect<A>
}

/** A reservation made in the shared store, with its copy in the local log. */
class Shared implements AdmissionStore.Reservation {
  readonly remote: AdmissionStore.Reservation
  readonly copy: AdmissionStore.Reservation | undefined
  constructor(remote: AdmissionStore.Reservation, copy: AdmissionStore.Reservation | undefined) {
    this.remote = remote
    this.copy = copy
  }
  get key() {
    return this.remote.key
  }
  get atMs() {
    return this.remote.atMs
  }
  get reserved() {
    return this.remote.reserved
  }
  get limits() {
    return this.remote.limits
  }
}

const NONE = { requests: Infinity, tokens: Infinity, inputTokens: Infinity, outputTokens: Infinity }

/**
 * The store that admits through `remote` and, while it fails, by `options.onFailure`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AdmissionFallback, AdmissionStore } from "@llm-resilience/core"
 *
 * // a stand-in for a remote store: an in-process one behind effects
 * const inner = AdmissionStore.makeMemory()
 * const lift = <A>(a: A | Effect.Effect<A>) => (Effect.isEffect(a) ? a : Effect.succeed(a))
 * const store = AdmissionFallback.make(
 *   {
 *     tryReserve: (key, limits, cost, nowMs, within) => lift(inner.tryReserve(key, limits, cost, nowMs, within)),
 *     settle: (r, actual, corrections, nowMs) => lift(inner.settle(r, actual, corrections, nowMs)),
 *     correct: inner.correct,
 *     usage: inner.usage
 *   },
 *   { onFailure: "local", instances: 4, guard: (op, fallback) => Effect.catch(op, () => fallback()) }
 * )
 * ```
 * @since 0.1.0
 */
export const make = (remote: Remote, options: Options): AdmissionStore.AdmissionStoreShape => {
  const { guard, instances } = options
  const local = options.onFailure === "local"
  const fallback = AdmissionStore.makeMemory()

  // the limits a copy is recorded under: none, in the same window and groups
  const unlimited = new WeakMap<AdmissionStore.Limits, AdmissionStore.Limits>()
  const unlimitedOf = (limits: AdmissionStore.Limits): AdmissionStore.Limits => {
    let u = unlimited.get(limits)
    if (u === undefined) {
      u = { windowMs: limits.windowMs, ...NONE, groups: limits.groups?.map((g) => ({ name: g.name, ...NONE })) }
      unlimited.set(limits, u)
    }
    return u
  }

  let shared = true
  const listeners = new Set<Effect.Effect<void>>()
  const switched = (toShared: boolean): Effect.Effect<void> => {
    if (shared === toShared) return Effect.void
    shared = toShared
    return listeners.size === 0 ? Effect.void : Effect.all([...listeners], { discard: true })
  }
  /** The shared answer, or else the policy's, given at the time it is given (`op` may have taken a while). */
  const guarded = <A>(op: Effect.Effect<A, unknown>, orElse: (nowMs: number) => A | Effect.Effect<A>) =>
    guard(
      Effect.tap(op, () => switched(true)),
      () =>
        Effect.andThen(
          switched(false),
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            const a = orElse(now)
            return Effect.isEffect(a) ? a : Effect.succeed(a)
          })
        )
    )

  const tryReserve: Shape["tryReserve"] = (key, limits, cost, nowMs, within) => {
    const reserved = (d: AdmissionStore.Decision, now: number): AdmissionStore.Decision => {
      if (d._tag !== "Reserved") return d
      // the copy is taken when the shared store answered, as a local reservation would be
      let copy: AdmissionStore.Reservation | undefined
      if (local) {
        const c = fallback.tryReserve(key, unlimitedOf(limits), cost, now) as AdmissionStore.Decision
        if (c._tag === "Reserved") copy = c.reservation
      }
      return { _tag: "Reserved", reservation: new Shared(d.reservation, copy) }
    }
    const op = Effect.flatMap(remote.tryReserve(key, limits, cost, nowMs, within), (d) =>
      Effect.map(Clock.currentTimeMillis, (now) => reserved(d, Math.max(now, nowMs)))
    )
    return guarded(op, (now): AdmissionStore.Decision =>
      local
        ? (fallback.tryReserve(
            key,
            AdmissionStore.share(limits, instances),
            cost,
            Math.max(now, nowMs),
            within
          ) as AdmissionStore.Decision)
        : { _tag: "Unavailable" }
    )
  }

  const settle: Shape["settle"] = (reservation, actual, corrections, nowMs) => {
    // a reservation made locally is settled where it was made
    if (!(reservation instanceof Shared)) return fallback.settle(reservation, actual, corrections, nowMs)
    if (reservation.copy !== undefined && actual !== undefined) fallback.settle(reservation.copy, actual, [], nowMs)
    // what cannot be settled in the shared store keeps counting its estimate there until it leaves the window
    return guarded(remote.settle(reservation.remote, actual, corrections, nowMs), () => undefined)
  }

  return {
    tryReserve,
    settle,
    correct: (key, limits, corrections, nowMs) =>
      guarded(remote.correct(key, limits, corrections, nowMs), (now) =>
        fallback.correct(key, AdmissionStore.share(limits, instances), corrections, Math.max(now, nowMs))
      ),
    usage: (key, limits, nowMs) =>
      guarded(remote.usage(key, limits, nowMs), (now) =>
        fallback.usage(key, AdmissionStore.share(limits, instances), Math.max(now, nowMs))
      ),
    onSwitch: (listener) =>
      Effect.acquireRelease(
        Effect.sync(() => listeners.add(listener)),
        () => Effect.sync(() => listeners.delete(listener))
      )
  }
}

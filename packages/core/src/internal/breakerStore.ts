/**
 * Breaker state shared between instances: the contract of a store and its in-process implementation.
 *
 * Each instance keeps its own circuit per key and decides from its own counts when to open; the store
 * holds the transitions: an opening (`trip`), the lease of each half-open probe (`enter`) and the result
 * of each probe (`probeDone`), so that every instance rejects while the circuit is open, at most
 * `probes` probes run in total, and a close is seen everywhere. Every operation is one atomic step.
 *
 * @internal
 */
import type { Effect } from "effect"

/** What a shared store needs of the breaker's policy. @internal */
export interface SharedPolicy {
  readonly probes: number
  readonly probeTimeoutMs: number
  readonly maxRetryAfterMs: number
  /** The n-th consecutive opening lasts `openDurationsMs[min(n, length) - 1]`. */
  readonly openDurationsMs: ReadonlyArray<number>
}

/**
 * The store's answer before a call: run it (`Closed`), run it as a probe under `lease` (`Probe`), reject
 * it (`Open`, also while half-open with every probe leased), or decide alone (`Local`: the store is
 * unavailable and its failure policy says so).
 *
 * @internal
 */
export type Verdict =
  | { readonly _tag: "Closed" }
  | { readonly _tag: "Probe"; readonly lease: string }
  | { readonly _tag: "Open"; readonly retryAfterMs: number; readonly openings: number; readonly halfOpen: boolean }
  | { readonly _tag: "Local" }

/** The shared state after a probe's result. @internal */
export type SharedState = "Closed" | "Open" | "HalfOpen" | "Local"

/** @internal */
export type ProbeResult = "success" | "failure" | "ignored"

/** @internal */
export interface Store {
  readonly enter: (key: string, policy: SharedPolicy, nowMs: number) => Verdict | Effect.Effect<Verdict>
  /** This instance opened its circuit for `key`: open the shared one unless it is already open or half-open. */
  readonly trip: (
    key: string,
    policy: SharedPolicy,
    retryAfterMs: number | undefined,
    nowMs: number
  ) => void | Effect.Effect<void>
  readonly probeDone: (
    key: string,
    lease: string,
    result: ProbeResult,
    policy: SharedPolicy,
    retryAfterMs: number | undefined,
    nowMs: number
  ) => SharedState | Effect.Effect<SharedState>
}

interface Entry {
  /** 0 closed, 1 open, 2 half-open */
  state: 0 | 1 | 2
  until: number
  openings: number
  lastOpenFor: number
  resetAt: number
  successes: number
  readonly leases: Map<string, number>
}

/** The length of the `openings`-th opening, lengthened by a Retry-After. @internal */
export const openFor = (policy: SharedPolicy, openings: number, retryAfterMs: number | undefined): number => {
  const durations = policy.openDurationsMs
  const base = durations[Math.min(openings, durations.length) - 1]
  return Math.max(base, Math.min(retryAfterMs ?? 0, policy.maxRetryAfterMs))
}

/**
 * An in-process store: breakers of one process that share it behave as instances sharing Redis.
 *
 * @internal
 */
export const memoryStore = (): Store => {
  const entries = new Map<string, Entry>()
  let leaseSeq = 0
  const open = (e: Entry, policy: SharedPolicy, openings: number, retryAfterMs: number | undefined, now: number) => {
    const ms = openFor(policy, openings, retryAfterMs)
    e.state = 1
    e.until = now + ms
    e.openings = openings
    e.lastOpenFor = ms
    e.successes = 0
    e.leases.clear()
  }
  const sweep = (now: number) => {
    if (entries.size < 1024) return
    for (const [k, e] of entries) if (e.state === 0 && e.resetAt <= now) entries.delete(k)
  }
  return {
    enter: (key, policy, now) => {
      const e = entries.get(key)
      if (e === undefined || e.state === 0) return { _tag: "Closed" }
      if (e.state === 1) {
        if (now < e.until) return { _tag: "Open", retryAfterMs: e.until - now, openings: e.openings, halfOpen: false }
        e.state = 2
        e.successes = 0
        e.leases.clear()
      }
      let earliest = Number.POSITIVE_INFINITY
      for (const expiresAt of e.leases.values()) earliest = Math.min(earliest, expiresAt)
      if (earliest <= now) {
        // a hung probe: its lease expired, the circuit reopens
        open(e, policy, e.openings + 1, undefined, now)
        return { _tag: "Open", retryAfterMs: e.until - now, openings: e.openings, halfOpen: false }
      }
      if (e.leases.size + e.successes < policy.probes) {
        const lease = String(++leaseSeq)
        e.leases.set(lease, now + policy.probeTimeoutMs)
        return { _tag: "Probe", lease }
      }
      const wait = earliest === Number.POSITIVE_INFINITY ? 0 : earliest - now
      return { _tag: "Open", retryAfterMs: wait, openings: e.openings, halfOpen: true }
    },
    trip: (key, policy, retryAfterMs, now) => {
      sweep(now)
      let e = entries.get(key)
      if (e !== undefined && e.state !== 0) return
      const openings = e !== undefined && now < e.resetAt ? e.openings + 1 : 1
      if (e === undefined) {
        e = { state: 0, until: 0, openings: 0, lastOpenFor: 0, resetAt: 0, successes: 0, leases: new Map() }
        entries.set(key, e)
      }
      open(e, policy, openings, retryAfterMs, now)
    },
    probeDone: (key, lease, result, policy, retryAfterMs, now) => {
      const e = entries.get(key)
      if (e === undefined || e.state === 0) return "Closed"
      if (e.state !== 2 || !e.leases.delete(lease)) return e.state === 1 ? "Open" : "HalfOpen"
      if (result === "failure") {
        open(e, policy, e.openings + 1, retryAfterMs, now)
        return "Open"
      }
      if (result === "success" && ++e.successes >= policy.probes) {
        e.state = 0
        e.resetAt = now + e.lastOpenFor
        return "Closed"
      }
      return "HalfOpen"
    }
  }
}

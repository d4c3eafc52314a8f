/**
 * The in-process spend store: per account (a scope's budget, in one window), the dollars spent and the
 * reservations of the calls in flight, each with an expiry; plus each scope's running total.
 *
 * Amounts are kept in integer nano-dollars, as the Redis store keeps them, so that both stores round alike.
 *
 * @internal
 */
import type * as SpendGuard from "../SpendGuard.ts"

/** @internal */
export const NANO = 1_000_000_000

/** @internal */
export const toNano = (usd: number): number => Math.round(usd * NANO)

/** The start of the window of `account` that holds `now` (0 without a window). @internal */
export const windowStart = (account: SpendGuard.Account, now: number): number =>
  account.windowMs === undefined ? 0 : Math.floor(now / account.windowMs) * account.windowMs

/** The storage name of `account` in the window starting at `start`. @internal */
export const accountKey = (account: SpendGuard.Account, start: number): string =>
  account.windowMs === undefined ? account.name : `${account.name}@${account.windowMs}:${start}`

interface Entry {
  spent: number
  readonly reservations: Map<string, { readonly nano: number; readonly expiresAt: number }>
  /** When the entry may be dropped. */
  expiresAt: number
}

/**
 * The in-process store. `idleMs`: a lifetime account or a total unused this long is forgotten;
 * `reservationTtlMs`: a reservation not settled by then no longer counts.
 *
 * @internal
 */
export const memoryStore = (idleMs: number, reservationTtlMs: number): SpendGuard.Store => {
  const entries = new Map<string, Entry>()
  const totals = new Map<string, { spent: number; expiresAt: number }>()
  let nextSweep = 0

  const sweep = (now: number) => {
    if (now < nextSweep) return
    nextSweep = now + Math.min(idleMs, reservationTtlMs)
    for (const [k, e] of entries) if (e.expiresAt <= now) entries.delete(k)
    for (const [k, t] of totals) if (t.expiresAt <= now) totals.delete(k)
  }

  const ttlOf = (account: SpendGuard.Account, start: number, now: number) =>
    account.windowMs === undefined ? now + idleMs : Math.max(start + account.windowMs, now) + reservationTtlMs

  const entryOf = (account: SpendGuard.Account, start: number, now: number): Entry => {
    const key = accountKey(account, start)
    let e = entries.get(key)
    if (e === undefined || e.expiresAt <= now) {
      e = { spent: 0, reservations: new Map(), expiresAt: 0 }
      entries.set(key, e)
    }
    e.expiresAt = Math.max(e.expiresAt, ttlOf(account, start, now))
    return e
  }

  const inUse = (e: Entry, now: number): number => {
    let reserved = 0
    for (const [id, r] of e.reservations) {
      if (r.expiresAt <= now) e.reservations.delete(id)
      else reserved += r.nano
    }
    return e.spent + reserved
  }

  return {
    reserve: (id, accounts, estimateUsd, now) => {
      sweep(now)
      const windows = accounts.map((a) => windowStart(a, now))
      const picked = accounts.map((a, i) => entryOf(a, windows[i], now))
      for (let i = 0; i < accounts.length; i++) {
        const used = inUse(picked[i], now)
        if (used >= toNano(accounts[i].limitUsd)) {
          const a = accounts[i]
          return {
            _tag: "Refused",
            account: a,
            spentUsd: used / NANO,
            retryAfterMs: a.windowMs === undefined ? undefined : windows[i] + a.windowMs - now
          }
        }
      }
      const nano = toNano(estimateUsd)
      for (const e of picked) e.reservations.set(id, { nano, expiresAt: now + reservationTtlMs })
      return { _tag: "Reserved", reservation: { id, accounts, windows } }
    },
    settle: (reservation, costUsd, scopes, now) => {
      sweep(now)
      const nano = toNano(costUsd)
      const { accounts, windows } = reservation
      for (let i = 0; i < accounts.length; i++) {
        const e = entryOf(accounts[i], windows[i] ?? windowStart(accounts[i], now), now)
        e.reservations.delete(reservation.id)
        e.spent += nano
      }
      for (const name of scopes) {
        const t = totals.get(name)
        if (t === undefined || t.expiresAt <= now) totals.set(name, { spent: nano, expiresAt: now + idleMs })
        else {
          t.spent += nano
          t.expiresAt = now + idleMs
        }
      }
    },
    spent: (name, now) => {
      const t = totals.get(name)
      return t === undefined || t.expiresAt <= now ? 0 : t.spent / NANO
    }
  }
}

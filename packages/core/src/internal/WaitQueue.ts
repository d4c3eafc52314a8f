/**
 * The wait queue shared by admission and the bulkhead: two FIFO lanes (interactive, background) with
 * aging, O(1) push / head / shift, and O(1) removal by tombstone (a waiter that leaves sets its own state;
 * tombstones are skipped and compacted away).
 *
 * Order: interactive before background, FIFO within a lane, except that a background waiter which has
 * waited `agingMs` or more ranks by its arrival time against interactive waiters, so a steady stream of
 * interactive calls cannot starve background work forever.
 *
 * @internal
 */
import { Deque } from "./Deque.ts"

/** @internal */
export const WAITING = 0

/** @internal */
export interface Waiter {
  /** `WAITING` while queued; anything else marks a tombstone. */
  state: number
  /** 0 = interactive, 1 = background. */
  readonly lane: 0 | 1
  readonly enqueuedAt: number
}

/** @internal */
export class WaitQueue<W extends Waiter> {
  private readonly interactive = new Deque<W>(64)
  private readonly background = new Deque<W>(64)
  /** Live (waiting) entries. */
  size = 0
  readonly agingMs: number

  constructor(agingMs: number) {
    this.agingMs = agingMs
  }

  push(w: W): void {
    ;(w.lane === 0 ? this.interactive : this.background).push(w)
    this.size++
  }

  /** Call after setting a queued waiter's state away from `WAITING` (it stays in place as a tombstone). */
  removed(): void {
    this.size--
    const total = this.interactive.length + this.background.length
    if (total > 2 * this.size + 1024) {
      this.interactive.retain((w) => w.state === WAITING)
      this.background.retain((w) => w.state === WAITING)
    }
  }

  private clean(d: Deque<W>): W | undefined {
    let w = d.peek()
    while (w !== undefined && w.state !== WAITING) {
      d.shift()
      w = d.peek()
    }
    return w
  }

  private backgroundFirst(b: W, i: W | undefined, now: number): boolean {
    return i === undefined || (b.enqueuedAt + this.agingMs <= now && b.enqueuedAt < i.enqueuedAt)
  }

  /** The first waiter in order at `now`. */
  head(now: number): W | undefined {
    const i = this.clean(this.interactive)
    const b = this.clean(this.background)
    return b !== undefined && this.backgroundFirst(b, i, now) ? b : i
  }

  /**
   * Visits waiting entries in order, starting with the head, until `f` returns false or `limit` entries
   * (tombstones included) were looked at.
   */
  forEach(now: number, limit: number, f: (w: W) => boolean): void {
    const is = this.interactive
    const bs = this.background
    let ii = 0
    let bi = 0
    let seen = 0
    while (seen < limit) {
      while (ii < is.length && is.at(ii).state !== WAITING) {
        ii++
        seen++
      }
      while (bi < bs.length && bs.at(bi).state !== WAITING) {
        bi++
        seen++
      }
      const i = ii < is.length ? is.at(ii) : undefined
      const b = bi < bs.length ? bs.at(bi) : undefined
      let w: W
      if (b !== undefined && this.backgroundFirst(b, i, now)) {
        w = b
        bi++
      } else if (i !== undefined) {
        w = i
        ii++
      } else {
        return
      }
      seen++
      if (!f(w)) return
    }
  }
}

/**
 * Bounded per-key state: the one map behind every stage that keeps something per `provider/model` key
 * (breaker circuits, retry-budget slices, admission limits, per-model attempt plans).
 *
 * The caller chooses the model string, so a map keyed by it must not grow without bound. A `KeyedState`
 * holds at most `maxKeys` entries and forgets an entry idle for `idleMs` (time comes from the caller, who
 * reads it through `Clock`). Only entries the owner says are evictable are ever dropped: a circuit that is
 * open, or a key with reservations in flight, stays. At the cap, when no entry can be dropped, a new key's
 * state is made but not kept: it serves that call and the next call of the key starts afresh.
 *
 * An idle entry is found by a sweep of the whole map that runs on a new key, at most every `idleMs / 2`: it is
 * dropped between `idleMs` and `1.5 × idleMs` after its last use (amortised O(1) per new key).
 *
 * Eviction at the cap is second-chance (CLOCK) over insertion order: an entry used since it was last looked at is moved
 * to the back instead of dropped, so a lookup only stamps the entry and the hot path moves nothing.
 *
 * @internal
 */

/** @internal */
export interface Bounds {
  /** The most keys kept. [10,000] */
  readonly maxKeys?: number | undefined
  /** How long a key may go unused before its state is dropped, in milliseconds. [600,000] */
  readonly idleMs?: number | undefined
}

interface Entry<V> {
  readonly value: V
  at: number
  used: boolean
}

/** How many entries one insertion looks at, at most, to make room. */
const SCAN = 32

/** @internal */
export class KeyedState<V> {
  readonly maxKeys: number
  readonly idleMs: number
  private readonly entries = new Map<string, Entry<V>>()
  private sweptAt = Number.NEGATIVE_INFINITY

  private readonly evictable: (value: V) => boolean

  constructor(bounds: Bounds | undefined, evictable: (value: V) => boolean = () => true) {
    this.evictable = evictable
    this.maxKeys = Math.max(1, bounds?.maxKeys ?? 10_000)
    this.idleMs = Math.max(0, bounds?.idleMs ?? 600_000)
  }

  get size(): number {
    return this.entries.size
  }

  /** The state of `key`, if kept (not counted as a use). */
  get(key: string): V | undefined {
    return this.entries.get(key)?.value
  }

  /** The state of `key`, made by `make` when not kept (and kept if there is room). */
  getOrCreate(key: string, now: number, make: () => V): V {
    const e = this.entries.get(key)
    if (e !== undefined) {
      e.at = now
      e.used = true
      return e.value
    }
    const value = make()
    if (now - this.sweptAt >= this.idleMs / 2) this.sweep(now)
    if (this.entries.size >= this.maxKeys) this.makeRoom(now)
    if (this.entries.size < this.maxKeys) this.entries.set(key, { value, at: now, used: false })
    return value
  }

  /** Drops every evictable entry idle for `idleMs` at `now`. */
  sweep(now: number): void {
    this.sweptAt = now
    for (const [key, e] of this.entries) {
      if (now - e.at >= this.idleMs && this.evictable(e.value)) this.entries.delete(key)
    }
  }

  private makeRoom(now: number): void {
    let scanned = 0
    for (const [key, e] of this.entries) {
      if (++scanned > SCAN) return
      this.entries.delete(key)
      if (this.evictable(e.value) && (!e.used || now - e.at >= this.idleMs)) return
      // a second chance: to the back, looked at again after every other entry
      e.used = false
      this.entries.set(key, e)
    }
  }
}

/**
 * `make(key)`, built once per key: for what is derived from configuration alone (a model's retry plan), which
 * can be rebuilt at no cost but the work. The caller chooses the model strings, so at `max` keys the memo
 * starts again empty.
 *
 * @internal
 */
export const memo = <V>(make: (key: string) => V, max: number = 1_000): ((key: string) => V) => {
  const kept = new Map<string, V>()
  return (key) => {
    let value = kept.get(key)
    if (value === undefined) {
      if (kept.size >= max) kept.clear()
      value = make(key)
      kept.set(key, value)
    }
    return value
  }
}

/**
 * A growable ring buffer: O(1) push at the back, shift at the front and indexed reads. The wait queues of
 * admission and the bulkhead, and the admission log, are built on it.
 *
 * @internal
 */
export class Deque<A> {
  private buf: Array<A | undefined>
  private head = 0
  private size = 0
  private mask: number

  constructor(initialCapacity = 16) {
    let cap = 16
    while (cap < initialCapacity) cap *= 2
    this.buf = new Array(cap)
    this.mask = cap - 1
  }

  get length(): number {
    return this.size
  }

  push(a: A): void {
    if (this.size === this.buf.length) this.grow()
    this.buf[(this.head + this.size) & this.mask] = a
    this.size++
  }

  peek(): A | undefined {
    return this.size === 0 ? undefined : this.buf[this.head]
  }

  shift(): A | undefined {
    if (this.size === 0) return undefined
    const a = this.buf[this.head]
    this.buf[this.head] = undefined
    this.head = (this.head + 1) & this.mask
    this.size--
    return a
  }

  /** The `i`-th element from the front (0 = front); `i` must be below `length`. */
  at(i: number): A {
    return this.buf[(this.head + i) & this.mask] as A
  }

  /** Keeps only the elements for which `keep` holds, in order. O(n). */
  retain(keep: (a: A) => boolean): void {
    const kept: Array<A> = []
    for (let i = 0; i < this.size; i++) {
      const a = this.at(i)
      if (keep(a)) kept.push(a)
    }
    this.buf.fill(undefined)
    this.head = 0
    this.size = 0
    for (const a of kept) this.push(a)
  }

  private grow(): void {
    const next: Array<A | undefined> = new Array(this.buf.length * 2)
    for (let i = 0; i < this.size; i++) next[i] = this.buf[(this.head + i) & this.mask]
    this.buf = next
    this.head = 0
    this.mask = next.length - 1
  }
}

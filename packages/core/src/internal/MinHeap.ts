/**
 * A binary min-heap ordered by a numeric priority: O(log n) push and pop. Admission keeps waiters'
 * deadlines in one so that a single timer per key serves every wait bound.
 *
 * @internal
 */
export class MinHeap<A> {
  private readonly keys: Array<number> = []
  private readonly values: Array<A> = []

  get length(): number {
    return this.keys.length
  }

  /** The smallest priority, or `Infinity` when empty. */
  peekKey(): number {
    return this.keys.length === 0 ? Number.POSITIVE_INFINITY : this.keys[0]
  }

  peek(): A | undefined {
    return this.values[0]
  }

  push(key: number, value: A): void {
    const keys = this.keys
    const values = this.values
    let i = keys.length
    keys.push(key)
    values.push(value)
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (keys[parent] <= key) break
      keys[i] = keys[parent]
      values[i] = values[parent]
      i = parent
    }
    keys[i] = key
    values[i] = value
  }

  pop(): A | undefined {
    const keys = this.keys
    const values = this.values
    const n = keys.length
    if (n === 0) return undefined
    const top = values[0]
    const lastKey = keys.pop() as number
    const lastValue = values.pop() as A
    const size = n - 1
    if (size > 0) {
      let i = 0
      while (true) {
        const l = 2 * i + 1
        if (l >= size) break
        const r = l + 1
        const c = r < size && keys[r] < keys[l] ? r : l
        if (keys[c] >= lastKey) break
        keys[i] = keys[c]
        values[i] = values[c]
        i = c
      }
      keys[i] = lastKey
      values[i] = lastValue
    }
    return top
  }
}

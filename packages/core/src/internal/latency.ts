/**
 * A ring of the last `size` latencies with a cached percentile, recomputed every `size / 10` samples.
 *
 * @internal
 */
export interface LatencyWindow {
  readonly record: (ms: number) => void
  /** The `p`-th percentile (0 < p <= 100), or `undefined` below `minSamples` samples. */
  readonly percentile: () => number | undefined
  readonly count: () => number
}

/** @internal */
export const make = (size: number, p: number, minSamples: number): LatencyWindow => {
  const ring = new Float64Array(size)
  let n = 0
  let next = 0
  let cached: number | undefined
  let dirty = 0
  const every = Math.max(1, Math.floor(size / 10))
  const compute = () => {
    const len = Math.min(n, size)
    const sorted = Array.from(ring.subarray(0, len)).sort((a, b) => a - b)
    const rank = Math.min(len - 1, Math.max(0, Math.ceil((p / 100) * len) - 1))
    cached = sorted[rank]
    dirty = 0
  }
  return {
    record: (ms) => {
      ring[next] = ms
      next = (next + 1) % size
      n++
      dirty++
    },
    percentile: () => {
      if (n < minSamples) return undefined
      if (cached === undefined || dirty >= every) compute()
      return cached
    },
    count: () => n
  }
}

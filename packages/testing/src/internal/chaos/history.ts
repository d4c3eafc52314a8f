/**
 * The chaos server's logs (requests served, calls counted against rate limits): append-only, keeping the
 * latest entries only, so that a server under a long load test does not grow without bound.
 *
 * @internal
 */

/** A log of the latest `limit` entries. */
export interface History<A> {
  readonly append: (entry: A) => void
  /** The latest entries (at most `limit`), oldest first. */
  readonly entries: () => ReadonlyArray<A>
}

/**
 * A log keeping the latest `limit` entries. It holds up to twice that and drops the oldest half at once, so
 * that an append costs O(1) amortized.
 */
export const makeHistory = <A>(limit: number): History<A> => {
  const log: Array<A> = []
  return {
    append: (entry) => {
      log.push(entry)
      if (log.length >= 2 * limit) log.splice(0, log.length - limit)
    },
    entries: () => log.slice(-limit)
  }
}

/**
 * The output monitor's state for one key: time buckets of signal counts, length moments and embedding
 * sums, the current window and the reference (the most recent healthy buckets before it), and the drift
 * state machine of each signal. Pure and synchronous; the module `OutputMonitor` adds time, randomness,
 * metrics and events.
 *
 * @internal
 */
import * as stats from "./driftStats.ts"

/** The signals, in the order of their state arrays; the first {@link rateSignals} are rates. */
export const signals = [
  "schema_failure",
  "judge_failure",
  "refusal",
  "empty",
  "length_cut",
  "mixed_script",
  "output_length",
  "embedding"
] as const
export type Signal = (typeof signals)[number]
export const rateSignals = 6
const LENGTH = 6
const EMBEDDING = 7

/**
 * An embedding drift also needs the centroids at least this many times further apart than by chance. The
 * statistic's null is a weighted sum of chi-squares with few effective degrees of freedom (outputs vary
 * along few directions), whose far tail the gamma fit underestimates (2 to 3 times too many p-values below
 * 1e-3 on healthy traffic); the floor keeps the false-alarm rate within its budget.
 */
export const minEmbeddingEffect = 2

/**
 * A length drift also needs the typical length to change by at least this fraction: with thousands of
 * outputs per window, a few percent is significant, and real traffic moves that much over a day.
 */
export const minLengthChange = 0.1

const large = (s: number, evidence: Evidence): boolean =>
  s === EMBEDDING
    ? evidence.effect >= minEmbeddingEffect
    : s === LENGTH
      ? Math.abs(Math.log(evidence.effect)) >= Math.log1p(minLengthChange)
      : true

/** What one output contributes: per rate signal `true` (flagged), `false` or `undefined` (not measured). */
export interface Features {
  readonly flags: ReadonlyArray<boolean | undefined>
  readonly logLength: number
  readonly text: string
  readonly embedding: Float64Array | undefined
}

export interface Config {
  readonly bucketMs: number
  readonly windowMs: number
  /** Healthy buckets kept as the reference. */
  readonly referenceBuckets: number
  readonly alpha: number
  readonly recoverAlpha: number
  readonly minSamples: number
  readonly permutations: number
  readonly samples: number
}

interface Bucket {
  readonly start: number
  readonly hits: Float64Array
  readonly totals: Float64Array
  readonly flagged: Array<Array<string>>
  lengthN: number
  lengthSum: number
  lengthSumSq: number
  embN: number
  embSum: Float64Array | undefined
  readonly embSamples: Array<{ readonly text: string; readonly vector: Float64Array }>
  healthy: boolean
}

/** The evidence of one test: values in the reference and the current window, the effect, sample outputs. */
export interface Evidence {
  readonly signal: Signal
  /** Rate, typical length in tokens (geometric mean) or, for embeddings, the typical centroid distance by chance. */
  readonly reference: number
  /** The same in the current window; for embeddings, the centroid distance observed. */
  readonly current: number
  /** current - reference for rates, current / reference for length and embeddings. */
  readonly effect: number
  readonly pValue: number
  readonly referenceCount: number
  readonly currentCount: number
  readonly samples: ReadonlyArray<string>
}

/** A signal's state changing, or (for gauges) the latest value of every tested signal. */
export type Change =
  | { readonly _tag: "Detected"; readonly evidence: Evidence }
  | { readonly _tag: "Recovered"; readonly evidence: Evidence }
  | { readonly _tag: "Measured"; readonly evidence: Evidence }

export interface KeyState {
  readonly buckets: Array<Bucket>
  readonly drifted: Array<number | undefined>
  /** The embedding test's null fit, reused for {@link refitEvery} checks while the window's shape holds. */
  fit: { readonly value: stats.NullFit; readonly buckets: number; readonly pool: number; age: number } | undefined
}

/**
 * Checks between two permutation fits of the embedding null (refitted sooner when the window's bucket
 * count changes or the pool by more than a tenth). Consecutive pools share all but a few buckets, so the
 * fit barely moves from one minute to the next; refitting every tenth check cuts the cost tenfold.
 */
export const refitEvery = 10

export const make = (): KeyState => ({ buckets: [], drifted: signals.map(() => undefined), fit: undefined })

const newBucket = (start: number): Bucket => ({
  start,
  hits: new Float64Array(rateSignals),
  totals: new Float64Array(rateSignals),
  flagged: Array.from({ length: rateSignals }, () => []),
  lengthN: 0,
  lengthSum: 0,
  lengthSumSq: 0,
  embN: 0,
  embSum: undefined,
  embSamples: [],
  healthy: true
})

/** Whether the open bucket has ended at `now`: then {@link check} is due before the next {@link add}. */
export const due = (state: KeyState, now: number, config: Config): boolean => {
  const open = state.buckets.at(-1)
  return open !== undefined && now >= open.start + config.bucketMs
}

/** Adds one output to the bucket of `now`. */
export const add = (state: KeyState, now: number, features: Features, config: Config): void => {
  let open = state.buckets.at(-1)
  if (open === undefined || now >= open.start + config.bucketMs) {
    open = newBucket(now - (now % config.bucketMs))
    open.healthy = !isDrifted(state)
    state.buckets.push(open)
  }
  for (let i = 0; i < rateSignals; i++) {
    const flag = features.flags[i]
    if (flag === undefined) continue
    open.totals[i]++
    if (flag) {
      open.hits[i]++
      if (open.flagged[i].length < config.samples) open.flagged[i].push(features.text)
    }
  }
  open.lengthN++
  open.lengthSum += features.logLength
  open.lengthSumSq += features.logLength * features.logLength
  const e = features.embedding
  if (e !== undefined) {
    if (open.embSum === undefined || open.embSum.length !== e.length) open.embSum = new Float64Array(e.length)
    for (let i = 0; i < e.length; i++) open.embSum[i] += e[i]
    open.embN++
    if (open.embSamples.length < config.samples) open.embSamples.push({ text: features.text, vector: e })
  }
}

export const isDrifted = (state: KeyState): boolean => state.drifted.some((d) => d !== undefined)

/**
 * Tests every signal of the current window (the buckets that started within `windowMs` before `now`)
 * against the reference, updates the drift states and returns the changes. Nothing is tested before the
 * reference holds as many buckets as the current window.
 */
export const check = (
  state: KeyState,
  now: number,
  config: Config,
  nextInt: (n: number) => number
): ReadonlyArray<Change> => {
  const from = now - config.windowMs
  const current = state.buckets.filter((b) => b.start >= from && b.start + config.bucketMs <= now)
  const older = state.buckets.filter((b) => b.start < from)
  const reference = older.filter((b) => b.healthy).slice(-config.referenceBuckets)
  // forget what no test will read again
  const keep = new Set(reference)
  for (let i = state.buckets.length - 1; i >= 0; i--) {
    if (state.buckets[i].start < from && !keep.has(state.buckets[i])) state.buckets.splice(i, 1)
  }
  if (current.length === 0 || reference.length < Math.max(2, current.length)) return []
  const changes: Array<Change> = []
  for (let s = 0; s < signals.length; s++) {
    const evidence =
      s < rateSignals
        ? rate(s, current, reference, config)
        : s === LENGTH
          ? length(current, reference, config)
          : embedding(state, current, reference, config, nextInt)
    if (evidence === undefined) continue
    changes.push({ _tag: "Measured", evidence })
    if (state.drifted[s] === undefined && evidence.pValue < config.alpha && large(s, evidence)) {
      state.drifted[s] = now
      // the buckets that showed the drift never become reference
      for (const b of current) b.healthy = false
      changes.push({ _tag: "Detected", evidence })
    } else if (state.drifted[s] !== undefined && evidence.pValue > config.recoverAlpha) {
      state.drifted[s] = undefined
      changes.push({ _tag: "Recovered", evidence })
    }
  }
  return changes
}

/** Forgets everything about the key: the outputs from now on are the norm, tested after two windows. */
export const rebaseline = (state: KeyState): void => {
  state.buckets.length = 0
  state.drifted.fill(undefined)
  state.fit = undefined
}

const rate = (
  s: number,
  current: ReadonlyArray<Bucket>,
  reference: ReadonlyArray<Bucket>,
  config: Config
): Evidence | undefined => {
  let x1 = 0
  let n1 = 0
  let x0 = 0
  let n0 = 0
  for (const b of current) {
    x1 += b.hits[s]
    n1 += b.totals[s]
  }
  for (const b of reference) {
    x0 += b.hits[s]
    n0 += b.totals[s]
  }
  if (n1 < config.minSamples || n0 < config.minSamples) return undefined
  const samples: Array<string> = []
  for (let i = current.length - 1; i >= 0 && samples.length < config.samples; i--) {
    for (const text of current[i].flagged[s]) if (samples.length < config.samples) samples.push(text)
  }
  return {
    signal: signals[s],
    reference: x0 / n0,
    current: x1 / n1,
    effect: x1 / n1 - x0 / n0,
    pValue: stats.rateIncrease(x1, n1, x0, n0),
    referenceCount: n0,
    currentCount: n1,
    samples
  }
}

const moments = (buckets: ReadonlyArray<Bucket>): stats.Moments => {
  let n = 0
  let sum = 0
  let sumSq = 0
  for (const b of buckets) {
    n += b.lengthN
    sum += b.lengthSum
    sumSq += b.lengthSumSq
  }
  return { n, sum, sumSq }
}

const length = (
  current: ReadonlyArray<Bucket>,
  reference: ReadonlyArray<Bucket>,
  config: Config
): Evidence | undefined => {
  const m1 = moments(current)
  const m0 = moments(reference)
  if (m1.n < config.minSamples || m0.n < config.minSamples) return undefined
  const typical1 = Math.expm1(m1.sum / m1.n)
  const typical0 = Math.expm1(m0.sum / m0.n)
  return {
    signal: "output_length",
    reference: typical0,
    current: typical1,
    effect: typical0 === 0 ? 0 : typical1 / typical0,
    pValue: stats.meanShift(m1, m0),
    referenceCount: m0.n,
    currentCount: m1.n,
    samples: current.flatMap((b) => b.embSamples.map((e) => e.text)).slice(-config.samples)
  }
}

const embedding = (
  state: KeyState,
  current: ReadonlyArray<Bucket>,
  reference: ReadonlyArray<Bucket>,
  config: Config,
  nextInt: (n: number) => number
): Evidence | undefined => {
  const withEmbeddings = (buckets: ReadonlyArray<Bucket>) =>
    buckets.filter((b) => b.embN > 0).map((b) => ({ n: b.embN, sum: b.embSum!, bucket: b }))
  const cur = withEmbeddings(current)
  const ref = withEmbeddings(reference)
  const n1 = cur.reduce((n, b) => n + b.n, 0)
  const n0 = ref.reduce((n, b) => n + b.n, 0)
  if (n1 < config.minSamples || n0 < config.minSamples) return undefined
  const dim = cur[0].sum.length
  if (ref.some((b) => b.sum.length !== dim) || cur.some((b) => b.sum.length !== dim)) return undefined
  const fit = state.fit
  const pool = cur.length + ref.length
  const reuse =
    fit !== undefined &&
    fit.age < refitEvery &&
    fit.buckets === cur.length &&
    Math.abs(pool - fit.pool) * 10 <= fit.pool
  const test = stats.centroidShift(cur, ref, config.permutations, nextInt, reuse ? fit.value : undefined)
  if (test === undefined) return undefined
  if (reuse) fit.age++
  else state.fit = { value: test.fit, buckets: cur.length, pool, age: 1 }
  // the sample outputs that lean furthest towards the shift
  const scored = cur.flatMap((b) =>
    b.bucket.embSamples.map((e) => {
      let dot = 0
      for (let i = 0; i < dim; i++) dot += e.vector[i] * test.direction[i]
      return { text: e.text, dot }
    })
  )
  scored.sort((a, b) => b.dot - a.dot)
  const typical = Math.sqrt(test.fit.mean)
  const observed = Math.sqrt(test.statistic)
  return {
    signal: "embedding",
    reference: typical,
    current: observed,
    effect: typical === 0 ? 0 : observed / typical,
    pValue: test.pValue,
    referenceCount: n0,
    currentCount: n1,
    samples: scored.slice(0, config.samples).map((s) => s.text)
  }
}

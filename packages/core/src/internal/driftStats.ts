/**
 * The two-sample tests of the output monitor, as pure functions returning a one-sided p-value:
 * - {@link rateIncrease}: Fisher's exact test (hypergeometric upper tail) that a rate went up;
 * - {@link meanShift}: Welch's z-test that a mean moved, either way;
 * - {@link centroidShift}: the squared distance between two centroids of embeddings, with a null
 *   distribution from permutations of time buckets fitted by a gamma (Wilson-Hilferty), so that a
 *   p-value far below `1 / permutations` can still be read from a few hundred permutations.
 *
 * @internal
 */

/** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-13). */
const lanczos = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7
]
export const logGamma = (x: number): number => {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x)
  const z = x - 1
  let a = lanczos[0]
  const t = z + 7.5
  for (let i = 1; i < 9; i++) a += lanczos[i] / (z + i)
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a)
}

const logChoose = (n: number, k: number) => logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1)

/** P(Z > z) for a standard normal Z (complementary error function, Numerical Recipes' erfc; 1.2e-7 relative). */
export const normalSurvival = (z: number): number => {
  const x = Math.abs(z) / Math.SQRT2
  const t = 1 / (1 + 0.5 * x)
  const erfc =
    t *
    Math.exp(
      -x * x -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    )
  return z >= 0 ? erfc / 2 : 1 - erfc / 2
}

/**
 * One-sided Fisher exact test that the current rate `x1 / n1` is above the reference rate `x0 / n0`:
 * P(X >= x1) for X hypergeometric (x0 + x1 successes among n0 + n1, n1 drawn).
 */
export const rateIncrease = (x1: number, n1: number, x0: number, n0: number): number => {
  const N = n0 + n1
  const K = x0 + x1
  if (n1 === 0 || K === 0 || x1 * N <= K * n1) return 1
  const hi = Math.min(K, n1)
  let term = Math.exp(logChoose(K, x1) + logChoose(N - K, n1 - x1) - logChoose(N, n1))
  let sum = 0
  for (let x = x1; x <= hi && term > 0; x++) {
    sum += term
    if (term < sum * 1e-15) break
    term *= ((K - x) * (n1 - x)) / ((x + 1) * (N - K - n1 + x + 1))
  }
  return Math.min(1, sum)
}

/** Count, sum and sum of squares of a sample. */
export interface Moments {
  readonly n: number
  readonly sum: number
  readonly sumSq: number
}

/** Two-sided Welch z-test that the mean of `current` differs from the mean of `reference`. */
export const meanShift = (current: Moments, reference: Moments): number => {
  if (current.n < 2 || reference.n < 2) return 1
  const m1 = current.sum / current.n
  const m0 = reference.sum / reference.n
  const v1 = Math.max(0, (current.sumSq - current.n * m1 * m1) / (current.n - 1))
  const v0 = Math.max(0, (reference.sumSq - reference.n * m0 * m0) / (reference.n - 1))
  const se = Math.sqrt(v1 / current.n + v0 / reference.n)
  if (se === 0) return m1 === m0 ? 1 : 0
  return Math.min(1, 2 * normalSurvival(Math.abs(m1 - m0) / se))
}

/** Embedding sums of one time bucket. */
export interface EmbeddingBucket {
  readonly n: number
  readonly sum: Float64Array
}

/** The null distribution of {@link centroidShift}'s statistic, as fitted from permutations. */
export interface NullFit {
  readonly mean: number
  readonly variance: number
}

/** The outcome of {@link centroidShift}. */
export interface CentroidTest {
  /** Squared Euclidean distance between the centroids. */
  readonly statistic: number
  readonly fit: NullFit
  readonly pValue: number
  /** Unit vector from the reference centroid to the current one (for picking evidence). */
  readonly direction: Float64Array
}

/**
 * Test of the squared distance between the centroid of the `current` buckets and that of the `reference`
 * buckets. The null distribution comes from permutations of whole buckets (time blocks, so that correlation
 * within a minute does not inflate significance): their mean and variance are fitted by a gamma, whose upper
 * tail at the observed statistic (Wilson-Hilferty) is the p-value, so that p-values far below
 * `1 / permutations` can be read from a few hundred permutations. `fit` reuses an earlier fit instead of
 * permuting. `nextInt(n)` draws uniformly from 0 to n - 1.
 */
export const centroidShift = (
  current: ReadonlyArray<EmbeddingBucket>,
  reference: ReadonlyArray<EmbeddingBucket>,
  permutations: number,
  nextInt: (n: number) => number,
  fit?: NullFit
): CentroidTest | undefined => {
  if (current.length < 2 || reference.length < 2) return undefined
  const dim = current[0].sum.length
  const pool = [...current, ...reference]
  const total = new Float64Array(dim)
  let totalN = 0
  for (const b of pool) {
    totalN += b.n
    for (let i = 0; i < dim; i++) total[i] += b.sum[i]
  }
  const k = current.length
  const index = pool.map((_, i) => i)
  const s = new Float64Array(dim)
  // squared distance between the centroid of pool[index[0..k)] and that of the rest
  const distance = () => {
    s.fill(0)
    let n = 0
    for (let j = 0; j < k; j++) {
      const b = pool[index[j]]
      n += b.n
      for (let i = 0; i < dim; i++) s[i] += b.sum[i]
    }
    if (n === 0 || n === totalN) return 0
    let d = 0
    for (let i = 0; i < dim; i++) {
      const x = s[i] / n - (total[i] - s[i]) / (totalN - n)
      d += x * x
    }
    return d
  }
  const statistic = distance()
  const direction = new Float64Array(dim)
  const n1 = current.reduce((n, b) => n + b.n, 0)
  let norm = 0
  for (let i = 0; i < dim; i++) {
    direction[i] = s[i] / n1 - (total[i] - s[i]) / (totalN - n1)
    norm += direction[i] ** 2
  }
  norm = Math.sqrt(norm)
  if (norm > 0) for (let i = 0; i < dim; i++) direction[i] /= norm
  let nullFit = fit
  if (nullFit === undefined) {
    const draws = new Float64Array(permutations)
    for (let p = 0; p < permutations; p++) {
      // partial Fisher-Yates: the first k of `index` become the permuted "current"
      for (let i = 0; i < k; i++) {
        const j = i + nextInt(index.length - i)
        const t = index[i]
        index[i] = index[j]
        index[j] = t
      }
      draws[p] = distance()
    }
    let mean = 0
    for (const d of draws) mean += d
    mean /= permutations
    let variance = 0
    for (const d of draws) variance += (d - mean) ** 2
    nullFit = { mean, variance: variance / Math.max(1, permutations - 1) }
  }
  return { statistic, fit: nullFit, pValue: gammaSurvival(statistic, nullFit.mean, nullFit.variance), direction }
}

/** P(X > x) for a gamma with the given mean and variance (Wilson-Hilferty cube-root normal approximation). */
export const gammaSurvival = (x: number, mean: number, variance: number): number => {
  if (mean <= 0 || variance <= 0) return x > mean ? 0 : 1
  const shape = (mean * mean) / variance
  const c = 1 / (9 * shape)
  const z = (Math.cbrt(x / mean) - (1 - c)) / Math.sqrt(c)
  return normalSurvival(z)
}

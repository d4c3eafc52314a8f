/**
 * Pure delay arithmetic shared by `Backoff`, `Retry` and the jitter benchmark.
 *
 * @internal
 */
import { Duration } from "effect"

/** Default first delay of every backoff kind, in milliseconds. */
export const defaultBaseMs = 100
/** Default cap of every backoff kind, in milliseconds. */
export const defaultCapMs = 20_000
/** Default bound on a provider's Retry-After, in milliseconds. */
export const defaultMaxRetryAfterMs = 60_000

/**
 * A duration option in milliseconds. Throws a `RangeError` naming the option when it is not a non-negative
 * duration (construction-time programmer error).
 */
export const millisOf = (field: string, input: Duration.Input | undefined, fallback: number): number => {
  if (input === undefined) return fallback
  const ms = Duration.fromInput(input)
  const value = ms._tag === "Some" ? Duration.toMillis(ms.value) : Number.NaN
  if (!(value >= 0)) {
    throw new RangeError(`${field}: expected a non-negative duration, got ${String(input)}`)
  }
  return value
}

/** `min(cap, base * 2^n)`, saturating at `cap` for large `n`. */
export const capped = (base: number, cap: number, n: number): number => (n >= 1024 ? cap : Math.min(cap, base * 2 ** n))

/** The Retry-After of an error, in milliseconds, if it carries one. */
export const retryAfterOf = (error: unknown): number | undefined => {
  if (typeof error === "object" && error !== null && "retryAfterMs" in error) {
    const ms = (error as { readonly retryAfterMs?: unknown }).retryAfterMs
    return typeof ms === "number" && ms >= 0 ? ms : undefined
  }
  return undefined
}

/** `max(jittered, retryAfter)`, or `undefined` when `retryAfter` exceeds `maxMs` (stop waiting now). */
export const floorRetryAfter = (
  jitteredMs: number,
  retryAfterMs: number | undefined,
  maxMs: number
): number | undefined =>
  retryAfterMs === undefined ? jitteredMs : retryAfterMs > maxMs ? undefined : Math.max(jitteredMs, retryAfterMs)

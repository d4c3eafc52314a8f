/**
 * What a provider said about its rate limits in one response's headers.
 *
 * Both header families map onto one shape: OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
 * (resets as Go durations such as `6m0s`) and Anthropic's
 * `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}` (resets as
 * RFC 3339 timestamps). All times are stored relative to the moment the response was observed, in
 * milliseconds, so the snapshot does not depend on the provider's clock.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as headers from "./internal/headers.ts"

/**
 * One limit window: the configured limit, what remains, and milliseconds until it resets.
 *
 * @since 0.1.0
 */
export const LimitWindow = Schema.Struct({
  limit: Schema.optional(Schema.Finite),
  remaining: Schema.optional(Schema.Finite),
  resetAfterMs: Schema.optional(Schema.Finite)
})

/**
 * @since 0.1.0
 */
export type LimitWindow = typeof LimitWindow.Type

/**
 * The rate-limit facts of one response.
 *
 * @example
 * ```ts
 * import type { RateLimitSnapshot } from "@llm-resilience/core"
 * const snapshot: RateLimitSnapshot.RateLimitSnapshot = {
 *   retryAfterMs: 2000,
 *   requests: { limit: 60, remaining: 0, resetAfterMs: 2000 }
 * }
 * ```
 * @since 0.1.0
 */
export const RateLimitSnapshot = Schema.Struct({
  /**
   * From `retry-after-ms` / `x-ms-retry-after-ms` or `retry-after` (seconds or HTTP date); in an error, also
   * from a body's retry delay (Gemini `RetryInfo`, "Please retry after N seconds") when no header gave one.
   */
  retryAfterMs: Schema.optional(Schema.Finite),
  /** From `x-should-retry`: the provider's own verdict, which overrides status-based classification. */
  shouldRetry: Schema.optional(Schema.Boolean),
  requests: Schema.optional(LimitWindow),
  tokens: Schema.optional(LimitWindow),
  inputTokens: Schema.optional(LimitWindow),
  outputTokens: Schema.optional(LimitWindow)
})

/**
 * @since 0.1.0
 */
export type RateLimitSnapshot = typeof RateLimitSnapshot.Type

// ---------------------------------------------------------------------------------------------------------
// parsing
// ---------------------------------------------------------------------------------------------------------

/**
 * A response's headers in any of the usual shapes: Node's `IncomingHttpHeaders`, effect/http `Headers`,
 * or a plain record. Keys may be in any case; array values (repeated headers) use their first element.
 *
 * @example
 * ```ts
 * import type { RateLimitSnapshot } from "@llm-resilience/core"
 * const headers: RateLimitSnapshot.HeaderInput = { "Retry-After": "2", "set-cookie": ["a=1", "b=2"] }
 * ```
 * @since 0.1.0
 */
export type HeaderInput = headers.HeaderInput

/**
 * The largest duration the parsers return: 24 hours. A longer `retry-after` or reset (including dates
 * years away) is clamped to it rather than dropped, so "wait a very long time" survives as a signal.
 *
 * @example
 * ```ts
 * import { RateLimitSnapshot } from "@llm-resilience/core"
 * RateLimitSnapshot.parseRetryAfter({ "retry-after": "259200" }, 0) === RateLimitSnapshot.maxDurationMs // true
 * ```
 * @since 0.1.0
 */
export const maxDurationMs: number = headers.MAX_DURATION_MS

/** The three header names of one limit window. */
interface WindowNames {
  readonly limit: string
  readonly remaining: string
  readonly reset: string
}

// OpenAI: x-ratelimit-{limit,remaining,reset}-<kind>; Anthropic: anthropic-ratelimit-<kind>-{limit,remaining,reset}.
// Built once: names made per response were new strings that each header lookup had to hash anew.
const openAiNames = (kind: string): WindowNames => ({
  limit: `x-ratelimit-limit-${kind}`,
  remaining: `x-ratelimit-remaining-${kind}`,
  reset: `x-ratelimit-reset-${kind}`
})
const anthropicNames = (kind: string): WindowNames => ({
  limit: `anthropic-ratelimit-${kind}-limit`,
  remaining: `anthropic-ratelimit-${kind}-remaining`,
  reset: `anthropic-ratelimit-${kind}-reset`
})
const openAiRequests = openAiNames("requests")
const openAiTokens = openAiNames("tokens")
const anthropicRequests = anthropicNames("requests")
const anthropicTokens = anthropicNames("tokens")
const anthropicInputTokens = anthropicNames("input-tokens")
const anthropicOutputTokens = anthropicNames("output-tokens")

const window = (get: headers.Lookup, names: WindowNames, nowMillis: number): LimitWindow | undefined => {
  const l = headers.count(get(names.limit))
  const r = headers.count(get(names.remaining))
  const t = headers.resetAfter(get(names.reset), nowMillis)
  if (l === undefined && r === undefined && t === undefined) return undefined
  const w: { limit?: number; remaining?: number; resetAfterMs?: number } = {}
  if (l !== undefined) w.limit = l
  if (r !== undefined) w.remaining = r
  if (t !== undefined) w.resetAfterMs = t
  return w
}

const merge = (a: LimitWindow | undefined, b: LimitWindow | undefined): LimitWindow | undefined =>
  a === undefined ? b : b === undefined ? a : { ...b, ...a }

/**
 * Reads every rate-limit fact from a response's headers: `retry-after-ms` / `x-ms-retry-after-ms` (Azure) /
 * `retry-after`,
 * `x-should-retry`, OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` and Anthropic's
 * `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`. Resets
 * become milliseconds after `nowMillis`. Pure and total: unreadable or absurd values (negative, NaN,
 * `Infinity`, counts above 2^53) are left out, durations are clamped to {@link maxDurationMs}.
 *
 * @example
 * ```ts
 * import { RateLimitSnapshot } from "@llm-resilience/core"
 * RateLimitSnapshot.fromHeaders(
 *   { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m30.5s", "retry-after": "2" },
 *   Date.parse("2025-01-01T00:00:00Z")
 * )
 * // { retryAfterMs: 2000, requests: { remaining: 0, resetAfterMs: 90500 } }
 * ```
 * @since 0.1.0
 */
export const fromHeaders = (input: HeaderInput, nowMillis: number): RateLimitSnapshot => {
  const get = headers.lookup(input)
  const out: {
    retryAfterMs?: number
    shouldRetry?: boolean
    requests?: LimitWindow
    tokens?: LimitWindow
    inputTokens?: LimitWindow
    outputTokens?: LimitWindow
  } = {}
  const retryAfterMs = headers.retryAfter(get, nowMillis)
  if (retryAfterMs !== undefined) out.retryAfterMs = retryAfterMs
  const shouldRetry = headers.shouldRetry(get)
  if (shouldRetry !== undefined) out.shouldRetry = shouldRetry
  const requests = merge(window(get, openAiRequests, nowMillis), window(get, anthropicRequests, nowMillis))
  if (requests !== undefined) out.requests = requests
  const tokens = merge(window(get, openAiTokens, nowMillis), window(get, anthropicTokens, nowMillis))
  if (tokens !== undefined) out.tokens = tokens
  const inputTokens = window(get, anthropicInputTokens, nowMillis)
  if (inputTokens !== undefined) out.inputTokens = inputTokens
  const outputTokens = window(get, anthropicOutputTokens, nowMillis)
  if (outputTokens !== undefined) out.outputTokens = outputTokens
  return out
}

/**
 * The wait a response asks for, in milliseconds: `retry-after-ms` (float ms) or Azure's `x-ms-retry-after-ms`
 * wins over `retry-after`,
 * which may be seconds (fractional allowed) or an HTTP date (then measured from `nowMillis`; a past date
 * gives 0). Clamped to {@link maxDurationMs}; `undefined` when absent or unreadable. Never throws.
 *
 * @example
 * ```ts
 * import { RateLimitSnapshot } from "@llm-resilience/core"
 * RateLimitSnapshot.parseRetryAfter({ "Retry-After": "1.5" }, 0) // 1500
 * RateLimitSnapshot.parseRetryAfter({ "retry-after-ms": "250.5", "retry-after": "9" }, 0) // 250.5
 * RateLimitSnapshot.parseRetryAfter({ "retry-after": "Thu, 01 Jan 1970 00:00:30 GMT" }, 0) // 30000
 * ```
 * @since 0.1.0
 */
export const parseRetryAfter = (input: HeaderInput, nowMillis: number): number | undefined =>
  headers.retryAfter(headers.lookup(input), nowMillis)

/**
 * Parses a Go `time.Duration` string, as in OpenAI's `x-ratelimit-reset-*` headers, into milliseconds:
 * `6m0s` -> 360000, `1m30.5s` -> 90500, `12ms` -> 12, `1h2m` -> 3720000, `0` -> 0. Units `h m s ms us ns`.
 * Negative, unitless (other than `0`) and malformed input gives `undefined`; results are clamped to
 * {@link maxDurationMs}. Never throws.
 *
 * @example
 * ```ts
 * import { RateLimitSnapshot } from "@llm-resilience/core"
 * RateLimitSnapshot.parseGoDuration("1m30.5s") // 90500
 * RateLimitSnapshot.parseGoDuration("-1s") // undefined
 * ```
 * @since 0.1.0
 */
export const parseGoDuration = (s: string): number | undefined => headers.goDuration(s)

/**
 * Whether the snapshot holds any fact at all.
 *
 * @example
 * ```ts
 * import { RateLimitSnapshot } from "@llm-resilience/core"
 * RateLimitSnapshot.isEmpty(RateLimitSnapshot.fromHeaders({}, 0)) // true
 * ```
 * @since 0.1.0
 */
export const isEmpty = (snapshot: RateLimitSnapshot): boolean => Object.keys(snapshot).length === 0

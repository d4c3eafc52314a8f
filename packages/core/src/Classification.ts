/**
 * Classification: turns a failed provider response (HTTP status, headers, body text) into one
 * {@link LlmError.ProviderError}, for OpenAI-style and Anthropic-style bodies, OpenAI-compatible servers
 * and the HTML or empty pages proxies return.
 *
 * The body's error `type` / `code` decides first (a 429 can be a transient rate limit or a permanent
 * quota; a 400 can be a context overflow), then the status, then the `x-should-retry` header overrides
 * retryability the way the official SDKs let it. In-stream error events (Anthropic's `event: error`, an
 * OpenAI `{"error":...}` chunk inside an HTTP 200 stream) go through the same function with the stream's
 * status and the event's JSON as body. See docs/errors.md for the full table.
 *
 * @since 0.1.0
 */
import * as LlmError from "./LlmError.ts"
import * as errorBody from "./internal/errorBody.ts"
import * as ProviderErrors from "./internal/providerError.ts"
import * as headers from "./internal/headers.ts"
import * as RateLimitSnapshot from "./RateLimitSnapshot.ts"

/**
 * A failed provider response, as seen by a provider adapter.
 *
 * - `status`: the HTTP status (for an in-stream error event, the stream's status, usually 200; `0` when
 *   no response arrived).
 * - `headers`: the response headers, any key case.
 * - `body`: the response body text, or the in-stream error event's JSON.
 * - `nowMillis`: when the response was observed (from `Clock`), to turn dates into waits.
 *
 * @example
 * ```ts
 * import type { Classification } from "@llm-resilience/core"
 * const failure: Classification.HttpFailure = {
 *   status: 529,
 *   headers: { "request-id": "req_1" },
 *   body: '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
 *   provider: "anthropic",
 *   nowMillis: 0
 * }
 * ```
 * @since 0.1.0
 */
export interface HttpFailure {
  readonly status: number
  readonly headers: RateLimitSnapshot.HeaderInput
  readonly body: string
  readonly provider?: string | undefined
  readonly model?: string | undefined
  readonly nowMillis: number
}

/**
 * The provider's request id from the headers: `x-request-id` (OpenAI), `request-id` (Anthropic) or
 * `apim-request-id` (Azure).
 *
 * @example
 * ```ts
 * import { Classification } from "@llm-resilience/core"
 * Classification.requestIdOf({ "Request-Id": "req_011CSHoE" }) // "req_011CSHoE"
 * ```
 * @since 0.1.0
 */
export const requestIdOf = (input: RateLimitSnapshot.HeaderInput): string | undefined =>
  headers.requestId(headers.lookup(input))

// ---------------------------------------------------------------------------------------------------------
// identifiers seen in bodies (error.type / error.code / error.status, lower-cased)
// ---------------------------------------------------------------------------------------------------------

const set = (...xs: Array<string>): ReadonlySet<string> => new Set(xs)

const quotaIds = set(
  "insufficient_quota",
  "credit_balance_exhausted",
  "organization_spend_limit_exceeded",
  "project_spend_limit_exceeded",
  "organization_usage_limit_exceeded",
  "billing_hard_limit_reached",
  "billing_not_active",
  "billing_error",
  "enforced_spend_limit_reached"
)
const contentIds = set("content_filter", "content_policy_violation", "responsibleaipolicyviolation", "invalid_prompt")
const contextIds = set("context_length_exceeded")
const rateIds = set(
  "rate_limit_exceeded",
  "rate_limit_error",
  "slow_down",
  "rate_limited",
  "too_many_requests",
  "resource_exhausted",
  "throttlingexception"
)
const overloadIds = set("overloaded_error", "overloaded", "server_is_overloaded", "engine_overloaded")
const unavailableIds = set("service_unavailable_error", "service_unavailable", "unavailable")
const timeoutIds = set("timeout_error", "timeout", "request_timeout", "deadline_exceeded")
const serverIds = set("api_error", "server_error", "internal_error", "internal_server_error", "conflict_error")
const authIds = set("authentication_error", "invalid_api_key", "invalid_authentication", "unauthenticated")
// Gemini answers a bad key with 400 INVALID_ARGUMENT and this ErrorInfo reason
const keyInvalidIds = set("api_key_invalid")
const permissionIds = set("permission_error", "permission_denied", "unsupported_country_region_territory")
const notFoundIds = set("not_found_error", "model_not_found", "not_found", "deploymentnotfound")
const badRequestIds = set(
  "invalid_request_error",
  "request_too_large",
  "bad_request",
  "invalid_argument",
  "failed_precondition"
)

const has = (tokens: ReadonlyArray<string>, ids: ReadonlySet<string>): boolean => {
  for (const t of tokens) if (ids.has(t)) return true
  return false
}

// Message text refines a decision the type / code / status already points at; it never decides alone.
const quotaText =
  /credit balance is too low|specified api usage limits|exceeded your current quota|spend limit (?:reached|exceeded)|enforced_spend_limit/i
const contextText =
  /prompt is too long|maximum context length|context_length_exceeded|exceeds? (?:the )?(?:model'?s? )?context (?:limit|window|length)|input token count (?:\(\d+\) )?exceeds the maximum number of tokens/i
// Anthropic's filtered prompt or output: a 400 invalid_request_error that says so
const contentText = /\bblocked by content filtering policy\b|\bcontent management policy\b/i
// Azure's capacity 429 ("The system is currently experiencing high demand"): the provider's load, not your quota
const highDemandText = /\bexperiencing high demand\b/i
// Gemini's "limit: 0": the tier has no quota at all for this model, so no wait helps
const zeroLimitText = /\blimit: ?0\b/
const tooLargeText = /^request too large for\b/i
const tokensText =
  /\btokens? per (?:min|minute|hour|day)\b|\b(?:TPM|TPD|ITPM|OTPM)\b|\b(?:input|output) tokens\b|\btoken rate limit\b/i
const requestsText = /\brequests? per (?:min|minute|hour|day)\b|\b(?:RPM|RPD)\b|\b(?:call|request) rate limit\b/i

// ---------------------------------------------------------------------------------------------------------
// classification
// ---------------------------------------------------------------------------------------------------------

type Kind =
  | "RateLimited"
  | "Overloaded"
  | "ServerError"
  | "Timeout"
  | "ConnectionError"
  | "BadRequest"
  | "Authentication"
  | "PermissionDenied"
  | "ModelNotFound"
  | "ContextLengthExceeded"
  | "ContentFiltered"
  | "QuotaExhausted"

const retryableKinds: ReadonlySet<string> = new Set(LlmError.retryableTags)

const isHttpStatus = (status: number): boolean => Number.isInteger(status) && status >= 100 && status <= 999

const byBody = (status: number, body: errorBody.ErrorBody): Kind | undefined => {
  const t = body.tokens
  const msg = body.message ?? ""
  const errorStatus = isHttpStatus(status) && status >= 400
  const requestStatus = status === 400 || status === 413 || status === 422
  if (has(t, quotaIds) || status === 402) return "QuotaExhausted"
  if (has(t, keyInvalidIds)) return "Authentication"
  // Gemini says "You exceeded your current quota" on every RESOURCE_EXHAUSTED: its QuotaFailure window decides
  if (t.includes("resource_exhausted") && (status === 429 || !errorStatus)) {
    return body.quotaWindow === "day" || zeroLimitText.test(msg) ? "QuotaExhausted" : "RateLimited"
  }
  if (
    quotaText.test(msg) &&
    (status === 400 || status === 403 || status === 429 || has(t, badRequestIds) || has(t, rateIds))
  ) {
    return "QuotaExhausted"
  }
  if (has(t, contentIds) || (contentText.test(msg) && requestStatus)) return "ContentFiltered"
  if (has(t, contextIds)) return "ContextLengthExceeded"
  if (contextText.test(msg) && (requestStatus || (!errorStatus && has(t, badRequestIds)))) {
    return "ContextLengthExceeded"
  }
  // OpenAI answers 429 "Request too large for <model> ... on tokens per min" when ONE request exceeds the
  // whole per-minute budget: no wait can make it fit, so it is a bad request, not a rate limit.
  if (status === 429 && tooLargeText.test(msg)) return "BadRequest"
  if (status === 429 && highDemandText.test(msg)) return "Overloaded"
  if (has(t, rateIds) || status === 429) return "RateLimited"
  if (has(t, overloadIds) || status === 529 || status === 503) return "Overloaded"
  if (has(t, timeoutIds)) return "Timeout"
  return undefined
}

const byStatus = (status: number): Kind | undefined => {
  if (!isHttpStatus(status) || status < 300) return undefined
  if (status < 400) return "BadRequest"
  switch (status) {
    case 401:
      return "Authentication"
    case 403:
      return "PermissionDenied"
    case 404:
    case 410:
      return "ModelNotFound"
    case 408:
      return "Timeout"
    case 409:
      return "ServerError"
  }
  return status < 500 ? "BadRequest" : "ServerError"
}

const byGenericType = (tokens: ReadonlyArray<string>): Kind | undefined => {
  if (has(tokens, unavailableIds)) return "Overloaded"
  if (has(tokens, authIds)) return "Authentication"
  if (has(tokens, permissionIds)) return "PermissionDenied"
  if (has(tokens, notFoundIds)) return "ModelNotFound"
  if (has(tokens, badRequestIds)) return "BadRequest"
  if (has(tokens, serverIds)) return "ServerError"
  return undefined
}

const decide = (status: number, body: errorBody.ErrorBody): Kind => {
  const specific = byBody(status, body)
  if (specific !== undefined) return specific
  const s = byStatus(status)
  if (s !== undefined) return s
  const g = byGenericType(body.tokens)
  if (g !== undefined) return g
  // A 2xx carrying an error we cannot name is a provider failure mid-response; no status at all is a
  // transport failure.
  return isHttpStatus(status) && status >= 200 && status < 300 ? "ServerError" : "ConnectionError"
}

const applyShouldRetry = (kind: Kind, shouldRetry: boolean | undefined, rateLike: boolean): Kind => {
  if (shouldRetry === true && !retryableKinds.has(kind)) return rateLike ? "RateLimited" : "ServerError"
  if (shouldRetry === false && retryableKinds.has(kind)) return rateLike ? "QuotaExhausted" : "BadRequest"
  return kind
}

type Window = RateLimitSnapshot.LimitWindow | undefined

const exhausted = (w: Window): boolean => w !== undefined && w.remaining === 0

const maxReset = (ws: ReadonlyArray<Window>): number | undefined => {
  let out: number | undefined
  for (const w of ws) {
    if (exhausted(w) && w?.resetAfterMs !== undefined)
      out = out === undefined ? w.resetAfterMs : Math.max(out, w.resetAfterMs)
  }
  return out
}

const limitKind = (body: errorBody.ErrorBody, snap: RateLimitSnapshot.RateLimitSnapshot): LlmError.RateLimitKind => {
  if (body.limit !== undefined) return body.limit
  for (const t of body.tokens) {
    if (t === "tokens" || t.endsWith("_tokens") || t.startsWith("tokens_")) return "tokens"
    if (t === "requests" || t.startsWith("requests_")) return "requests"
  }
  const msg = body.message ?? ""
  const tok = tokensText.test(msg)
  const req = requestsText.test(msg)
  if (tok !== req) return tok ? "tokens" : "requests"
  const reqOut = exhausted(snap.requests)
  const tokOut = exhausted(snap.tokens) || exhausted(snap.inputTokens) || exhausted(snap.outputTokens)
  if (reqOut && tokOut) {
    const r = maxReset([snap.requests]) ?? 0
    const k = maxReset([snap.tokens, snap.inputTokens, snap.outputTokens]) ?? 0
    return r > k ? "requests" : "tokens"
  }
  return reqOut ? "requests" : tokOut ? "tokens" : "unknown"
}

const messageFor = (status: number, body: errorBody.ErrorBody): string => {
  const line = isHttpStatus(status) ? errorBody.statusLine(status) : "no HTTP response"
  switch (body.shape) {
    case "empty":
      return `${line} (empty body)`
    case "html":
      return body.message === undefined ? `${line} (HTML error page)` : `${line} (HTML error page: ${body.message})`
    default:
      if (body.message !== undefined && body.message.length > 0) return body.message
      return body.tokens.length > 0 ? `${line} (${body.tokens.join(", ")})` : line
  }
}

const classifyUnsafe = (failure: HttpFailure): LlmError.ProviderError => {
  const status = typeof failure.status === "number" ? failure.status : Number.NaN
  const nowMillis = typeof failure.nowMillis === "number" ? failure.nowMillis : Number.NaN
  const get = headers.lookup(failure.headers)
  const body = errorBody.parse(failure.body)
  const fromHeaders = RateLimitSnapshot.fromHeaders(failure.headers, nowMillis)
  // a header's wait wins; a body's (Gemini RetryInfo, "Please retry after N seconds") fills in
  const snap =
    fromHeaders.retryAfterMs === undefined && body.retryAfterMs !== undefined
      ? { ...fromHeaders, retryAfterMs: body.retryAfterMs }
      : fromHeaders
  const rateLike = status === 429 || has(body.tokens, rateIds)
  const kind = applyShouldRetry(decide(status, body), snap.shouldRetry, rateLike)

  const common: {
    message: string
    provider?: string
    model?: string
    status?: number
    requestId?: string
  } = { message: messageFor(status, body) }
  if (typeof failure.provider === "string") common.provider = failure.provider
  if (typeof failure.model === "string") common.model = failure.model
  if (isHttpStatus(status)) common.status = status
  const requestId = headers.requestId(get) ?? body.requestId
  if (requestId !== undefined) common.requestId = requestId

  const hint: { retryAfterMs?: number; rateLimit?: RateLimitSnapshot.RateLimitSnapshot } = {}
  if (snap.retryAfterMs !== undefined) hint.retryAfterMs = snap.retryAfterMs
  if (!RateLimitSnapshot.isEmpty(snap)) hint.rateLimit = snap

  // retryAfterMs comes from Retry-After only: the `*-reset` headers say when a window is FULLY replenished, an
  // upper bound that would over-wait; they stay available in `rateLimit`.
  return ProviderErrors.make(kind, {
    ...common,
    ...hint,
    limit: kind === "RateLimited" ? limitKind(body, snap) : undefined,
    resetAt: kind === "QuotaExhausted" && snap.retryAfterMs !== undefined ? nowMillis + snap.retryAfterMs : undefined
  })
}

/**
 * Classifies a failed provider response into exactly one provider error. Pure and total: any input,
 * including garbage, gives an error value and never throws.
 *
 * Decision order: quota / billing identifiers (and 402) -> `QuotaExhausted`; Gemini's `API_KEY_INVALID` ->
 * `Authentication`; Gemini's `RESOURCE_EXHAUSTED` -> `QuotaExhausted` when its `QuotaFailure` names a
 * per-day quota or the message says `limit: 0`, else `RateLimited`; content-filter identifiers (or a 400
 * saying a content filtering policy blocked it) -> `ContentFiltered`; `context_length_exceeded` or a 400 whose message says the prompt is too long ->
 * `ContextLengthExceeded`; OpenAI's 429 "Request too large for ..." (one request above the whole
 * per-minute budget) -> `BadRequest`; Azure's 429 "experiencing high demand" -> `Overloaded`; rate-limit
 * identifiers or 429 -> `RateLimited` (with which limit); overload
 * identifiers, 529 or 503 -> `Overloaded`; `timeout_error` or 408 -> `Timeout` (phase `total`); then
 * by status (401, 403, 404/410, 409 -> `ServerError`, other 4xx -> `BadRequest`, 5xx -> `ServerError`);
 * then by generic type for in-stream events. `x-should-retry: true` turns a fatal result into
 * `RateLimited` (429) or `ServerError`; `x-should-retry: false` turns a retryable one into
 * `QuotaExhausted` (429) or `BadRequest`.
 *
 * @example
 * ```ts
 * import { Classification } from "@llm-resilience/core"
 * const e = Classification.classify({
 *   status: 429,
 *   headers: { "retry-after": "2", "x-request-id": "req_1" },
 *   body: '{"error":{"message":"Rate limit reached on tokens per min (TPM)","type":"tokens","code":"rate_limit_exceeded"}}',
 *   provider: "openai",
 *   model: "gpt-5.4",
 *   nowMillis: 0
 * })
 * // RateLimited { limit: "tokens", retryAfterMs: 2000, status: 429, requestId: "req_1", ... }
 * ```
 * @since 0.1.0
 */
export const classify = (failure: HttpFailure): LlmError.ProviderError => {
  try {
    return classifyUnsafe(failure)
  } catch {
    return new LlmError.ServerError({ message: "unclassifiable provider failure" })
  }
}

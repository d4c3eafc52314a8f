/**
 * Internal mapping between `effect/ai` and the toolkit's contracts: our messages to a `Prompt`, a
 * `Response.Usage` and finish reason to ours, HTTP response details to a header map the rate-limit parser
 * can read (unwrapping `Redacted` values only for rate-limit headers), and an `AiError` to one
 * {@link LlmError.ProviderError}.
 *
 * @internal
 */
import { DateTime, Duration, Redacted } from "effect"
import type { AiError, Response } from "effect/ai"
import { Prompt } from "effect/ai"
import * as Classification from "../Classification.ts"
import * as LlmError from "../LlmError.ts"
import type { Message } from "../LlmRequest.ts"
import type { FinishReason, Usage } from "../LlmResponse.ts"
import * as headersInternal from "./headers.ts"
import * as ProviderErrors from "./providerError.ts"

type ProviderError = LlmError.ProviderError

// ---------------------------------------------------------------------------------------------------------
// request
// ---------------------------------------------------------------------------------------------------------

/**
 * Our messages as an `effect/ai` prompt, built directly (no Schema decoding per call). `tool` messages carry
 * only text here (no tool-call id or name), which `effect/ai`'s tool-result parts require, so they become
 * user messages, as the Anthropic HTTP provider does.
 */
export const toPrompt = (messages: ReadonlyArray<Message>): Prompt.Prompt => {
  const out: Array<Prompt.Message> = []
  for (const m of messages) {
    switch (m.role) {
      case "system":
        out.push(Prompt.makeMessage("system", { content: m.content }))
        break
      case "assistant":
        out.push(Prompt.makeMessage("assistant", { content: [Prompt.makePart("text", { text: m.content })] }))
        break
      default:
        out.push(Prompt.makeMessage("user", { content: [Prompt.makePart("text", { text: m.content })] }))
    }
  }
  return Prompt.fromMessages(out)
}

// ---------------------------------------------------------------------------------------------------------
// response
// ---------------------------------------------------------------------------------------------------------

/** `effect/ai`'s finish reasons onto ours; `error`, `pause`, `other` and `unknown` become `unknown`. */
export const finishReasonOf = (reason: Response.FinishReason | undefined): FinishReason => {
  switch (reason) {
    case "stop":
      return "stop"
    case "length":
      return "length"
    case "content-filter":
      return "content_filter"
    case "tool-calls":
      return "tool_calls"
    default:
      return "unknown"
  }
}

const count = (n: number | undefined): number | undefined =>
  typeof n === "number" && Number.isFinite(n) && n >= 0 ? n : undefined

const sum = (...ns: Array<number | undefined>): number => {
  let total = 0
  for (const n of ns) total += count(n) ?? 0
  return total
}

/**
 * `Response.Usage` onto ours: input is `inputTokens.total` (else uncached + cache read + cache write),
 * output is `outputTokens.total` (else text + reasoning), cached input is `inputTokens.cacheRead`.
 * Missing or invalid counts count as 0.
 */
export const usageOf = (usage: Response.Usage | undefined): Usage => {
  const i = usage?.inputTokens
  const o = usage?.outputTokens
  const inputTokens = count(i?.total) ?? sum(i?.uncached, i?.cacheRead, i?.cacheWrite)
  const outputTokens = count(o?.total) ?? sum(o?.text, o?.reasoning)
  const cached = count(i?.cacheRead)
  return cached === undefined ? { inputTokens, outputTokens } : { inputTokens, outputTokens, cachedInputTokens: cached }
}

// ---------------------------------------------------------------------------------------------------------
// headers
// ---------------------------------------------------------------------------------------------------------

/** Headers whose `Redacted` values may be unwrapped: they are read as numbers, durations or dates only. */
const rateLimitHeader = /^(?:retry-after(?:-ms)?|x-should-retry|x-ratelimit-[a-z-]+|anthropic-ratelimit-[a-z-]+)$/

/**
 * `HttpResponseDetails.headers` as a plain lower-cased header map. Plain string values are kept; a
 * `Redacted` value is unwrapped only for the rate-limit headers (which are parsed, never echoed) and
 * dropped otherwise, so a redacted value can reach neither an error message nor a request id.
 */
export const headerView = (
  headers: Readonly<Record<string, string | Redacted.Redacted<string>>> | undefined
): Record<string, string> => {
  const out: Record<string, string> = {}
  if (headers === undefined || headers === null || typeof headers !== "object") return out
  for (const key of Object.keys(headers)) {
    const value: unknown = headers[key]
    const name = key.toLowerCase()
    if (typeof value === "string") out[name] = value
    else if (Redacted.isRedacted(value) && rateLimitHeader.test(name)) {
      const inner: unknown = Redacted.value(value)
      if (typeof inner === "string") out[name] = inner
    }
  }
  return out
}

/** The provider's request id from plain (non-redacted) response headers. */
export const requestIdOf = (headers: Record<string, string>): string | undefined =>
  headersInternal.requestId(headersInternal.lookup(headers))

// ---------------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------------

/** Who and when, for an error mapping. */
export interface ErrorContext {
  readonly provider?: string | undefined
  readonly model?: string | undefined
  readonly nowMillis: number
}

type Common = ProviderErrors.Common

const commonOf = (e: ProviderError): Common => {
  const c: Common = { message: e.message }
  if (e.provider !== undefined) c.provider = e.provider
  if (e.model !== undefined) c.model = e.model
  if (e.status !== undefined) c.status = e.status
  if (e.requestId !== undefined) c.requestId = e.requestId
  return c
}

const hintOf = (e: ProviderError): { retryAfterMs?: number; rateLimit?: LlmError.RateLimited["rateLimit"] } => {
  const h: { retryAfterMs?: number; rateLimit?: LlmError.RateLimited["rateLimit"] } = {}
  if ("retryAfterMs" in e && e.retryAfterMs !== undefined) h.retryAfterMs = e.retryAfterMs
  if ("rateLimit" in e && e.rateLimit !== undefined) h.rateLimit = e.rateLimit
  return h
}

/** A `Duration` as finite, non-negative milliseconds, clamped like every header-derived wait. */
const durationMs = (d: Duration.Duration | undefined): number | undefined => {
  if (d === undefined || !Duration.isFinite(d)) return undefined
  const ms = Duration.toMillis(d)
  return Number.isFinite(ms) && ms >= 0 ? Math.min(ms, headersInternal.MAX_DURATION_MS) : undefined
}

const epochMs = (d: DateTime.Utc | undefined): number | undefined => {
  if (d === undefined || !DateTime.isDateTime(d)) return undefined
  const ms = DateTime.toEpochMillis(d)
  return Number.isFinite(ms) ? ms : undefined
}

/**
 * String facts a provider package put in the reason's metadata (e.g. `metadata.openai.errorCode`), read
 * two levels deep: lower-cased error codes / types, and a request id.
 */
const metadataFacts = (metadata: unknown): { codes: Array<string>; requestId?: string } => {
  const facts: { codes: Array<string>; requestId?: string } = { codes: [] }
  const visit = (o: unknown, depth: number): void => {
    if (typeof o !== "object" || o === null || depth > 2) return
    for (const [k, v] of Object.entries(o)) {
      if (typeof v === "string") {
        if (k === "errorCode" || k === "errorType" || k === "code" || k === "type") facts.codes.push(v.toLowerCase())
        else if ((k === "requestId" || k === "request_id") && facts.requestId === undefined) facts.requestId = v
      } else visit(v, depth + 1)
    }
  }
  try {
    visit(metadata, 0)
  } catch {
    // metadata is provider data: a hostile getter must not crash the mapping
  }
  return facts
}

const contextText = /context_length_exceeded|maximum context length|prompt is too long|context (?:window|length|limit)/i

const quotaCodes: ReadonlySet<string> = new Set([
  "insufficient_quota",
  "billing_hard_limit_reached",
  "credit_balance_exhausted",
  "organization_spend_limit_exceeded",
  "project_spend_limit_exceeded"
])

/** A URL without query string or fragment (they can carry keys, e.g. `?key=`). */
const safeUrl = (url: string): string => {
  try {
    const u = new URL(url)
    return `${u.origin}${u.pathname}`
  } catch {
    return "<invalid url>"
  }
}

type Reason = AiError.AiErrorReason

const descriptionOf = (reason: Reason): string =>
  "description" in reason && typeof reason.description === "string" ? reason.description : ""

const reasonMessage = (reason: Reason): string => {
  if (reason._tag === "NetworkError") {
    const what = reason.description === undefined ? "network error" : reason.description
    return `${reason.reason}: ${what} (${reason.method} ${safeUrl(reason.url)})`
  }
  return reason.message
}

/** Maps by the reason alone, for failures without an HTTP response. */
const byReason = (error: AiError.AiError, ctx: ErrorContext): ProviderError => {
  const reason = error.reason
  const facts = metadataFacts("metadata" in reason ? reason.metadata : undefined)
  const common: Common = { message: `${error.module}.${error.method}: ${reasonMessage(reason)}` }
  if (ctx.provider !== undefined) common.provider = ctx.provider
  if (ctx.model !== undefined) common.model = ctx.model
  if (facts.requestId !== undefined) common.requestId = facts.requestId
  const isQuotaCode = facts.codes.some((c) => quotaCodes.has(c))
  const isContext = facts.codes.includes("context_length_exceeded") || contextText.test(descriptionOf(reason))
  switch (reason._tag) {
    case "RateLimitError": {
      if (isQuotaCode) return new LlmError.QuotaExhausted(common)
      const retryAfterMs = durationMs(reason.retryAfter)
      return retryAfterMs === undefined
        ? new LlmError.RateLimited({ ...common, limit: "unknown" })
        : new LlmError.RateLimited({ ...common, limit: "unknown", retryAfterMs })
    }
    case "QuotaExhaustedError": {
      const resetAt = epochMs(reason.resetAt)
      return resetAt === undefined
        ? new LlmError.QuotaExhausted(common)
        : new LlmError.QuotaExhausted({ ...common, resetAt })
    }
    case "AuthenticationError":
      return reason.kind === "InsufficientPermissions"
        ? new LlmError.PermissionDenied(common)
        : new LlmError.Authentication(common)
    case "ContentPolicyError":
      return new LlmError.ContentFiltered(common)
    case "InvalidRequestError":
      return isContext ? new LlmError.ContextLengthExceeded(common) : new LlmError.BadRequest(common)
    case "NetworkError":
      // Only a transport failure is transient; a body that cannot be encoded or a malformed URL is a bug in
      // the request or the configuration, as `NetworkError.isRetryable` also says.
      return reason.reason === "TransportError" ? new LlmError.ConnectionError(common) : new LlmError.BadRequest(common)
    case "InternalProviderError":
    case "InvalidResponseError":
    case "InvalidOutputError":
    case "StructuredOutputError":
    case "UnknownError":
      // The provider answered something unusable or failed in a way nobody named: treat it like a 5xx, so
      // retries (bounded by the retry budget) and the breaker see it.
      return new LlmError.ServerError(common)
    default:
      // Schema, tool and user-input reasons: the request (as the adapter built it) cannot succeed.
      return new LlmError.BadRequest(common)
  }
}

/**
 * Maps with the HTTP response: the core classifier decides, from status, headers and body, exactly as for
 * our own HTTP providers. Where the classifier can only give a generic answer (`BadRequest`,
 * `ServerError`) and the provider package named a specific fatal condition, the reason refines it; a
 * quota reason also overrides a `RateLimited` unless the provider sent `x-should-retry: true`.
 */
const withHttp = (
  error: AiError.AiError,
  response: { readonly status: number; readonly headers: Readonly<Record<string, string | Redacted.Redacted<string>>> },
  body: string | undefined,
  ctx: ErrorContext
): ProviderError => {
  const reason = error.reason
  const headers = headerView(response.headers)
  const classified = Classification.classify({
    status: response.status,
    headers,
    body: body ?? "",
    provider: ctx.provider,
    model: ctx.model,
    nowMillis: ctx.nowMillis
  })
  const common = commonOf(classified)
  if (common.requestId === undefined) {
    const id = metadataFacts("metadata" in reason ? reason.metadata : undefined).requestId
    if (id !== undefined) common.requestId = id
  }
  const generic = classified._tag === "BadRequest" || classified._tag === "ServerError"
  const shouldRetry = "rateLimit" in classified ? classified.rateLimit?.shouldRetry : undefined
  switch (reason._tag) {
    case "QuotaExhaustedError":
      if ((generic || classified._tag === "RateLimited") && shouldRetry !== true) {
        const resetAt =
          epochMs(reason.resetAt) ??
          (classified._tag === "RateLimited" && classified.retryAfterMs !== undefined
            ? ctx.nowMillis + classified.retryAfterMs
            : undefined)
        return ProviderErrors.make("QuotaExhausted", { ...common, resetAt })
      }
      break
    case "ContentPolicyError":
      if (generic) return new LlmError.ContentFiltered(common)
      break
    case "InvalidRequestError":
      if (classified._tag === "BadRequest" && contextText.test(descriptionOf(reason))) {
        return new LlmError.ContextLengthExceeded(common)
      }
      break
    case "RateLimitError":
      if (classified._tag === "RateLimited" && classified.retryAfterMs === undefined) {
        const retryAfterMs = durationMs(reason.retryAfter)
        if (retryAfterMs !== undefined) {
          return new LlmError.RateLimited({ ...common, ...hintOf(classified), retryAfterMs, limit: classified.limit })
        }
      }
      break
  }
  if (common.requestId !== classified.requestId) {
    // only the request id was filled in from metadata: rebuild the same kind with it
    return rebuild(classified, common)
  }
  return classified
}

const rebuild = (e: ProviderError, common: Common): ProviderError => ProviderErrors.make(e._tag, { ...e, ...common })

/** Maps any `AiError` to one provider error. Total: never throws. */
export const fromAiError = (error: AiError.AiError, ctx: ErrorContext): ProviderError => {
  try {
    const reason = error.reason
    const http = "http" in reason ? reason.http : undefined
    if (http?.response !== undefined) return withHttp(error, http.response, http.body, ctx)
    return byReason(error, ctx)
  } catch {
    const common: Common = { message: "unmappable effect/ai failure" }
    if (ctx.provider !== undefined) common.provider = ctx.provider
    if (ctx.model !== undefined) common.model = ctx.model
    return new LlmError.ServerError(common)
  }
}

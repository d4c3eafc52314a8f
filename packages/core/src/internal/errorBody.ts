/**
 * Internal: reads a provider error body (OpenAI, Anthropic, Azure OpenAI, Gemini, OpenAI-compatible servers,
 * proxy pages) into the few facts classification needs. Total: any string (or non-string) gives a result,
 * never a throw.
 *
 * @internal
 */
import { goDuration, secondsToMs } from "./headers.ts"

/** Longest message kept on an error. */
export const MAX_MESSAGE_LENGTH = 500

/** Bodies longer than this are not parsed as JSON (an error body is small; a huge one is garbage). */
const MAX_JSON_LENGTH = 1_000_000

/**
 * What a body told us. `tokens` are the lower-cased `type` / `code` / `status` identifiers it carried (and
 * Gemini `ErrorInfo` reasons). The optional hints come from Gemini `details` and from message text:
 *
 * - `retryAfterMs`: a `RetryInfo.retryDelay` (`"34.4s"`), else "Please retry in 45.57s" / "retry after 20
 *   seconds" in the message;
 * - `quotaWindow`: the window of a `QuotaFailure` violation (`...PerDay...` -> `day`, `...PerMinute...` ->
 *   `minute`), the longest one when several;
 * - `limit`: whether that violation counts tokens or requests.
 */
export interface ErrorBody {
  readonly shape: "empty" | "html" | "json" | "text"
  readonly tokens: ReadonlyArray<string>
  readonly message: string | undefined
  readonly requestId: string | undefined
  readonly retryAfterMs?: number | undefined
  readonly quotaWindow?: "minute" | "day" | undefined
  readonly limit?: "tokens" | "requests" | undefined
}

const emptyBody: ErrorBody = { shape: "empty", tokens: [], message: undefined, requestId: undefined }

/** "Please retry in 45.57s." (Gemini), "Please retry after 20 seconds." (Azure). */
const retryText = /\bretry (?:in|after) (\d{1,9}(?:\.\d{1,6})?) ?(ms|s|sec|secs|seconds?)\b/i

/** Collapses whitespace, drops control characters and caps the length (without splitting a surrogate pair). */
export const cleanMessage = (s: string, max: number = MAX_MESSAGE_LENGTH): string => {
  // eslint-disable-next-line no-control-regex -- stripping control characters is the point
  const flat = s.replace(/[\u0000-\u001f\u007f-\u009f\s]+/g, " ").trim()
  if (flat.length <= max) return flat
  let cut = max - 1
  const code = flat.charCodeAt(cut - 1)
  if (code >= 0xd800 && code <= 0xdbff) cut -= 1
  return `${flat.slice(0, cut)}…`
}

const htmlStart = /^(?:<!doctype\s+html|<html[\s>]|<head[\s>]|<body[\s>]|<\?xml|<!--)/i
const titleTag = /<title[^>]*>([^<]{0,300})<\/title>/i
const h1Tag = /<h1[^>]*>([^<]{0,300})<\/h1>/i

const isHtml = (trimmed: string): boolean =>
  htmlStart.test(trimmed) || (trimmed[0] === "<" && /<\/(?:html|body|head|title|center|h1)>/i.test(trimmed))

const asString = (u: unknown): string | undefined =>
  typeof u === "string" ? u : typeof u === "number" && Number.isFinite(u) ? String(u) : undefined

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const pushToken = (tokens: Array<string>, u: unknown): void => {
  const s = asString(u)
  if (s === undefined) return
  const t = s.trim().toLowerCase()
  if (t.length > 0 && t.length <= 100 && !/^\d+$/.test(t) && t !== "error") tokens.push(t)
}

const messageOf = (u: unknown): string | undefined => {
  if (typeof u === "string") return u
  if (u === undefined || u === null) return undefined
  try {
    return JSON.stringify(u)
  } catch {
    return undefined
  }
}

interface Hints {
  retryAfterMs?: number
  quotaWindow?: "minute" | "day"
  limit?: "tokens" | "requests"
}

/** Gemini's `error.details`: `google.rpc.ErrorInfo` reasons, `RetryInfo` delays, `QuotaFailure` windows. */
const readDetails = (details: unknown, tokens: Array<string>, hints: Hints): void => {
  if (!Array.isArray(details)) return
  for (const d of details.slice(0, 20)) {
    if (!isRecord(d) || typeof d["@type"] !== "string") continue
    const type = d["@type"]
    if (type.endsWith("google.rpc.ErrorInfo")) pushToken(tokens, d.reason)
    else if (type.endsWith("google.rpc.RetryInfo") && typeof d.retryDelay === "string") {
      // a protobuf Duration in JSON: decimal seconds with an `s` suffix
      const ms = goDuration(d.retryDelay)
      if (ms !== undefined) hints.retryAfterMs = ms
    } else if (type.endsWith("google.rpc.QuotaFailure") && Array.isArray(d.violations)) {
      for (const v of d.violations.slice(0, 20)) {
        if (!isRecord(v)) continue
        const id = `${asString(v.quotaId) ?? ""} ${asString(v.quotaMetric) ?? ""}`
        const window = /perday|daily|per_day/i.test(id)
          ? "day"
          : /perminute|per_minute/i.test(id)
            ? "minute"
            : undefined
        if (window === "day" || (window === "minute" && hints.quotaWindow === undefined)) hints.quotaWindow = window
        const limit = /token/i.test(id) ? "tokens" : /request/i.test(id) ? "requests" : undefined
        if (hints.limit === undefined && limit !== undefined) hints.limit = limit
      }
    }
  }
}

const retryFromText = (message: string | undefined): number | undefined => {
  const m = message === undefined ? null : retryText.exec(message)
  if (m === null) return undefined
  const n = Number(m[1])
  return m[2].toLowerCase() === "ms" ? secondsToMs(n / 1000) : secondsToMs(n)
}

const fromJson = (json: unknown): ErrorBody | undefined => {
  let obj = json
  if (Array.isArray(obj)) obj = obj[0]
  if (!isRecord(obj)) return undefined
  const tokens: Array<string> = []
  const hints: Hints = {}
  let message: string | undefined
  const err = obj.error
  if (isRecord(err)) {
    // OpenAI {"error":{message,type,param,code}}, Anthropic {"type":"error","error":{type,message}},
    // Gemini {"error":{code,message,status,details}}, Azure {"error":{code,innererror|inner_error:{code}}}
    pushToken(tokens, err.type)
    pushToken(tokens, err.code)
    pushToken(tokens, err.status)
    if (isRecord(err.innererror)) pushToken(tokens, err.innererror.code)
    if (isRecord(err.inner_error)) pushToken(tokens, err.inner_error.code)
    readDetails(err.details, tokens, hints)
    message = messageOf(err.message)
  } else if (typeof err === "string") {
    message = err
    pushToken(tokens, obj.type)
    pushToken(tokens, obj.code)
  } else {
    // vLLM-style {"object":"error","message","type","code"}, FastAPI {"detail": ...}
    pushToken(tokens, obj.type)
    pushToken(tokens, obj.code)
    pushToken(tokens, obj.status)
    message = messageOf(obj.message) ?? messageOf(obj.detail) ?? messageOf(obj.error_message)
  }
  const rid = asString(obj.request_id) ?? (isRecord(err) ? asString(err.request_id) : undefined)
  if (hints.retryAfterMs === undefined) {
    const fromText = retryFromText(message)
    if (fromText !== undefined) hints.retryAfterMs = fromText
  }
  return {
    shape: "json",
    tokens,
    message: message === undefined ? undefined : cleanMessage(message),
    requestId: rid !== undefined && rid.length > 0 && rid.length <= 200 ? rid : undefined,
    ...hints
  }
}

const tryJson = (text: string): unknown => {
  if (text.length > MAX_JSON_LENGTH) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** The JSON of the first SSE `data:` line that holds an object, for bodies passed as raw SSE events. */
const sseData = (text: string): string | undefined => {
  for (const line of text.split(/\r?\n/, 50)) {
    if (line.startsWith("data:")) {
      const rest = line.slice(5).trim()
      if (rest[0] === "{") return rest
    }
  }
  return undefined
}

/** Reads an error body. */
export const parse = (body: unknown): ErrorBody => {
  if (typeof body !== "string") return emptyBody
  const trimmed = body.trim()
  if (trimmed.length === 0) return emptyBody
  const first = trimmed[0]
  if (first === "{" || first === "[") {
    const parsed = fromJson(tryJson(trimmed))
    if (parsed !== undefined) return parsed
  } else if (first === "<") {
    if (isHtml(trimmed)) {
      const title = titleTag.exec(trimmed)?.[1] ?? h1Tag.exec(trimmed)?.[1]
      const t = title === undefined ? "" : cleanMessage(title, 120)
      return { shape: "html", tokens: [], message: t.length > 0 ? t : undefined, requestId: undefined }
    }
  } else if (trimmed.startsWith("event:") || trimmed.startsWith("data:")) {
    const data = sseData(trimmed)
    if (data !== undefined) {
      const parsed = fromJson(tryJson(data))
      if (parsed !== undefined) return parsed
    }
  }
  return { shape: "text", tokens: [], message: cleanMessage(trimmed), requestId: undefined }
}

const reasons: Readonly<Record<number, string>> = {
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  413: "Content Too Large",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  529: "Overloaded"
}

/** `HTTP 502 Bad Gateway`, or `HTTP 599` for statuses without a well-known phrase. */
export const statusLine = (status: number): string => {
  const r = reasons[status]
  return r === undefined ? `HTTP ${status}` : `HTTP ${status} ${r}`
}

/**
 * The chaos server's fault catalogue: names, descriptions, and how a request picks one.
 *
 * @internal
 */

/** Every fault the chaos server can inject, with a one-line description (printed by the CLI). */
export const faultDescriptions = {
  "rate-limit": "429 transient rate limit with Retry-After and rate-limit headers",
  "rate-limit-no-retry-after": "429 transient rate limit without Retry-After or rate-limit headers",
  "insufficient-quota": "429 quota / spend limit exhausted (permanent; Gemini: a per-day quota)",
  overloaded: "overloaded: 529 overloaded_error (Anthropic), 503 (OpenAI; Gemini UNAVAILABLE), 429 high demand (Azure)",
  "server-error": "500 JSON server error",
  "bad-gateway": "502 HTML error page, as a proxy sends it",
  "service-unavailable": "503 HTML error page, as a proxy sends it",
  authentication: "401 invalid API key",
  "permission-denied": "403 permission error",
  "model-not-found": "404 model not found",
  "bad-request": "400 invalid request",
  "context-length": "400 context length exceeded",
  "content-filter":
    "400: the provider's content filter rejects the prompt (Gemini: a 200 whose prompt is blocked for `SAFETY`)",
  "prefill-rejected":
    "400 when the conversation ends with an assistant message (the model takes no prefill), else a normal answer",
  "connection-reset": "the TCP connection is reset before any response",
  "no-response": "the request is read, then nothing at all (not even headers) for `stallMs`, then the connection drops",
  "slow-headers": "response headers arrive after `slowHeadersMs`, then a normal answer",
  "slow-first-token": "headers at once, the first chunk of the answer after `slowHeadersMs`, then the rest",
  "stall-first-byte": "headers arrive at once, then no byte for `stallMs`, then the connection drops",
  "stall-mid-stream": "`partialChunks` of the answer, then no byte for `stallMs`, then the connection drops",
  "truncated-stream": "`partialChunks` of the answer, then a clean close without the end marker",
  "stream-error": "`partialChunks` of the answer, then an in-stream `error` event (HTTP 200)",
  "malformed-json": "200 with a body that is not valid JSON; streams: one such event among good ones",
  "no-end-marker":
    "streams: the whole answer with its finish reason and usage, then a clean close without the end marker",
  refusal:
    "the model refuses: OpenAI `refusal` content, Anthropic `stop_reason: refusal`, Azure `content_filter`, Gemini `SAFETY`",
  "keep-alive-only": "a stream of SSE keep-alive comments for `stallMs`, no content, then close",
  "wrong-content-type": "200 with text/html instead of JSON / SSE",
  "huge-body": "200 with a 10 MB body",
  "garbage-headers": "429 whose Retry-After and rate-limit headers are garbage"
} as const

/** A fault name. */
export type Fault = keyof typeof faultDescriptions

/** A scenario step: a fault, or `ok` for a normal answer. */
export type Step = Fault | "ok"

/** All fault names, in catalogue order. */
export const faults: ReadonlyArray<Fault> = Object.keys(faultDescriptions) as Array<Fault>

const faultSet: ReadonlySet<string> = new Set(faults)

/** Whether a string names a fault (or `ok`). */
export const isStep = (u: string): u is Step => u === "ok" || faultSet.has(u)

/** The request header that picks a fault. */
export const faultHeader = "x-chaos-fault"

/** The request header that overrides the fault's delay (stall, slow headers) in milliseconds. */
export const delayHeader = "x-chaos-delay-ms"

const faultPath = /^\/fault\/([^/]+)(\/.*)$/

/** Splits `/fault/<name>/v1/...` into the fault name and the wire path. */
export const splitFaultPath = (pathname: string): { readonly fault: string | undefined; readonly path: string } => {
  const match = faultPath.exec(pathname)
  return match === null ? { fault: undefined, path: pathname } : { fault: match[1], path: match[2] }
}

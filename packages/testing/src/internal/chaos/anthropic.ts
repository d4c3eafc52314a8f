/**
 * The Anthropic Messages wire format as the chaos server speaks it: `POST /v1/messages`, `message` bodies,
 * named SSE events from `message_start` to `message_stop`, Anthropic's error bodies and
 * `anthropic-ratelimit-*` headers.
 *
 * @internal
 */
import type { Answer, ErrorKind, ErrorReply, Frames, ParsedRequest, Wire } from "./wire.ts"
import { forcedTool, frame, promptChars, readCommon } from "./wire.ts"

const parseRequest = (json: unknown): ParsedRequest | string => {
  const common = readCommon(json)
  if (typeof common === "string") return common
  const { body } = common
  if (typeof body.max_tokens !== "number") return "max_tokens: Field required"
  return {
    model: common.model,
    stream: body.stream === true,
    includeUsage: true,
    promptChars: promptChars(common.messages, body.system),
    maxTokens: body.max_tokens,
    tool: forcedTool(body)
  }
}

const stopReason = (a: Answer) =>
  a.finish === "length"
    ? "max_tokens"
    : a.finish === "refusal"
      ? "refusal"
      : a.tool !== undefined
        ? "tool_use"
        : "end_turn"

const usage = (a: Answer, outputTokens: number) => ({
  input_tokens: a.inputTokens - a.cachedInputTokens,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: a.cachedInputTokens,
  output_tokens: outputTokens,
  service_tier: "standard"
})

/** The tool input of whole arguments (cut short by `max_tokens`: what parses, else nothing). */
const inputOf = (args: string): unknown => {
  try {
    return JSON.parse(args)
  } catch {
    return {}
  }
}

const event = (type: string, payload: object) => frame(JSON.stringify({ type, ...payload }), type)

const frames = (a: Answer): Frames => ({
  head: [
    event("message_start", {
      message: {
        id: a.id,
        type: "message",
        role: "assistant",
        model: a.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: usage(a, 1)
      }
    }),
    event("content_block_start", {
      index: 0,
      content_block:
        a.tool === undefined
          ? { type: "text", text: "" }
          : { type: "tool_use", id: a.tool.id, name: a.tool.name, input: {} }
    }),
    event("ping", {})
  ],
  deltas: a.chunks.map((text) =>
    event("content_block_delta", {
      index: 0,
      delta: a.tool === undefined ? { type: "text_delta", text } : { type: "input_json_delta", partial_json: text }
    })
  ),
  tail: [
    event("content_block_stop", { index: 0 }),
    event("message_delta", {
      delta: { stop_reason: stopReason(a), stop_sequence: null },
      usage: { output_tokens: a.outputTokens }
    }),
    event("message_stop", {})
  ]
})

const errorBody = (type: string, message: string, requestId: string, details?: object) => ({
  type: "error",
  error: details === undefined ? { type, message } : { type, message, details },
  request_id: requestId
})

const rateLimitHeaders = (nowMillis: number, exhausted: boolean, retryAfterSeconds: number) => {
  const soon = new Date(nowMillis + 1000).toISOString().replace(/\.\d{3}Z$/, "Z")
  const later = new Date(nowMillis + retryAfterSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z")
  const headers: Record<string, string> = {}
  const windows = [
    ["requests", 4000],
    ["tokens", 400000],
    ["input-tokens", 300000],
    ["output-tokens", 100000]
  ] as const
  for (const [name, limit] of windows) {
    const drained = exhausted && name === "requests"
    headers[`anthropic-ratelimit-${name}-limit`] = String(limit)
    headers[`anthropic-ratelimit-${name}-remaining`] = drained ? "0" : String(limit - 1)
    headers[`anthropic-ratelimit-${name}-reset`] = drained ? later : soon
  }
  return headers
}

const shouldRetry = (value: boolean) => ({ "x-should-retry": value ? "true" : "false" })

const error = (
  kind: ErrorKind,
  c: {
    readonly requestId: string
    readonly model: string
    readonly retryAfterSeconds: number
    readonly nowMillis: number
  }
): ErrorReply => {
  switch (kind) {
    case "rate-limit":
      return {
        status: 429,
        headers: {
          ...rateLimitHeaders(c.nowMillis, true, c.retryAfterSeconds),
          "retry-after": String(c.retryAfterSeconds),
          ...shouldRetry(true)
        },
        body: errorBody(
          "rate_limit_error",
          "This request would exceed the rate limit for your organization of 4,000 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
          c.requestId
        )
      }
    case "insufficient-quota":
      return {
        status: 429,
        headers: shouldRetry(false),
        body: errorBody(
          "rate_limit_error",
          "You have reached your specified workspace API usage limits. You will regain access on 2099-01-01 at 00:00 UTC.",
          c.requestId,
          { error_code: "enforced_spend_limit_reached" }
        )
      }
    case "overloaded":
      return { status: 529, headers: shouldRetry(true), body: errorBody("overloaded_error", "Overloaded", c.requestId) }
    case "server-error":
      return {
        status: 500,
        headers: shouldRetry(true),
        body: errorBody("api_error", "Internal server error", c.requestId)
      }
    case "authentication":
      return {
        status: 401,
        headers: shouldRetry(false),
        body: errorBody("authentication_error", "invalid x-api-key", c.requestId)
      }
    case "permission-denied":
      return {
        status: 403,
        headers: shouldRetry(false),
        body: errorBody(
          "permission_error",
          "Your API key does not have permission to use the specified resource.",
          c.requestId
        )
      }
    case "model-not-found":
      return {
        status: 404,
        headers: shouldRetry(false),
        body: errorBody("not_found_error", `model: ${c.model}`, c.requestId)
      }
    case "bad-request":
      return {
        status: 400,
        headers: shouldRetry(false),
        body: errorBody("invalid_request_error", "temperature: Input should be less than or equal to 1", c.requestId)
      }
    case "context-length":
      return {
        status: 400,
        headers: shouldRetry(false),
        body: errorBody("invalid_request_error", "prompt is too long: 212345 tokens > 200000 maximum", c.requestId)
      }
    case "content-filter":
      return {
        status: 400,
        headers: shouldRetry(false),
        body: errorBody("invalid_request_error", "Output blocked by content filtering policy", c.requestId)
      }
  }
}

/** The Anthropic Messages wire format. */
export const anthropicWire: Wire = {
  name: "anthropic",
  match: (path) => (path === "/v1/messages" ? {} : undefined),
  requestIdHeader: "request-id",
  apiKeyHeader: "x-api-key",
  endMarker: true,
  streamErrorKind: "overloaded",
  answerId: (sequence) => `msg_chaos${sequence}`,
  parseRequest,
  body: (a) => ({
    id: a.id,
    type: "message",
    role: "assistant",
    model: a.model,
    content: [
      a.tool === undefined
        ? { type: "text", text: a.chunks.join("") }
        : { type: "tool_use", id: a.tool.id, name: a.tool.name, input: inputOf(a.chunks.join("")) }
    ],
    stop_reason: stopReason(a),
    stop_sequence: null,
    usage: usage(a, a.outputTokens)
  }),
  frames,
  errorFrame: (requestId) => frame(JSON.stringify(errorBody("overloaded_error", "Overloaded", requestId)), "error"),
  error,
  rateLimitHeaders,
  garbageRateLimitHeaders: {
    "retry-after": "tomorrow-ish",
    "anthropic-ratelimit-requests-limit": "many",
    "anthropic-ratelimit-requests-remaining": "NaN",
    "anthropic-ratelimit-requests-reset": "not-a-date",
    "anthropic-ratelimit-tokens-limit": "",
    "anthropic-ratelimit-tokens-remaining": "-1e400",
    "anthropic-ratelimit-tokens-reset": "2024-13-45T99:99:99Z",
    "x-should-retry": "maybe"
  },
  invalidRequest: (message, requestId) => errorBody("invalid_request_error", message, requestId)
}

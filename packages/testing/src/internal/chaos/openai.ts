/**
 * The OpenAI Chat Completions wire format as the chaos server speaks it: `POST /v1/chat/completions`,
 * `chat.completion` bodies, `chat.completion.chunk` SSE frames closed by `data: [DONE]`, and OpenAI's error
 * bodies and `x-ratelimit-*` headers.
 *
 * @internal
 */
import type { Answer, ErrorKind, ErrorReply, Frames, ParsedRequest, Wire } from "./wire.ts"
import { forcedTool, frame, promptChars, readCommon } from "./wire.ts"

const fingerprint = "fp_chaos"

const usage = (a: Answer) => ({
  prompt_tokens: a.inputTokens,
  completion_tokens: a.outputTokens,
  total_tokens: a.inputTokens + a.outputTokens,
  prompt_tokens_details: { cached_tokens: a.cachedInputTokens, audio_tokens: 0 },
  completion_tokens_details: {
    reasoning_tokens: 0,
    audio_tokens: 0,
    accepted_prediction_tokens: 0,
    rejected_prediction_tokens: 0
  }
})

const parseRequest = (json: unknown): ParsedRequest | string => {
  const common = readCommon(json)
  if (typeof common === "string") return common
  const { body } = common
  const options = body.stream_options
  const maxTokens =
    typeof body.max_completion_tokens === "number"
      ? body.max_completion_tokens
      : typeof body.max_tokens === "number"
        ? body.max_tokens
        : undefined
  return {
    model: common.model,
    stream: body.stream === true,
    includeUsage:
      options !== null &&
      typeof options === "object" &&
      (options as { include_usage?: unknown }).include_usage === true,
    promptChars: promptChars(common.messages),
    maxTokens,
    tool: forcedTool(body)
  }
}

/**
 * The `chat.completion.chunk` frames of an answer: `usage` is left out when `undefined`. The envelope (id,
 * model ...) is the same in every chunk and is serialized once: serializing it in each chunk was the largest
 * cost of the chaos server's own code in a streamed answer.
 */
const chunkFrames = (a: Answer) => {
  const envelope = JSON.stringify({
    id: a.id,
    object: "chat.completion.chunk",
    created: Math.floor(a.nowMillis / 1000),
    model: a.model,
    service_tier: "default",
    system_fingerprint: fingerprint
  }).slice(0, -1)
  return (choices: ReadonlyArray<object>, usage: object | null | undefined) =>
    frame(
      `${envelope},"choices":${JSON.stringify(choices)}${usage === undefined ? "" : `,"usage":${JSON.stringify(usage)}`}}`
    )
}

/** OpenAI reports a refusal as content, not as a finish reason. */
const finishReason = (a: Answer) =>
  a.finish === "refusal" ? "stop" : a.tool !== undefined && a.finish === "stop" ? "tool_calls" : a.finish

const frames = (a: Answer): Frames => {
  // with `include_usage`, every chunk carries `usage: null` but the last
  const pending = a.includeUsage ? null : undefined
  const chunkFrame = chunkFrames(a)
  const chunk = (delta: object, finish: string | null) =>
    chunkFrame([{ index: 0, delta, logprobs: null, finish_reason: finish }], pending)
  const refused = a.finish === "refusal"
  const tail = [chunk({}, finishReason(a))]
  if (a.includeUsage) tail.push(chunkFrame([], usage(a)))
  tail.push(frame("[DONE]"))
  const tool = a.tool
  if (tool !== undefined) {
    const call = (fields: object) => chunk({ tool_calls: [{ index: 0, ...fields }] }, null)
    return {
      head: [
        chunk({ role: "assistant", content: null, refusal: null }, null),
        call({ id: tool.id, type: "function", function: { name: tool.name, arguments: "" } })
      ],
      deltas: a.chunks.map((args) => call({ function: { arguments: args } })),
      tail
    }
  }
  return {
    head: [
      chunk(refused ? { role: "assistant", refusal: "" } : { role: "assistant", content: "", refusal: null }, null)
    ],
    deltas: a.chunks.map((text) => chunk(refused ? { refusal: text } : { content: text }, null)),
    tail
  }
}

const errorBody = (message: string, type: string, code: string | null, param: string | null = null) => ({
  error: { message, type, param, code }
})

const resetDuration = (seconds: number): string =>
  seconds >= 60 ? `${Math.floor(seconds / 60)}m${seconds % 60}s` : `${seconds}s`

const rateLimitHeaders = (_nowMillis: number, exhausted: boolean, retryAfterSeconds: number) => ({
  "x-ratelimit-limit-requests": "10000",
  "x-ratelimit-remaining-requests": exhausted ? "0" : "9999",
  "x-ratelimit-reset-requests": exhausted ? resetDuration(retryAfterSeconds) : "6ms",
  "x-ratelimit-limit-tokens": "200000",
  "x-ratelimit-remaining-tokens": exhausted ? "0" : "199500",
  "x-ratelimit-reset-tokens": exhausted ? resetDuration(retryAfterSeconds) : "150ms"
})

const error = (
  kind: ErrorKind,
  c: { readonly model: string; readonly retryAfterSeconds: number; readonly nowMillis: number }
): ErrorReply => {
  switch (kind) {
    case "rate-limit":
      return {
        status: 429,
        headers: {
          ...rateLimitHeaders(c.nowMillis, true, c.retryAfterSeconds),
          "retry-after": String(c.retryAfterSeconds)
        },
        body: errorBody(
          `Rate limit reached for ${c.model} in organization org-chaos on requests per min (RPM): Limit 10000, Used 10000, Requested 1. Please try again in ${c.retryAfterSeconds}s. Visit https://platform.openai.com/account/rate-limits to learn more.`,
          "requests",
          "rate_limit_exceeded"
        )
      }
    case "insufficient-quota":
      return {
        status: 429,
        headers: {},
        body: errorBody(
          "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
          "insufficient_quota",
          "insufficient_quota"
        )
      }
    case "overloaded":
      return {
        status: 503,
        headers: {},
        body: errorBody("The engine is currently overloaded, please try again later.", "server_error", null)
      }
    case "server-error":
      return {
        status: 500,
        headers: {},
        body: errorBody(
          "The server had an error while processing your request. Sorry about that!",
          "server_error",
          null
        )
      }
    case "authentication":
      return {
        status: 401,
        headers: {},
        body: errorBody(
          "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
          "invalid_request_error",
          "invalid_api_key"
        )
      }
    case "permission-denied":
      return {
        status: 403,
        headers: {},
        body: errorBody("You are not allowed to sample from this model", "invalid_request_error", null)
      }
    case "model-not-found":
      return {
        status: 404,
        headers: {},
        body: errorBody(
          `The model \`${c.model}\` does not exist or you do not have access to it.`,
          "invalid_request_error",
          "model_not_found",
          "model"
        )
      }
    case "bad-request":
      return {
        status: 400,
        headers: {},
        body: errorBody(
          "Invalid value for 'temperature': expected a number between 0 and 2.",
          "invalid_request_error",
          "invalid_value",
          "temperature"
        )
      }
    case "context-length":
      return {
        status: 400,
        headers: {},
        body: errorBody(
          "This model's maximum context length is 128000 tokens. However, your messages resulted in 131072 tokens. Please reduce the length of the messages.",
          "invalid_request_error",
          "context_length_exceeded",
          "messages"
        )
      }
    case "content-filter":
      return {
        status: 400,
        headers: {},
        body: errorBody(
          "Invalid prompt: your prompt was flagged as potentially violating our usage policy. Please try again with a different prompt.",
          "invalid_request_error",
          "invalid_prompt"
        )
      }
  }
}

/** The OpenAI Chat Completions wire format. */
export const openAiWire: Wire = {
  name: "openai",
  match: (path) => (path === "/v1/chat/completions" ? {} : undefined),
  requestIdHeader: "x-request-id",
  apiKeyHeader: "api-key",
  endMarker: true,
  streamErrorKind: "server-error",
  answerId: (sequence) => `chatcmpl-chaos${sequence}`,
  parseRequest,
  body: (a) => ({
    id: a.id,
    object: "chat.completion",
    created: Math.floor(a.nowMillis / 1000),
    model: a.model,
    choices: [
      {
        index: 0,
        message:
          a.tool !== undefined
            ? {
                role: "assistant",
                content: null,
                refusal: null,
                annotations: [],
                tool_calls: [
                  { id: a.tool.id, type: "function", function: { name: a.tool.name, arguments: a.chunks.join("") } }
                ]
              }
            : a.finish === "refusal"
              ? { role: "assistant", content: null, refusal: a.chunks.join(""), annotations: [] }
              : { role: "assistant", content: a.chunks.join(""), refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: finishReason(a)
      }
    ],
    usage: usage(a),
    service_tier: "default",
    system_fingerprint: fingerprint
  }),
  frames,
  errorFrame: () =>
    frame(
      JSON.stringify(
        errorBody("The server had an error while processing your request. Sorry about that!", "server_error", null)
      )
    ),
  error,
  rateLimitHeaders,
  garbageRateLimitHeaders: {
    "retry-after": "soon, maybe",
    "retry-after-ms": "NaN",
    "x-ratelimit-limit-requests": "lots",
    "x-ratelimit-remaining-requests": "-",
    "x-ratelimit-reset-requests": "5 fortnights",
    "x-ratelimit-limit-tokens": "1e999",
    "x-ratelimit-remaining-tokens": "",
    "x-ratelimit-reset-tokens": "1h2x3s",
    "x-should-retry": "perhaps"
  },
  invalidRequest: (message) => errorBody(message, "invalid_request_error", null)
}

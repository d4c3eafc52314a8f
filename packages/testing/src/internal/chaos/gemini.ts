/**
 * The Google Gemini wire format as the chaos server speaks it: `POST /{version}/models/{model}:generateContent`
 * and `:streamGenerateContent?alt=sse`, `GenerateContentResponse` bodies, SSE events that are each a
 * `GenerateContentResponse` with a text delta and running `usageMetadata`, the last one with the
 * `finishReason` (no end marker), `x-goog-api-key` auth, and Google's error envelope (`code`, `message`,
 * `status`, `details` with `QuotaFailure`, `RetryInfo`, `ErrorInfo`). The `refusal` fault is a `SAFETY`
 * finish with no text.
 *
 * @internal
 */
import type { Answer, ErrorContext, ErrorKind, ErrorReply, Frames, ParsedRequest, RouteInfo, Wire } from "./wire.ts"
import { isObject } from "./wire.ts"

const methodPath = /^\/(v1beta|v1|v1alpha)\/models\/([^/:]+):(generateContent|streamGenerateContent)$/

const match = (path: string): RouteInfo | undefined => {
  const m = methodPath.exec(path)
  return m === null ? undefined : { model: decodeURIComponent(m[2]), stream: m[3] === "streamGenerateContent" }
}

const partsChars = (content: unknown): number => {
  if (!isObject(content) || !Array.isArray(content.parts)) return 0
  let n = 0
  for (const part of content.parts) if (isObject(part) && typeof part.text === "string") n += part.text.length
  return n
}

const parseRequest = (json: unknown, route: RouteInfo): ParsedRequest | string => {
  if (!isObject(json)) return "Invalid JSON payload received. Expected an object."
  if (!Array.isArray(json.contents)) return "* GenerateContentRequest.contents: contents is not specified"
  let chars = partsChars(json.systemInstruction)
  for (const content of json.contents) chars += partsChars(content)
  const config = json.generationConfig
  return {
    model: route.model ?? "unknown",
    stream: route.stream === true,
    includeUsage: true,
    promptChars: chars,
    maxTokens: isObject(config) && typeof config.maxOutputTokens === "number" ? config.maxOutputTokens : undefined
  }
}

const usage = (a: Answer, outputTokens: number) => ({
  promptTokenCount: a.inputTokens,
  candidatesTokenCount: outputTokens,
  totalTokenCount: a.inputTokens + outputTokens,
  ...(a.cachedInputTokens > 0 ? { cachedContentTokenCount: a.cachedInputTokens } : {}),
  promptTokensDetails: [{ modality: "TEXT", tokenCount: a.inputTokens }]
})

const blocked = (a: Answer) => a.finish === "refusal"

const safetyRatings = [
  { category: "HARM_CATEGORY_HATE_SPEECH", probability: "NEGLIGIBLE" },
  { category: "HARM_CATEGORY_DANGEROUS_CONTENT", probability: "HIGH", blocked: true },
  { category: "HARM_CATEGORY_HARASSMENT", probability: "NEGLIGIBLE" },
  { category: "HARM_CATEGORY_SEXUALLY_EXPLICIT", probability: "NEGLIGIBLE" }
]

const finishReason = (a: Answer) => (blocked(a) ? "SAFETY" : a.finish === "length" ? "MAX_TOKENS" : "STOP")

const envelope = (a: Answer, candidate: object, outputTokens: number) => ({
  candidates: [{ ...candidate, index: 0 }],
  usageMetadata: usage(a, outputTokens),
  modelVersion: a.model,
  responseId: a.id
})

const body = (a: Answer) =>
  envelope(
    a,
    blocked(a)
      ? { finishReason: "SAFETY", safetyRatings }
      : { content: { parts: [{ text: a.chunks.join("") }], role: "model" }, finishReason: finishReason(a) },
    a.outputTokens
  )

/** Gemini frames end with `\r\n\r\n`. */
const frame = (data: unknown) => `data: ${JSON.stringify(data)}\r\n\r\n`

const frames = (a: Answer): Frames => ({
  head: [],
  deltas: blocked(a)
    ? []
    : a.chunks.map((text, i) => frame(envelope(a, { content: { parts: [{ text }], role: "model" } }, i + 1))),
  tail: [
    frame(
      envelope(
        a,
        blocked(a)
          ? { finishReason: "SAFETY", safetyRatings }
          : { content: { parts: [{ text: "" }], role: "model" }, finishReason: finishReason(a) },
        a.outputTokens
      )
    )
  ]
})

const googleError = (code: number, status: string, message: string, details?: ReadonlyArray<unknown>) => ({
  error: { code, message, status, ...(details === undefined ? {} : { details }) }
})

const quotaFailure = (c: ErrorContext, quotaId: string, metric: string) => ({
  "@type": "type.googleapis.com/google.rpc.QuotaFailure",
  violations: [
    {
      quotaMetric: `generativelanguage.googleapis.com/${metric}`,
      quotaId,
      quotaDimensions: { location: "global", model: c.model },
      quotaValue: "15"
    }
  ]
})

const help = {
  "@type": "type.googleapis.com/google.rpc.Help",
  links: [
    { description: "Learn more about Gemini API quotas", url: "https://ai.google.dev/gemini-api/docs/rate-limits" }
  ]
}

const retryInfo = (seconds: number) => ({
  "@type": "type.googleapis.com/google.rpc.RetryInfo",
  retryDelay: `${seconds}s`
})

const quotaMessage = (c: ErrorContext, metric: string, seconds: number) =>
  `You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for metric: generativelanguage.googleapis.com/${metric}, limit: 15, model: ${c.model}\nPlease retry in ${seconds}s.`

const error = (kind: ErrorKind, c: ErrorContext): ErrorReply => {
  const reply = (code: number, status: string, message: string, details?: ReadonlyArray<unknown>): ErrorReply => ({
    status: code,
    headers: {},
    body: googleError(code, status, message, details)
  })
  const exhausted = (quotaId: string, seconds: number) => {
    const metric = "generate_content_free_tier_requests"
    return reply(429, "RESOURCE_EXHAUSTED", quotaMessage(c, metric, seconds), [
      quotaFailure(c, quotaId, metric),
      help,
      retryInfo(seconds)
    ])
  }
  switch (kind) {
    case "rate-limit":
      return exhausted("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", c.retryAfterSeconds)
    case "insufficient-quota":
      return exhausted("GenerateRequestsPerDayPerProjectPerModel-FreeTier", 43_200)
    case "overloaded":
      return reply(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    case "server-error":
      return reply(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
      )
    case "authentication":
      return reply(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          reason: "API_KEY_INVALID",
          domain: "googleapis.com",
          metadata: { service: "generativelanguage.googleapis.com" }
        },
        { "@type": "type.googleapis.com/google.rpc.LocalizedMessage", locale: "en-US", message: "API key not valid." }
      ])
    case "permission-denied":
      return reply(403, "PERMISSION_DENIED", "The caller does not have permission")
    case "model-not-found":
      return reply(
        404,
        "NOT_FOUND",
        `models/${c.model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.`
      )
    case "bad-request":
      return reply(
        400,
        "INVALID_ARGUMENT",
        "Invalid JSON payload received. Unknown name \"temprature\" at 'generation_config': Cannot find field."
      )
    case "context-length":
      return reply(
        400,
        "INVALID_ARGUMENT",
        "The input token count (1234567) exceeds the maximum number of tokens allowed (1048576)."
      )
    case "content-filter":
      // Gemini does not refuse with an error: it answers 200 with no candidates and the prompt's block reason
      return {
        status: 200,
        headers: {},
        body: {
          promptFeedback: { blockReason: "SAFETY", safetyRatings },
          usageMetadata: { promptTokenCount: 8, totalTokenCount: 8 },
          modelVersion: c.model
        }
      }
  }
}

/** The Gemini wire format. */
export const geminiWire: Wire = {
  name: "gemini",
  match,
  requestIdHeader: undefined,
  apiKeyHeader: "x-goog-api-key",
  endMarker: false,
  streamErrorKind: "overloaded",
  answerId: (sequence) => `chaos${String(sequence).padStart(8, "0")}`,
  parseRequest,
  body,
  frames,
  errorFrame: () => frame(googleError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")),
  error,
  rateLimitHeaders: () => ({}),
  garbageRateLimitHeaders: { "retry-after": "soon, maybe", "retry-after-ms": "NaN", "x-should-retry": "perhaps" },
  invalidRequest: (message) => googleError(400, "INVALID_ARGUMENT", message)
}

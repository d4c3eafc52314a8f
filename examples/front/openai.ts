/**
 * A thin OpenAI-compatible HTTP front over a resilient `LlmProvider`: `POST /v1/chat/completions`, whole
 * answers and SSE streams, so that any OpenAI client (the official SDKs, curl, another language) can call
 * through `Resilience` by changing its base URL.
 *
 * - The request body is read as Chat Completions (`model`, `messages` with text content, `stream`,
 *   `stream_options.include_usage`, `max_completion_tokens` / `max_tokens`, `temperature`); the
 *   `x-llm-path` header picks the `Resilience` path (its retry profile, timeouts and fallback plan).
 * - A whole answer is a `chat.completion` whose `model` and `usage` are those of the step that answered.
 * - A stream is held until its first chunk, so a failure before any text gets the HTTP status and error
 *   body an OpenAI client expects (a `ContentFiltered` is a 400 `content_filter`, a `RateLimited` a 429
 *   with `retry-after` ...). After that, chunks are forwarded as they come; the finish chunk (and the usage
 *   chunk, when asked for) carry the answering model, and a failure is an in-stream `error` event, which the
 *   official SDKs raise as an `APIError`.
 *
 * Kept small on purpose: a gateway adds authentication, tenants and the other endpoints around it.
 */
import { type LlmError, LlmProvider, type LlmRequest, type LlmResponse, type Resilience } from "@llm-resilience/core"
import { Effect, Exit, Layer, Option, Schema, Scope, Sink, Stream } from "effect"
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "effect/http"

/**
 * The part of a Chat Completions request the front reads; other fields are ignored.
 */
export const ChatRequest = Schema.Struct({
  model: Schema.NonEmptyString,
  messages: Schema.NonEmptyArray(
    Schema.Struct({ role: Schema.Literals(["system", "developer", "user", "assistant"]), content: Schema.String })
  ),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  stream_options: Schema.optional(
    Schema.NullOr(Schema.Struct({ include_usage: Schema.optional(Schema.NullOr(Schema.Boolean)) }))
  ),
  max_completion_tokens: Schema.optional(Schema.NullOr(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)))),
  max_tokens: Schema.optional(Schema.NullOr(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)))),
  temperature: Schema.optional(Schema.NullOr(Schema.Finite))
})

export type ChatRequest = typeof ChatRequest.Type

/**
 * The baseline the front is tried with: two retries, within 30 s (the interactive profile's 10 s deadline
 * would leave no room to retry after a 15 s first-token timeout), attempts bounded at 30 s, one fallback model
 * (the providers named `primary` and `fallback`). First-token and idle timeouts keep the toolkit's defaults. A
 * stream that fails after its first chunk carries on with the answer on the next attempt (`continue`):
 * the caller of a chat front is reading it as it comes. `models` declares facts of the models (a context
 * window, whether one accepts assistant prefill).
 */
export const baseline = (
  primaryModel: string,
  fallbackModel: string,
  models?: Resilience.Config["models"]
): Resilience.Config => ({
  models,
  paths: {
    default: {
      retry: { extends: "interactive", maxRetries: 2, deadlineMs: 30_000 },
      timeouts: { totalMs: 30_000 },
      midStream: "continue"
    }
  },
  fallback: [
    { provider: "primary", model: primaryModel },
    { provider: "fallback", model: fallbackModel }
  ]
})

/** The header that names the `Resilience` path of a request. */
export const pathHeader = "x-llm-path"

/** The toolkit's request for a Chat Completions body. */
export const toLlmRequest = (body: ChatRequest, path: string | undefined): LlmRequest.LlmRequest => ({
  model: body.model,
  messages: body.messages.map((m) => ({ role: m.role === "developer" ? "system" : m.role, content: m.content })),
  maxOutputTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
  temperature: body.temperature ?? undefined,
  metadata: path === undefined ? undefined : { path }
})

const usageOf = (u: LlmResponse.Usage) => ({
  prompt_tokens: u.inputTokens,
  completion_tokens: u.outputTokens,
  total_tokens: u.inputTokens + u.outputTokens,
  prompt_tokens_details: { cached_tokens: u.cachedInputTokens ?? 0 }
})

const finishOf = (reason: LlmResponse.FinishReason) => (reason === "unknown" ? "stop" : reason)

// ---------------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------------

/** The HTTP status and OpenAI `error.code` a caller gets for a toolkit error. */
export const statusOf = (e: LlmError.LlmError): { readonly status: number; readonly code: string } => {
  switch (e._tag) {
    case "BadRequest":
    case "OutputInvalid":
      return { status: 400, code: "invalid_request" }
    case "ContextLengthExceeded":
      return { status: 400, code: "context_length_exceeded" }
    case "ContentFiltered":
      return { status: 400, code: "content_filter" }
    case "RateLimited":
    case "RetryAfterTooLong":
      return { status: 429, code: "rate_limit_exceeded" }
    case "QuotaExhausted":
    case "BudgetExceeded":
    case "TurnLimitExceeded":
    case "LoopDetected":
      return { status: 429, code: "quota_exceeded" }
    case "AcceptedForLater":
      return { status: 202, code: "accepted_for_later" }
    case "Timeout":
    case "DeadlineExceeded":
      return { status: 504, code: "timeout" }
    case "Overloaded":
    case "CircuitOpen":
    case "AdmissionRejected":
    case "RetryBudgetExhausted":
      return { status: 503, code: "unavailable" }
    default:
      // the provider failed (5xx, connection, truncated stream) or refused this front (key, model)
      return { status: 502, code: "upstream_error" }
  }
}

const errorBody = (e: LlmError.LlmError) => ({
  error: { message: e.message, type: e._tag, param: null, code: statusOf(e).code }
})

const errorResponse = (e: LlmError.LlmError) => {
  const retryAfterMs = "retryAfterMs" in e ? e.retryAfterMs : undefined
  return HttpServerResponse.jsonUnsafe(errorBody(e), {
    status: statusOf(e).status,
    headers: typeof retryAfterMs === "number" ? { "retry-after": String(Math.ceil(retryAfterMs / 1000)) } : {}
  })
}

const badRequest = (message: string) =>
  HttpServerResponse.jsonUnsafe(
    { error: { message, type: "invalid_request_error", param: null, code: null } },
    { status: 400 }
  )

// ---------------------------------------------------------------------------------------------------------
// answers
// ---------------------------------------------------------------------------------------------------------

let sequence = 0
const completionId = () => `chatcmpl-front${++sequence}`

const completion = (id: string, created: number, r: LlmResponse.LlmResponse) => ({
  id,
  object: "chat.completion",
  created,
  model: r.model,
  choices: [
    {
      index: 0,
      message: { role: "assistant", content: r.text, refusal: null },
      finish_reason: finishOf(r.finishReason)
    }
  ],
  usage: usageOf(r.usage)
})

const encoder = new TextEncoder()
const data = (payload: unknown) => encoder.encode(`data: ${JSON.stringify(payload)}\n\n`)

/** The SSE frames of one stream chunk: a text delta, or the finish (then usage, when asked for, then `[DONE]`). */
const frames = (
  base: { readonly id: string; readonly created: number; readonly model: string },
  includeUsage: boolean
) => {
  const chunk = (model: string, delta: object, finish: string | null) => ({
    id: base.id,
    object: "chat.completion.chunk",
    created: base.created,
    model,
    choices: [{ index: 0, delta, finish_reason: finish }]
  })
  return (c: LlmResponse.StreamChunk): ReadonlyArray<Uint8Array> =>
    c._tag === "TextDelta"
      ? [data(chunk(base.model, { content: c.text }, null))]
      : [
          data(chunk(c.model, {}, finishOf(c.finishReason))),
          ...(includeUsage ? [data({ ...chunk(c.model, {}, null), choices: [], usage: usageOf(c.usage) })] : []),
          encoder.encode("data: [DONE]\n\n")
        ]
}

const streamed = Effect.fnUntraced(function* (
  provider: LlmProvider.LlmProvider["Service"],
  request: LlmRequest.LlmRequest,
  includeUsage: boolean,
  created: number
) {
  // Hold the response until the first chunk: a failure before it becomes a plain HTTP error. The rest of the
  // stream lives in `scope`, closed when the body ends (or the client goes away).
  const scope = yield* Scope.make()
  const peeled = yield* Stream.peel(provider.stream(request), Sink.head()).pipe(
    Scope.provide(scope),
    Effect.onInterrupt(() => Scope.close(scope, Exit.void)),
    Effect.exit
  )
  if (Exit.isFailure(peeled)) {
    yield* Scope.close(scope, Exit.void)
    const error = Option.getOrUndefined(Exit.findErrorOption(peeled))
    // no typed error: a defect or an interruption, passed on as it is
    return error === undefined ? yield* Effect.orDie(Effect.failCause(peeled.cause)) : errorResponse(error)
  }
  const [first, rest] = peeled.value
  const id = completionId()
  const toFrames = frames({ id, created, model: request.model }, includeUsage)
  const role = data({
    id,
    object: "chat.completion.chunk",
    created,
    model: request.model,
    choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]
  })
  const body = Stream.concat(Stream.fromIterable(Option.toArray(first)), rest).pipe(
    Stream.flatMap((c) => Stream.fromIterable(toFrames(c))),
    Stream.catch((e: LlmError.LlmError) => Stream.succeed(data(errorBody(e)))),
    Stream.ensuring(Scope.close(scope, Exit.void))
  )
  return HttpServerResponse.stream(Stream.concat(Stream.succeed(role), body), {
    contentType: "text/event-stream; charset=utf-8",
    headers: { "cache-control": "no-cache" }
  })
})

/**
 * The handler of `POST /v1/chat/completions` over `provider`.
 */
export const handler = (provider: LlmProvider.LlmProvider["Service"]) =>
  Effect.gen(function* () {
    const http = yield* HttpServerRequest.HttpServerRequest
    const decoded = yield* Effect.result(HttpServerRequest.schemaBodyJson(ChatRequest))
    if (decoded._tag === "Failure") return badRequest(`invalid request body: ${decoded.failure.message}`)
    const body = decoded.success
    const request = toLlmRequest(body, http.headers[pathHeader])
    const created = Math.floor((yield* Effect.clockWith((c) => c.currentTimeMillis)) / 1000)
    if (body.stream === true) {
      return yield* streamed(provider, request, body.stream_options?.include_usage === true, created)
    }
    return yield* provider.complete(request).pipe(
      Effect.map((r) => HttpServerResponse.jsonUnsafe(completion(completionId(), created, r))),
      Effect.catch((e) => Effect.succeed(errorResponse(e)))
    )
  })

/**
 * The front's routes over the resilient `LlmProvider` in context.
 */
export const routes: Layer.Layer<never, never, HttpRouter.HttpRouter | LlmProvider.LlmProvider> = HttpRouter.use(
  Effect.fnUntraced(function* (router) {
    const provider = yield* LlmProvider.LlmProvider
    yield* router.add("POST", "/v1/chat/completions", handler(provider))
  })
)

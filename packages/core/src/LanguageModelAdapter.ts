/**
 * An `LlmProvider` built on `effect/ai`'s `LanguageModel`, so that any provider package written for
 * `effect/ai` (OpenAI, Anthropic, Bedrock, OpenRouter ...) can sit under the toolkit's policies.
 *
 * What it maps:
 * - messages: `system`, `user`, `assistant` to the same roles of a `Prompt`; a `tool` message (ours carries
 *   no tool-call id or name, which `effect/ai` tool results require) is sent as a `user` message, as the
 *   Anthropic HTTP provider does;
 * - the response: text, finish reason, usage (cached input tokens from `inputTokens.cacheRead`), the model
 *   from the `response-metadata` part, the request id and the {@link RateLimitSnapshot.RateLimitSnapshot}
 *   from the finish part's HTTP response headers (`Redacted` header values are unwrapped only for the
 *   rate-limit headers, which are parsed, never echoed);
 * - streams: `text-delta` parts become `TextDelta` chunks and the `finish` part becomes `Finish`; a tool
 *   call becomes `ToolCallDelta` chunks, its `tool-params-start` part the first (id and name) and its
 *   `tool-params-delta` parts the pieces of its arguments (calls the provider executes itself are left out;
 *   the adapter passes no toolkit, so `effect/ai` resolves no `tool-call` part); a stream that ends without
 *   a finish part fails with `StreamTruncated`, as does one that loses its connection after its first part;
 * - errors: an `AiError` whose reason carries the HTTP response goes through the core classifier
 *   ({@link Classification.classify}) exactly like our own HTTP providers' failures; without one it is mapped
 *   by its reason (see {@link fromAiError}).
 *
 * What it cannot do: a `LanguageModel` is bound to one model, and output cap, temperature and response
 * format are that model's configuration in the provider package, not per-call options. So the request's
 * `maxOutputTokens`, `temperature` and `responseFormat` are not forwarded, and a request for another model
 * than the bound one fails with `ModelNotFound` instead of silently answering from the bound model (build
 * one adapter per model and let the fallback plan choose). See docs/architecture.md for what the adapter
 * keeps and loses compared with the HTTP providers.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Layer, Option, Schema, Stream } from "effect"
import { AiError, LanguageModel, Model, type Response } from "effect/ai"
import * as internal from "./internal/languageModel.ts"
import * as LlmError from "./LlmError.ts"
import { LlmProvider } from "./LlmProvider.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse, StreamChunk } from "./LlmResponse.ts"
import * as RateLimitSnapshot from "./RateLimitSnapshot.ts"

/**
 * Adapter options.
 *
 * - `provider`: the name used in errors, metrics and breaker keys (e.g. `openai`). Default: the
 *   `Model.ProviderName` in context (set by every `effect/ai` `Model` layer); one of the two is required.
 * - `model`: the model the `LanguageModel` is bound to. Default: the `Model.ModelName` in context. When
 *   known, requests for any other model fail with `ModelNotFound`; when unknown, every request is accepted
 *   and reported under its own `model`.
 *
 * @example
 * ```ts
 * import type { LanguageModelAdapter } from "@llm-resilience/core"
 * const options: LanguageModelAdapter.Options = { provider: "openai", model: "gpt-5.4-mini" }
 * ```
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  provider: Schema.optional(Schema.NonEmptyString),
  model: Schema.optional(Schema.NonEmptyString)
})

/**
 * @since 0.1.0
 */
export type Options = typeof Options.Type

const Resolved = Schema.Struct({
  provider: Schema.NonEmptyString,
  model: Schema.optional(Schema.NonEmptyString)
})

/**
 * What an error mapping needs besides the error: the provider and model to name in it, and when the failure
 * was observed (from `Clock`), to turn dates into waits.
 *
 * @example
 * ```ts
 * import type { LanguageModelAdapter } from "@llm-resilience/core"
 * const context: LanguageModelAdapter.ErrorContext = { provider: "openai", model: "gpt-5.4-mini", nowMillis: 0 }
 * ```
 * @since 0.1.0
 */
export type ErrorContext = internal.ErrorContext

/**
 * Maps an `effect/ai` `AiError` to one provider error of the toolkit's taxonomy. Pure and total.
 *
 * With the HTTP response in the reason (`reason.http.response`), the core classifier decides from status,
 * headers and body, so `which limit`, `x-should-retry`, Retry-After and the rate-limit snapshot are kept;
 * the reason only refines a generic answer (a content-policy reason turns `BadRequest` into
 * `ContentFiltered`, a quota reason turns `RateLimited` or a generic answer into `QuotaExhausted`, an
 * invalid-request reason whose description names the context window gives `ContextLengthExceeded`).
 *
 * Without it, by reason: `RateLimitError` -> `RateLimited` (limit `unknown`, `retryAfterMs` from
 * `retryAfter`); `QuotaExhaustedError` -> `QuotaExhausted` (`resetAt`); `AuthenticationError` ->
 * `Authentication`, or `PermissionDenied` for kind `InsufficientPermissions`; `ContentPolicyError` ->
 * `ContentFiltered`; `InvalidRequestError` -> `BadRequest`, or `ContextLengthExceeded` when its description
 * or metadata code says so; `NetworkError` -> `ConnectionError` for a transport failure, else `BadRequest`;
 * `InternalProviderError`, `InvalidResponseError`, `InvalidOutputError`, `UnknownError` -> `ServerError`;
 * schema, tool and user-input reasons -> `BadRequest`. A request id in the reason's provider metadata
 * (`metadata.<provider>.requestId`) is kept. Messages never contain header values or URL query strings.
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import { AiError } from "effect/ai"
 * import { LanguageModelAdapter } from "@llm-resilience/core"
 *
 * const error = AiError.make({
 *   module: "OpenAiClient",
 *   method: "createResponse",
 *   reason: new AiError.RateLimitError({ retryAfter: Duration.seconds(2) })
 * })
 * LanguageModelAdapter.fromAiError(error, { provider: "openai", model: "gpt-5.4-mini", nowMillis: 0 })
 * // RateLimited { limit: "unknown", retryAfterMs: 2000, provider: "openai", ... }
 * ```
 * @since 0.1.0
 */
export const fromAiError: (error: AiError.AiError, context: ErrorContext) => LlmError.ProviderError =
  internal.fromAiError

const snapshotOf = (
  headers: Record<string, string> | undefined,
  nowMillis: number
): RateLimitSnapshot.RateLimitSnapshot | undefined => {
  if (headers === undefined) return undefined
  const snapshot = RateLimitSnapshot.fromHeaders(headers, nowMillis)
  return RateLimitSnapshot.isEmpty(snapshot) ? undefined : snapshot
}

interface Meta {
  modelId?: string | undefined
  responseId?: string | undefined
}

const readMeta = (meta: Meta, part: Response.ResponseMetadataPart): void => {
  if (typeof part.modelId === "string" && part.modelId.length > 0) meta.modelId = part.modelId
  if (typeof part.id === "string" && part.id.length > 0) meta.responseId = part.id
}

/** The finish facts shared by `LlmResponse` and the `Finish` chunk. */
const finishFields = (
  finish: Response.FinishPart | undefined,
  meta: Meta,
  provider: string,
  model: string,
  nowMillis: number
) => {
  const headers = finish?.response === undefined ? undefined : internal.headerView(finish.response.headers)
  const requestId = (headers === undefined ? undefined : internal.requestIdOf(headers)) ?? meta.responseId
  const rateLimit = snapshotOf(headers, nowMillis)
  return {
    finishReason: internal.finishReasonOf(finish?.reason),
    usage: internal.usageOf(finish?.usage),
    provider,
    model: meta.modelId ?? model,
    ...(requestId === undefined ? {} : { requestId }),
    ...(rateLimit === undefined ? {} : { rateLimit })
  }
}

const makeService = (
  languageModel: LanguageModel.LanguageModel,
  provider: string,
  boundModel: string | undefined
): LlmProvider["Service"] => {
  const mismatch = (request: LlmRequest): LlmError.ModelNotFound | undefined =>
    boundModel === undefined || request.model === boundModel
      ? undefined
      : new LlmError.ModelNotFound({
          message: `this LanguageModel is bound to model "${boundModel}"; build one adapter per model`,
          provider,
          model: request.model
        })

  const failWith = (model: string) => (error: AiError.AiError) =>
    Effect.flatMap(Clock.currentTimeMillis, (nowMillis) =>
      Effect.fail(internal.fromAiError(error, { provider, model, nowMillis }))
    )

  const complete = Effect.fn("LanguageModelAdapter.complete")(function* (request: LlmRequest) {
    const wrong = mismatch(request)
    if (wrong !== undefined) return yield* Effect.fail(wrong)
    const model = boundModel ?? request.model
    const response = yield* Effect.catch(
      languageModel.generateText({ prompt: internal.toPrompt(request.messages) }),
      failWith(model)
    )
    const nowMillis = yield* Clock.currentTimeMillis
    let text = ""
    let finish: Response.FinishPart | undefined
    const meta: Meta = {}
    for (const part of response.content) {
      if (part.type === "text") text += part.text
      else if (part.type === "finish") finish = part
      else if (part.type === "response-metadata") readMeta(meta, part)
    }
    const out: LlmResponse = { text, ...finishFields(finish, meta, provider, model, nowMillis) }
    return out
  })

  const stream = (request: LlmRequest): Stream.Stream<StreamChunk, LlmError.ProviderError> =>
    Stream.unwrap(
      Clock.clockWith((clock) =>
        Effect.sync(() => {
          const wrong = mismatch(request)
          if (wrong !== undefined) return Stream.fail(wrong)
          const model = boundModel ?? request.model
          const meta: Meta = {}
          let parts = 0
          let received = 0
          let finished = false
          /** The ids of the tool calls started so far: a call's `ToolCallDelta.index` is its position. */
          const calls: Array<string> = []
          const piece = (chunk: StreamChunk): Effect.Effect<ReadonlyArray<StreamChunk>> => {
            received++
            return Effect.succeed([chunk])
          }
          const truncated = (message: string) =>
            new LlmError.StreamTruncated({ message, provider, model, receivedChunks: received })

          const onPart = (
            part: Response.StreamPart<{}>
          ): Effect.Effect<ReadonlyArray<StreamChunk>, LlmError.ProviderError> => {
            parts++
            switch (part.type) {
              case "text-delta":
                if (part.delta.length === 0) return Effect.succeed([])
                return piece({ _tag: "TextDelta", text: part.delta })
              case "tool-params-start":
                if (part.providerExecuted) return Effect.succeed([])
                return piece({
                  _tag: "ToolCallDelta",
                  index: calls.push(part.id) - 1,
                  id: part.id,
                  name: part.name,
                  arguments: ""
                })
              case "tool-params-delta": {
                const index = calls.indexOf(part.id)
                if (index === -1 || part.delta.length === 0) return Effect.succeed([])
                return piece({ _tag: "ToolCallDelta", index, arguments: part.delta })
              }
              case "response-metadata":
                readMeta(meta, part)
                return Effect.succeed([])
              case "finish": {
                finished = true
                const fields = finishFields(part, meta, provider, model, clock.currentTimeMillisUnsafe())
                return Effect.succeed([{ _tag: "Finish", ...fields }])
              }
              case "error":
                return Effect.fail(
                  AiError.isAiError(part.error)
                    ? internal.fromAiError(part.error, { provider, model, nowMillis: clock.currentTimeMillisUnsafe() })
                    : truncated(`in-stream error event after ${received} chunks`)
                )
              default:
                return Effect.succeed([])
            }
          }

          return languageModel.streamText({ prompt: internal.toPrompt(request.messages) }).pipe(
            Stream.mapError((error): LlmError.ProviderError => {
              const mapped = internal.fromAiError(error, {
                provider,
                model,
                nowMillis: clock.currentTimeMillisUnsafe()
              })
              // Once parts have arrived the response had started: a lost connection truncated it.
              return parts > 0 && mapped._tag === "ConnectionError"
                ? truncated(`connection lost mid-stream after ${received} chunks: ${mapped.message}`)
                : mapped
            }),
            Stream.mapEffect(onPart),
            Stream.flattenIterable,
            Stream.takeUntil((chunk) => chunk._tag === "Finish"),
            Stream.concat(
              Stream.suspend(() =>
                finished
                  ? Stream.empty
                  : Stream.fail(truncated(`stream ended without a finish part after ${received} chunks`))
              )
            )
          )
        })
      )
    )

  return LlmProvider.of({ name: provider, complete, stream })
}

/**
 * Adapts a given `LanguageModel`. The provider and model names come from `options`, else from the
 * `Model.ProviderName` / `Model.ModelName` in context; fails with a `SchemaError` naming the field when
 * `provider` is missing from both, or an option is invalid.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { LanguageModel } from "effect/ai"
 * import { LanguageModelAdapter } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const model = yield* LanguageModel.make({
 *     generateText: () =>
 *       Effect.succeed([
 *         { type: "text", text: "Hi!" },
 *         { type: "finish", reason: "stop", usage: { inputTokens: { total: 3 }, outputTokens: { total: 2 } } }
 *       ]),
 *     streamText: () => Stream.empty
 *   })
 *   const llm = yield* LanguageModelAdapter.fromLanguageModel(model, { provider: "fake", model: "m" })
 *   return yield* llm.complete({ model: "m", messages: [{ role: "user", content: "Hello" }] })
 * })
 * ```
 * @since 0.1.0
 */
export const fromLanguageModel: (
  languageModel: LanguageModel.LanguageModel,
  options?: Options
) => Effect.Effect<LlmProvider["Service"], Schema.SchemaError> = Effect.fnUntraced(function* (
  languageModel: LanguageModel.LanguageModel,
  options?: Options
) {
  const providerName = yield* Effect.serviceOption(Model.ProviderName)
  const modelName = yield* Effect.serviceOption(Model.ModelName)
  const resolved = yield* Schema.decodeUnknownEffect(Resolved)(
    {
      provider: options?.provider ?? Option.getOrUndefined(providerName),
      model: options?.model ?? Option.getOrUndefined(modelName)
    },
    { errors: "all" }
  )
  return makeService(languageModel, resolved.provider, resolved.model)
})

/**
 * Adapts the `LanguageModel` in context (see {@link fromLanguageModel} for the options).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LanguageModelAdapter } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const llm = yield* LanguageModelAdapter.make({ provider: "openai", model: "gpt-5.4-mini" })
 *   return yield* llm.complete({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hello" }] })
 * })
 * ```
 * @since 0.1.0
 */
export const make = (
  options?: Options
): Effect.Effect<LlmProvider["Service"], Schema.SchemaError, LanguageModel.LanguageModel> =>
  Effect.flatMap(LanguageModel.LanguageModel, (languageModel) => fromLanguageModel(languageModel, options))

/**
 * The `LanguageModel` in context as the toolkit's `LlmProvider` service.
 *
 * @example
 * ```ts
 * import { LanguageModelAdapter } from "@llm-resilience/core"
 *
 * // Needs a LanguageModel; with an effect/ai provider package, provider and model come from its Model layer:
 * //   LanguageModelAdapter.layer().pipe(Layer.provide(OpenAiLanguageModel.model("gpt-5.4-mini")))
 * const Llm = LanguageModelAdapter.layer({ provider: "openai", model: "gpt-5.4-mini" })
 * ```
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<LlmProvider, Schema.SchemaError, LanguageModel.LanguageModel> =>
  Layer.effect(LlmProvider, make(options))

/**
 * An `LlmProvider` for OpenAI's Responses API (`POST /responses`), on `effect/http`'s `HttpClient`.
 *
 * - `complete` posts the messages as `input` items; `stream` adds `stream: true`. The answer is the
 *   `output_text` of the response's `message` items (reasoning and other items are skipped).
 * - Finish reasons: `completed` -> `stop` (`tool_calls` with a `function_call` item),
 *   `incomplete_details.reason` `max_output_tokens` -> `length`, `content_filter` -> `content_filter`. A
 *   refusal (`refusal` content, `response.refusal.delta`) is the text, with finish reason `content_filter`.
 * - A stream is complete only at its terminal event (`response.completed` / `response.incomplete`), which
 *   carries the usage; a body that ends before it is `StreamTruncated`. `error` and `response.failed`
 *   events (inside an HTTP 200 stream) and `status: failed` bodies go through the core classifier, as do
 *   non-2xx responses; rate-limit headers (`x-ratelimit-*`, `retry-after(-ms)`) are read as for Chat
 *   Completions. One malformed event is skipped and counted.
 * - No retries and no timeouts inside: those are toolkit stages.
 *
 * The API key is a `Redacted`; it never appears in errors, logs or spans.
 *
 * @since 0.1.0
 */
import { LlmProvider } from "@llm-resilience/core"
import { type Config, type Effect, Layer, type Redacted, Schema } from "effect"
import type { HttpClient } from "effect/http"
import { HttpUrl, joinUrl } from "./internal/options.ts"
import { commonFields, makeWith } from "./internal/provider.ts"
import { responsesCodec } from "./internal/responses.ts"

/**
 * The default base URL: `https://api.openai.com/v1`.
 *
 * @since 0.1.0
 */
export const defaultBaseUrl = "https://api.openai.com/v1"

/**
 * Provider options (all optional; the API key is passed apart, see {@link MakeOptions}):
 *
 * - `name` (default `openai`): the provider name in errors, metrics and breaker keys.
 * - `baseUrl` (default `$OPENAI_BASE_URL`, else {@link defaultBaseUrl}): everything before `/responses`.
 * - `organization`, `project`: sent as `OpenAI-Organization` / `OpenAI-Project`.
 * - `headers`: extra request headers; `urlParams`: query parameters on every call.
 * - `maxResponseBytes` (default 8 MiB), `maxErrorBodyBytes` (1 MiB), `maxEventBytes` (1 MiB): read caps.
 * - `tracePrompts` (default `false`): record the request body (the prompt) on the provider's span.
 *
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  ...commonFields,
  baseUrl: Schema.optional(HttpUrl),
  organization: Schema.optional(Schema.String),
  project: Schema.optional(Schema.String),
  urlParams: Schema.optional(Schema.Record(Schema.String, Schema.String))
})

/**
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * What {@link make} and {@link layer} accept: the {@link Options} plus the API key. Without `apiKey`, the
 * key is read from the `OPENAI_API_KEY` config (environment) as a `Redacted`.
 *
 * @since 0.1.0
 */
export interface MakeOptions extends Partial<typeof Options.Encoded> {
  readonly apiKey?: Redacted.Redacted<string> | undefined
}

/**
 * Builds the provider service on the `HttpClient` in context. Fails with a `SchemaError` naming the field
 * for invalid options, or a `ConfigError` when no key is given and `OPENAI_API_KEY` is unset.
 *
 * @example
 * ```ts
 * import { NodeHttpClient } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { OpenAiResponsesProvider } from "@llm-resilience/providers"
 *
 * const program = Effect.gen(function*() {
 *   const openai = yield* OpenAiResponsesProvider.make() // key from OPENAI_API_KEY
 *   return yield* openai.complete({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] })
 * }).pipe(Effect.provide(NodeHttpClient.layerUndici))
 * ```
 * @since 0.1.0
 */
export const make: (
  options?: MakeOptions
) => Effect.Effect<LlmProvider.LlmProvider["Service"], Schema.SchemaError | Config.ConfigError, HttpClient.HttpClient> =
  makeWith(
    Schema.decodeUnknownEffect(Options),
    (o) => ({ baseUrl: o.baseUrl, envPrefix: "OPENAI", defaultBaseUrl }),
    (o, baseUrl) => ({
      defaultName: "openai",
      spanPrefix: "OpenAiResponsesProvider",
      url: joinUrl(baseUrl, "responses"),
      urlParams: o.urlParams,
      headers: {
        ...(o.organization === undefined ? {} : { "openai-organization": o.organization }),
        ...(o.project === undefined ? {} : { "openai-project": o.project })
      },
      codec: responsesCodec,
      keyHeader: "authorization"
    })
  )

/**
 * The provider as a layer of the core `LlmProvider` service. Needs an `HttpClient`
 * (`NodeHttpClient.layerUndici` from `@effect/platform-node`).
 *
 * @example
 * ```ts
 * import { NodeHttpClient } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { OpenAiResponsesProvider } from "@llm-resilience/providers"
 *
 * const ResponsesLive = OpenAiResponsesProvider.layer().pipe(Layer.provide(NodeHttpClient.layerUndici))
 * ```
 * @since 0.1.0
 */
export const layer = (
  options?: MakeOptions
): Layer.Layer<LlmProvider.LlmProvider, Schema.SchemaError | Config.ConfigError, HttpClient.HttpClient> =>
  Layer.effect(LlmProvider.LlmProvider, make(options))

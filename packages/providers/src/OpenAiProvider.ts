/**
 * An `LlmProvider` for OpenAI's Chat Completions API and every server that speaks it (vLLM, Ollama,
 * LM Studio, Azure OpenAI, OpenRouter, Together, Groq ...), on `effect/http`'s `HttpClient`.
 *
 * - `complete` posts `/chat/completions`; `stream` adds `stream: true` and
 *   `stream_options.include_usage`, so the final chunk carries usage.
 * - Every failure becomes a typed `LlmError`: non-2xx responses through the core classifier (status,
 *   body, headers), transport failures as `ConnectionError`, a stream that ends before its
 *   `finish_reason` (or `data: [DONE]`) as `StreamTruncated`, an in-stream `{"error": ...}` chunk through
 *   the classifier, malformed or oversized bodies, mostly malformed streams and wrong content types as
 *   `ServerError`. One malformed stream event is skipped and counted (`llm_stream_malformed_events`).
 * - A refusal (`message.refusal`, `delta.refusal`) is the text, with finish reason `content_filter`.
 * - Every response (success or failure) has its rate-limit headers read into a `RateLimitSnapshot`, and
 *   its `x-request-id` kept.
 * - No retries and no timeouts inside: those are toolkit stages.
 *
 * The API key is a `Redacted`; it never appears in errors, logs or spans.
 *
 * @since 0.1.0
 */
import { LlmProvider } from "@llm-resilience/core"
import { type Config, type Effect, Layer, type Redacted, Schema } from "effect"
import type { HttpClient } from "effect/http"
import { openAiCodec } from "./internal/openai.ts"
import { HttpUrl, joinUrl } from "./internal/options.ts"
import { commonFields, makeWith } from "./internal/provider.ts"

/**
 * The default base URL: `https://api.openai.com/v1`.
 *
 * @since 0.1.0
 */
export const defaultBaseUrl = "https://api.openai.com/v1"

/**
 * Provider options (all optional; the API key is passed apart, see {@link MakeOptions}):
 *
 * - `name` (default `openai`): the provider name in errors, metrics and breaker keys; give each
 *   OpenAI-compatible endpoint its own (`vllm`, `openrouter` ...).
 * - `baseUrl` (default `$OPENAI_BASE_URL`, else {@link defaultBaseUrl}): everything before
 *   `/chat/completions`.
 * - `organization`, `project`: sent as `OpenAI-Organization` / `OpenAI-Project`.
 * - `headers`: extra request headers (e.g. OpenRouter's `HTTP-Referer`).
 * - `urlParams`: query parameters on every call (e.g. Azure's `api-version`).
 * - `authHeader` (default `bearer`): `bearer` sends `Authorization: Bearer <key>`; `api-key` sends
 *   `api-key: <key>` (Azure OpenAI keys).
 * - `maxTokensField` (default `max_completion_tokens`): the field that carries `maxOutputTokens`; older
 *   OpenAI-compatible servers want `max_tokens`.
 * - `includeUsage` (default `true`): ask streams for a final usage chunk.
 * - `maxResponseBytes` (default 8 MiB), `maxErrorBodyBytes` (1 MiB), `maxEventBytes` (1 MiB): read caps.
 * - `tracePrompts` (default `false`): record the request body (the prompt) on the provider's span as
 *   `llm.request.body`. Off, no span keeps a prompt.
 *
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  ...commonFields,
  baseUrl: Schema.optional(HttpUrl),
  organization: Schema.optional(Schema.String),
  project: Schema.optional(Schema.String),
  urlParams: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  authHeader: Schema.optional(Schema.Literals(["bearer", "api-key"])),
  maxTokensField: Schema.optional(Schema.Literals(["max_tokens", "max_completion_tokens"])),
  includeUsage: Schema.optional(Schema.Boolean)
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
 * import { Effect, Redacted } from "effect"
 * import { OpenAiProvider } from "@llm-resilience/providers"
 *
 * const program = Effect.gen(function*() {
 *   const openai = yield* OpenAiProvider.make({ apiKey: Redacted.make("sk-..."), baseUrl: "http://localhost:8000/v1" })
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
      spanPrefix: "OpenAiProvider",
      url: joinUrl(baseUrl, "chat/completions"),
      urlParams: o.urlParams,
      headers: {
        ...(o.organization === undefined ? {} : { "openai-organization": o.organization }),
        ...(o.project === undefined ? {} : { "openai-project": o.project })
      },
      keyHeader: o.authHeader === "api-key" ? "api-key" : "authorization",
      codec: openAiCodec({
        maxTokensField: o.maxTokensField ?? "max_completion_tokens",
        includeUsage: o.includeUsage ?? true
      })
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
 * import { OpenAiProvider } from "@llm-resilience/providers"
 *
 * // key from OPENAI_API_KEY; a local vLLM server
 * const VllmLive = OpenAiProvider.layer({ name: "vllm", baseUrl: "http://localhost:8000/v1" }).pipe(
 *   Layer.provide(NodeHttpClient.layerUndici)
 * )
 * ```
 * @since 0.1.0
 */
export const layer = (
  options?: MakeOptions
): Layer.Layer<LlmProvider.LlmProvider, Schema.SchemaError | Config.ConfigError, HttpClient.HttpClient> =>
  Layer.effect(LlmProvider.LlmProvider, make(options))

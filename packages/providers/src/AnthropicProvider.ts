/**
 * An `LlmProvider` for Anthropic's Messages API, on `effect/http`'s `HttpClient`.
 *
 * - `complete` posts `/v1/messages`; `stream` adds `stream: true` and decodes the named events
 *   (`message_start` ... `message_stop`). System messages go to the `system` field; `max_tokens`, which
 *   Anthropic requires, defaults to `defaultMaxTokens` when the request has no `maxOutputTokens`.
 * - Usage: `inputTokens` is the whole prompt (`input_tokens` + cache reads + cache writes);
 *   `cachedInputTokens` is `cache_read_input_tokens`.
 * - Every failure becomes a typed `LlmError`: non-2xx responses through the core classifier, an
 *   in-stream `event: error` (e.g. `overloaded_error` inside an HTTP 200) through the same classifier,
 *   a stream that ends before its `message_delta.stop_reason` (or `message_stop`) as `StreamTruncated`,
 *   transport failures as `ConnectionError`, malformed or oversized bodies, mostly malformed streams and
 *   wrong content types as `ServerError`. One malformed stream event is skipped and counted
 *   (`llm_stream_malformed_events`).
 * - `stop_reason: "refusal"` is finish reason `content_filter`.
 * - Every response has its `anthropic-ratelimit-*` headers read into a `RateLimitSnapshot`, and its
 *   `request-id` kept. No retries and no timeouts inside.
 *
 * The API key is a `Redacted`; it never appears in errors, logs or spans.
 *
 * @since 0.1.0
 */
import { LlmProvider } from "@llm-resilience/core"
import { type Config, type Effect, Layer, type Redacted, Schema } from "effect"
import type { HttpClient } from "effect/http"
import { anthropicCodec } from "./internal/anthropic.ts"
import { ByteCount, HttpUrl, joinUrl } from "./internal/options.ts"
import { commonFields, makeWith } from "./internal/provider.ts"

/**
 * The default base URL: `https://api.anthropic.com`.
 *
 * @since 0.1.0
 */
export const defaultBaseUrl = "https://api.anthropic.com"

/**
 * Provider options (all optional; the API key is passed apart, see {@link MakeOptions}):
 *
 * - `name` (default `anthropic`): the provider name in errors, metrics and breaker keys.
 * - `baseUrl` (default `$ANTHROPIC_BASE_URL`, else {@link defaultBaseUrl}): everything before
 *   `/v1/messages`.
 * - `version` (default `2023-06-01`): the `anthropic-version` header.
 * - `betas`: sent as `anthropic-beta` (comma-separated).
 * - `headers`: extra request headers.
 * - `defaultMaxTokens` (default `4096`): `max_tokens` when a request has no `maxOutputTokens`.
 * - `maxResponseBytes` (default 8 MiB), `maxErrorBodyBytes` (1 MiB), `maxEventBytes` (1 MiB): read caps.
 * - `tracePrompts` (default `false`): record the request body (the prompt) on the provider's span as
 *   `llm.request.body`. Off, no span keeps a prompt.
 *
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  ...commonFields,
  baseUrl: Schema.optional(HttpUrl),
  version: Schema.optional(Schema.NonEmptyString),
  betas: Schema.optional(Schema.Array(Schema.NonEmptyString)),
  defaultMaxTokens: Schema.optional(ByteCount)
})

/**
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * What {@link make} and {@link layer} accept: the {@link Options} plus the API key. Without `apiKey`, the
 * key is read from the `ANTHROPIC_API_KEY` config (environment) as a `Redacted`.
 *
 * @since 0.1.0
 */
export interface MakeOptions extends Partial<typeof Options.Encoded> {
  readonly apiKey?: Redacted.Redacted<string> | undefined
}

/**
 * Builds the provider service on the `HttpClient` in context. Fails with a `SchemaError` naming the field
 * for invalid options, or a `ConfigError` when no key is given and `ANTHROPIC_API_KEY` is unset.
 *
 * @example
 * ```ts
 * import { NodeHttpClient } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { AnthropicProvider } from "@llm-resilience/providers"
 *
 * const program = Effect.gen(function*() {
 *   const claude = yield* AnthropicProvider.make() // key from ANTHROPIC_API_KEY
 *   return yield* claude.complete({ model: "claude-sonnet-4-6", messages: [{ role: "user", content: "Hi" }] })
 * }).pipe(Effect.provide(NodeHttpClient.layerUndici))
 * ```
 * @since 0.1.0
 */
export const make: (
  options?: MakeOptions
) => Effect.Effect<LlmProvider.LlmProvider["Service"], Schema.SchemaError | Config.ConfigError, HttpClient.HttpClient> =
  makeWith(
    Schema.decodeUnknownEffect(Options),
    (o) => ({ baseUrl: o.baseUrl, envPrefix: "ANTHROPIC", defaultBaseUrl }),
    (o, baseUrl) => ({
      defaultName: "anthropic",
      spanPrefix: "AnthropicProvider",
      url: joinUrl(baseUrl, "v1/messages"),
      headers: {
        "anthropic-version": o.version ?? "2023-06-01",
        ...(o.betas === undefined || o.betas.length === 0 ? {} : { "anthropic-beta": o.betas.join(",") })
      },
      keyHeader: "x-api-key",
      codec: anthropicCodec({ defaultMaxTokens: o.defaultMaxTokens ?? 4096 })
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
 * import { AnthropicProvider } from "@llm-resilience/providers"
 *
 * const ClaudeLive = AnthropicProvider.layer().pipe(Layer.provide(NodeHttpClient.layerUndici))
 * ```
 * @since 0.1.0
 */
export const layer = (
  options?: MakeOptions
): Layer.Layer<LlmProvider.LlmProvider, Schema.SchemaError | Config.ConfigError, HttpClient.HttpClient> =>
  Layer.effect(LlmProvider.LlmProvider, make(options))

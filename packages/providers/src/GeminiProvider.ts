/**
 * An `LlmProvider` for the Google Gemini API (`generativelanguage.googleapis.com`), on `effect/http`'s
 * `HttpClient`.
 *
 * - `complete` posts `models/{model}:generateContent`; `stream` posts
 *   `models/{model}:streamGenerateContent?alt=sse`. System messages become `systemInstruction`, assistant
 *   turns the `model` role, `maxOutputTokens` / `temperature` / JSON output go in `generationConfig`.
 * - The key goes in the `x-goog-api-key` header (redacted wherever headers are rendered).
 * - Finish reasons: `STOP` -> `stop`, `MAX_TOKENS` -> `length`, safety blocks (`SAFETY`, `RECITATION`,
 *   `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`, `IMAGE_SAFETY` ...) -> `content_filter`; a blocked prompt
 *   (`promptFeedback.blockReason`, no candidates) is an empty answer with `content_filter`.
 * - Errors (`{"error":{code,message,status,details}}`) go through the core classifier: 429
 *   `RESOURCE_EXHAUSTED` is `RateLimited` with `retryAfterMs` from `RetryInfo.retryDelay`, or
 *   `QuotaExhausted` when its `QuotaFailure` is a per-day quota or the limit is 0; `API_KEY_INVALID` is
 *   `Authentication`; 503 `UNAVAILABLE` is `Overloaded`; 504 `DEADLINE_EXCEEDED` is `Timeout`; "input token
 *   count exceeds the maximum" is `ContextLengthExceeded`.
 * - A stream has no end marker: it is complete once an event named a finish reason and the body then
 *   ended cleanly; otherwise `StreamTruncated`. An `{"error": ...}` event in an HTTP 200 stream is classified.
 * - No retries and no timeouts inside: those are toolkit stages.
 *
 * @since 0.1.0
 */
import { LlmProvider } from "@llm-resilience/core"
import { type Config, type Effect, Layer, type Redacted, Schema } from "effect"
import type { HttpClient } from "effect/http"
import { geminiCodec } from "./internal/gemini.ts"
import { HttpUrl, joinUrl } from "./internal/options.ts"
import { commonFields, makeWith } from "./internal/provider.ts"

/**
 * The default base URL: `https://generativelanguage.googleapis.com/v1beta`.
 *
 * @since 0.1.0
 */
export const defaultBaseUrl = "https://generativelanguage.googleapis.com/v1beta"

/**
 * Provider options (all optional; the API key is passed apart, see {@link MakeOptions}):
 *
 * - `name` (default `gemini`): the provider name in errors, metrics and breaker keys.
 * - `baseUrl` (default `$GEMINI_BASE_URL`, else {@link defaultBaseUrl}): everything before `/models/...`.
 * - `headers`, `maxResponseBytes` (8 MiB), `maxErrorBodyBytes` (1 MiB), `maxEventBytes` (1 MiB).
 * - `tracePrompts` (default `false`): record the request body (the prompt) on the provider's span.
 *
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  ...commonFields,
  baseUrl: Schema.optional(HttpUrl)
})

/**
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * What {@link make} and {@link layer} accept: the {@link Options} plus the API key. Without `apiKey`, the
 * key is read from the `GEMINI_API_KEY` config (environment) as a `Redacted`.
 *
 * @since 0.1.0
 */
export interface MakeOptions extends Partial<typeof Options.Encoded> {
  readonly apiKey?: Redacted.Redacted<string> | undefined
}

/** `models/gemini-2.5-flash` from `gemini-2.5-flash`; names with a `/` (`tunedModels/x`) stay as they are. */
const modelPath = (model: string): string =>
  model.includes("/") ? model.split("/").map(encodeURIComponent).join("/") : `models/${encodeURIComponent(model)}`

/**
 * Builds the provider service on the `HttpClient` in context. Fails with a `SchemaError` naming the field
 * for invalid options, or a `ConfigError` when no key is given and `GEMINI_API_KEY` is unset.
 *
 * @example
 * ```ts
 * import { NodeHttpClient } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { GeminiProvider } from "@llm-resilience/providers"
 *
 * const program = Effect.gen(function*() {
 *   const gemini = yield* GeminiProvider.make() // key from GEMINI_API_KEY
 *   return yield* gemini.complete({ model: "gemini-2.5-flash", messages: [{ role: "user", content: "Hi" }] })
 * }).pipe(Effect.provide(NodeHttpClient.layerUndici))
 * ```
 * @since 0.1.0
 */
export const make: (
  options?: MakeOptions
) => Effect.Effect<LlmProvider.LlmProvider["Service"], Schema.SchemaError | Config.ConfigError, HttpClient.HttpClient> =
  makeWith(
    Schema.decodeUnknownEffect(Options),
    (o) => ({ baseUrl: o.baseUrl, envPrefix: "GEMINI", defaultBaseUrl }),
    (_, baseUrl) => ({
      defaultName: "gemini",
      spanPrefix: "GeminiProvider",
      url: baseUrl,
      route: (model, stream) =>
        stream
          ? { url: joinUrl(baseUrl, `${modelPath(model)}:streamGenerateContent`), urlParams: { alt: "sse" } }
          : { url: joinUrl(baseUrl, `${modelPath(model)}:generateContent`) },
      codec: geminiCodec,
      keyHeader: "x-goog-api-key"
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
 * import { GeminiProvider } from "@llm-resilience/providers"
 *
 * const GeminiLive = GeminiProvider.layer().pipe(Layer.provide(NodeHttpClient.layerUndici))
 * ```
 * @since 0.1.0
 */
export const layer = (
  options?: MakeOptions
): Layer.Layer<LlmProvider.LlmProvider, Schema.SchemaError | Config.ConfigError, HttpClient.HttpClient> =>
  Layer.effect(LlmProvider.LlmProvider, make(options))

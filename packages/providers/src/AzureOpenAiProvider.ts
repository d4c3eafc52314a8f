/**
 * An `LlmProvider` for Azure OpenAI deployments: the OpenAI Chat Completions wire (the same decoding,
 * finish reasons, refusals, usage and end-of-stream rules as `OpenAiProvider`) with Azure's URL, key header
 * and hints.
 *
 * - Calls go to `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version={apiVersion}`;
 *   the deployment is the `deployment` option, else the request's `model` (as the official `AzureOpenAI`
 *   client does).
 * - The key goes in the `api-key` header (redacted wherever headers are rendered), or as
 *   `Authorization: Bearer` with `authHeader: "bearer"` for a Microsoft Entra token.
 * - Retry hints: `retry-after-ms`, `x-ms-retry-after-ms`, `retry-after`, and "Please retry after N seconds"
 *   in a 429 body when no header says it; the capacity 429 ("experiencing high demand") is `Overloaded`.
 *   The request id is `apim-request-id` when there is no `x-request-id`.
 * - Content filtering: a filtered prompt is a 400 `content_filter` -> `ContentFiltered` (not retryable: the
 *   same prompt is blocked again); filtered output is `finish_reason: content_filter` -> finish reason
 *   `content_filter`. The `prompt_filter_results` chunk that opens a stream carries no text and is skipped.
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
 * The default `api-version`: `2024-10-21` (the current stable data-plane version).
 *
 * @since 0.1.0
 */
export const defaultApiVersion = "2024-10-21"

/**
 * Provider options (all optional; the API key is passed apart, see {@link MakeOptions}):
 *
 * - `name` (default `azure-openai`): the provider name in errors, metrics and breaker keys; give each
 *   region / resource its own, since each has its own quota.
 * - `endpoint` (default `$AZURE_OPENAI_ENDPOINT`): `https://{resource}.openai.azure.com`.
 * - `deployment`: the deployment every call goes to; without it, the request's `model` names it.
 * - `apiVersion` (default {@link defaultApiVersion}).
 * - `authHeader` (default `api-key`): `bearer` sends the key as an Entra token.
 * - `maxTokensField` (default `max_completion_tokens`), `includeUsage` (default `true`): as for OpenAI.
 * - `headers`, `maxResponseBytes` (8 MiB), `maxErrorBodyBytes` (1 MiB), `maxEventBytes` (1 MiB).
 * - `tracePrompts` (default `false`): record the request body (the prompt) on the provider's span.
 *
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  ...commonFields,
  endpoint: Schema.optional(HttpUrl),
  deployment: Schema.optional(Schema.NonEmptyString),
  apiVersion: Schema.optional(Schema.NonEmptyString),
  authHeader: Schema.optional(Schema.Literals(["api-key", "bearer"])),
  maxTokensField: Schema.optional(Schema.Literals(["max_tokens", "max_completion_tokens"])),
  includeUsage: Schema.optional(Schema.Boolean)
})

/**
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * What {@link make} and {@link layer} accept: the {@link Options} plus the API key. Without `apiKey`, the
 * key is read from the `AZURE_OPENAI_API_KEY` config (environment) as a `Redacted`.
 *
 * @since 0.1.0
 */
export interface MakeOptions extends Partial<typeof Options.Encoded> {
  readonly apiKey?: Redacted.Redacted<string> | undefined
}

/**
 * Builds the provider service on the `HttpClient` in context. Fails with a `SchemaError` naming the field
 * for invalid options, or a `ConfigError` when no key is given and `AZURE_OPENAI_API_KEY` is unset (or no
 * endpoint and `AZURE_OPENAI_ENDPOINT` is unset).
 *
 * @example
 * ```ts
 * import { NodeHttpClient } from "@effect/platform-node"
 * import { Effect } from "effect"
 * import { AzureOpenAiProvider } from "@llm-resilience/providers"
 *
 * const program = Effect.gen(function*() {
 *   const azure = yield* AzureOpenAiProvider.make({ endpoint: "https://my-resource.openai.azure.com" })
 *   // the model names the deployment
 *   return yield* azure.complete({ model: "gpt-4o-eu", messages: [{ role: "user", content: "Hi" }] })
 * }).pipe(Effect.provide(NodeHttpClient.layerUndici))
 * ```
 * @since 0.1.0
 */
export const make: (
  options?: MakeOptions
) => Effect.Effect<LlmProvider.LlmProvider["Service"], Schema.SchemaError | Config.ConfigError, HttpClient.HttpClient> =
  makeWith(
    Schema.decodeUnknownEffect(Options),
    (o) => ({
      baseUrl: o.endpoint,
      envPrefix: "AZURE_OPENAI",
      baseUrlVar: "AZURE_OPENAI_ENDPOINT",
      defaultBaseUrl: undefined
    }),
    (o, endpoint) => {
      const deployments = joinUrl(endpoint, "openai/deployments")
      const fixed = o.deployment === undefined ? undefined : `${deployments}/${encodeURIComponent(o.deployment)}`
      return {
        defaultName: "azure-openai",
        spanPrefix: "AzureOpenAiProvider",
        url: `${fixed ?? deployments}/chat/completions`,
        route:
          fixed === undefined
            ? (model) => ({ url: `${deployments}/${encodeURIComponent(model)}/chat/completions` })
            : undefined,
        urlParams: { "api-version": o.apiVersion ?? defaultApiVersion },
        codec: openAiCodec({
          maxTokensField: o.maxTokensField ?? "max_completion_tokens",
          includeUsage: o.includeUsage ?? true
        }),
        keyHeader: o.authHeader === "bearer" ? "authorization" : "api-key"
      }
    }
  )

/**
 * The provider as a layer of the core `LlmProvider` service. Needs an `HttpClient`
 * (`NodeHttpClient.layerUndici` from `@effect/platform-node`).
 *
 * @example
 * ```ts
 * import { NodeHttpClient } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { AzureOpenAiProvider } from "@llm-resilience/providers"
 *
 * // key from AZURE_OPENAI_API_KEY, endpoint from AZURE_OPENAI_ENDPOINT
 * const AzureLive = AzureOpenAiProvider.layer({ deployment: "gpt-4o-eu" }).pipe(
 *   Layer.provide(NodeHttpClient.layerUndici)
 * )
 * ```
 * @since 0.1.0
 */
export const layer = (
  options?: MakeOptions
): Layer.Layer<LlmProvider.LlmProvider, Schema.SchemaError | Config.ConfigError, HttpClient.HttpClient> =>
  Layer.effect(LlmProvider.LlmProvider, make(options))

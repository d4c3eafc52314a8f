/**
 * Runs calls made with the official SDKs (`openai`, `@anthropic-ai/sdk`, or any Stainless-generated
 * client) inside the toolkit: a Promise-returning call becomes an `Effect`, an SDK stream becomes a
 * `Stream`, and an SDK client can be an `LlmProvider` ({@link fromOpenAi}, {@link fromAnthropic}), so an
 * SDK-backed model can be a step of a fallback plan. The SDK's error objects (status, headers, body) are
 * classified into the toolkit's `LlmError` taxonomy by the core classifier, and every transport failure
 * (`terminated`, `ECONNRESET`, `other side closed`, `fetch failed`, an abort), however the SDK wraps it, is
 * a `ConnectionError`, or `StreamTruncated` once a stream has begun; so breakers, retries and fallbacks
 * treat them exactly like errors from this package's own providers.
 *
 * Turn the SDK's own retries off (`maxRetries: 0`) so that retries happen once, in the toolkit, and
 * leave timeouts to the toolkit's timeout stage (the SDKs' timeout stops once headers arrive, so a stalled
 * stream is not covered anyway).
 *
 * Interruption aborts the SDK request through the `AbortSignal` handed to the call.
 *
 * @since 0.1.0
 */
import type { LlmError, LlmProvider } from "@llm-resilience/core"
import type { Effect, Stream } from "effect"
import { anthropicCodec } from "./internal/anthropic.ts"
import { openAiCodec } from "./internal/openai.ts"
import * as internal from "./internal/sdk.ts"

/**
 * Where a call goes: the provider name (as in errors and breaker keys) and the model, when known.
 *
 * @since 0.1.0
 */
export type Target = internal.Target

/**
 * Classifies an error thrown by an official SDK. Returns `undefined` for anything that is not an SDK or
 * transport error (a bug in the calling code), which callers should let through as a defect.
 *
 * - an `APIError` with a status: the core classifier on its status, headers and body;
 * - an `APIError` without a status but with a body (an in-stream `error` event): the classifier, with
 *   status 200 (the stream's);
 * - `APIConnectionTimeoutError`: `Timeout` (phase `total`);
 * - a transport failure, found by name, code or message along the error's `cause` chain
 *   (`APIConnectionError`, `APIUserAbortError`, `AbortError`, undici's `TypeError: terminated` caused by
 *   `SocketError: other side closed`, `ECONNRESET` and other `E*` codes, `fetch failed`): `ConnectionError`.
 *
 * @example
 * ```ts
 * import { SdkAdapter } from "@llm-resilience/providers"
 * const sdkError = { status: 529, headers: new Headers({ "request-id": "req_1" }), error: { type: "error", error: { type: "overloaded_error", message: "Overloaded" } } }
 * declare const nowMillis: number // read from `Clock.currentTimeMillis`
 * SdkAdapter.classifyError(sdkError, { provider: "anthropic" }, nowMillis)?._tag // "Overloaded"
 * ```
 * @since 0.1.0
 */
export const classifyError: (error: unknown, target: Target, nowMillis: number) => LlmError.ProviderError | undefined =
  internal.classifyError

/**
 * Runs a Promise-returning SDK call as an `Effect`. The call receives an `AbortSignal` to pass to the SDK
 * (`{ signal }`), so that interruption (a timeout stage, a lost hedge, a shutdown) aborts the request.
 * SDK errors fail with a classified `LlmError.ProviderError`; anything else is a defect.
 *
 * @example
 * ```ts
 * import OpenAI from "openai"
 * import { SdkAdapter } from "@llm-resilience/providers"
 *
 * const client = new OpenAI({ maxRetries: 0 }) // retries happen once, in the toolkit
 * const answer = SdkAdapter.tryPromise({ provider: "openai", model: "gpt-5.4-mini" }, (signal) =>
 *   client.chat.completions.create(
 *     { model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] },
 *     { signal }
 *   )
 * )
 * ```
 * @since 0.1.0
 */
export const tryPromise: <A>(
  target: Target,
  evaluate: (signal: AbortSignal) => PromiseLike<A>
) => Effect.Effect<A, LlmError.ProviderError> = internal.tryPromise

/**
 * Runs an SDK stream (an `AsyncIterable` such as the result of `stream: true`, or the Promise of one) as a
 * `Stream` of its events, with the same classification for errors thrown while opening or iterating; a
 * transport failure while iterating is `StreamTruncated` (`receivedChunks` counts events). Stopping the
 * stream early, or interrupting it, aborts the request.
 *
 * Note: the SDKs end an SSE stream silently when the connection closes cleanly before the end marker;
 * check for your last expected event (e.g. `message_stop`, a `finish_reason`), or use {@link fromOpenAi} /
 * {@link fromAnthropic}, whose streams fail with `StreamTruncated` then.
 *
 * @example
 * ```ts
 * import Anthropic from "@anthropic-ai/sdk"
 * import { Stream } from "effect"
 * import { SdkAdapter } from "@llm-resilience/providers"
 *
 * const client = new Anthropic({ maxRetries: 0 })
 * const events = SdkAdapter.stream({ provider: "anthropic" }, (signal) =>
 *   client.messages.create(
 *     { model: "claude-sonnet-4-6", max_tokens: 256, stream: true, messages: [{ role: "user", content: "Hi" }] },
 *     { signal }
 *   )
 * )
 * ```
 * @since 0.1.0
 */
export const stream: <A>(
  target: Target,
  evaluate: (signal: AbortSignal) => AsyncIterable<A> | PromiseLike<AsyncIterable<A>>
) => Stream.Stream<A, LlmError.ProviderError> = internal.stream

/**
 * The part of an `openai` client that {@link fromOpenAi} uses: `chat.completions.create`.
 *
 * @example
 * ```ts
 * import OpenAI from "openai"
 * import type { SdkAdapter } from "@llm-resilience/providers"
 * const client: SdkAdapter.OpenAiClient = new OpenAI({ maxRetries: 0 })
 * ```
 * @since 0.1.0
 */
export interface OpenAiClient {
  readonly chat: { readonly completions: { readonly create: internal.Create } }
}

/**
 * The part of an `@anthropic-ai/sdk` client that {@link fromAnthropic} uses: `messages.create`.
 *
 * @example
 * ```ts
 * import Anthropic from "@anthropic-ai/sdk"
 * import type { SdkAdapter } from "@llm-resilience/providers"
 * const client: SdkAdapter.AnthropicClient = new Anthropic({ maxRetries: 0 })
 * ```
 * @since 0.1.0
 */
export interface AnthropicClient {
  readonly messages: { readonly create: internal.Create }
}

/**
 * An `openai` client (or any OpenAI-compatible Stainless client, e.g. `AzureOpenAI`) as an `LlmProvider`:
 * requests, responses, streams, refusals and errors are mapped exactly as `OpenAiProvider` maps them
 * (a stream is complete at a finish reason followed by the end, and fails with `StreamTruncated`
 * otherwise), and the rate-limit snapshot and request id are read from the response headers.
 *
 * Options: `name` (default `openai`), `maxTokensField` (default `max_completion_tokens`), `includeUsage`
 * (default `true`). Give the client `maxRetries: 0`.
 *
 * @example
 * ```ts
 * import OpenAI from "openai"
 * import { FallbackPlan } from "@llm-resilience/core"
 * import { SdkAdapter } from "@llm-resilience/providers"
 *
 * const openai = SdkAdapter.fromOpenAi(new OpenAI({ maxRetries: 0 }))
 * const step = FallbackPlan.step(openai, { model: "gpt-5.4-mini" })
 * ```
 * @since 0.1.0
 */
export const fromOpenAi = (
  client: OpenAiClient,
  options: {
    readonly name?: string | undefined
    readonly maxTokensField?: "max_tokens" | "max_completion_tokens" | undefined
    readonly includeUsage?: boolean | undefined
  } = {}
): LlmProvider.LlmProvider["Service"] =>
  internal.sdkProvider(
    options.name ?? "openai",
    openAiCodec({
      maxTokensField: options.maxTokensField ?? "max_completion_tokens",
      includeUsage: options.includeUsage ?? true
    }),
    (body, o) => client.chat.completions.create(body, o)
  )

/**
 * An `@anthropic-ai/sdk` client as an `LlmProvider`, mapped exactly as `AnthropicProvider` maps the
 * Messages API.
 *
 * Options: `name` (default `anthropic`), `defaultMaxTokens` (default 4096: `max_tokens` when the request
 * has no `maxOutputTokens`). Give the client `maxRetries: 0`.
 *
 * @example
 * ```ts
 * import Anthropic from "@anthropic-ai/sdk"
 * import { FallbackPlan } from "@llm-resilience/core"
 * import { SdkAdapter } from "@llm-resilience/providers"
 *
 * const anthropic = SdkAdapter.fromAnthropic(new Anthropic({ maxRetries: 0 }))
 * const step = FallbackPlan.step(anthropic, { model: "claude-haiku-4-5" })
 * ```
 * @since 0.1.0
 */
export const fromAnthropic = (
  client: AnthropicClient,
  options: { readonly name?: string | undefined; readonly defaultMaxTokens?: number | undefined } = {}
): LlmProvider.LlmProvider["Service"] =>
  internal.sdkProvider(
    options.name ?? "anthropic",
    anthropicCodec({ defaultMaxTokens: options.defaultMaxTokens ?? 4096 }),
    (body, o) => client.messages.create(body, o)
  )

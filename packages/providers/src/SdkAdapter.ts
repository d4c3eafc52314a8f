/**
 * Runs calls made with the official SDKs (`openai`, `@anthropic-ai/sdk`, or any Stainless-generated
 * client) inside the toolkit: a Promise-returning call becomes an `Effect`, an SDK stream becomes a
 * `Stream`, and the SDK's error objects (status, headers, body) are classified into the toolkit's
 * `LlmError` taxonomy by the core classifier, so that breakers, retries and fallbacks treat them exactly
 * like errors from this package's own providers.
 *
 * Turn the SDK's own retries off (`maxRetries: 0`) so that retries happen once, in the toolkit, and
 * leave timeouts to the toolkit's timeout stage (the SDKs' timeout stops once headers arrive, so a stalled
 * stream is not covered anyway).
 *
 * Interruption aborts the SDK request through the `AbortSignal` handed to the call.
 *
 * @since 0.1.0
 */
import { Classification, LlmError } from "@llm-resilience/core"
import { Clock, Effect, Stream } from "effect"

/**
 * Where a call goes: the provider name (as in errors and breaker keys) and the model, when known.
 *
 * @since 0.1.0
 */
export interface Target {
  readonly provider: string
  readonly model?: string | undefined
}

type Headers = Record<string, string>

const isObject = (u: unknown): u is Record<string, unknown> => u !== null && typeof u === "object"

const headersOf = (u: unknown): Headers => {
  const out: Headers = {}
  if (!isObject(u)) return out
  const forEach = (u as { forEach?: unknown }).forEach
  if (typeof forEach === "function" && !Array.isArray(u)) {
    // a WHATWG Headers (both SDKs expose response headers this way)
    ;(u as { forEach: (f: (value: string, key: string) => void) => void }).forEach((value, key) => {
      out[key.toLowerCase()] = value
    })
    return out
  }
  for (const [key, value] of Object.entries(u)) {
    if (typeof value === "string") out[key.toLowerCase()] = value
    else if (Array.isArray(value) && typeof value[0] === "string") out[key.toLowerCase()] = value[0]
  }
  return out
}

/** The SDKs keep the body as `error`: OpenAI the inner `{message,type,code}`, Anthropic the whole body. */
const bodyOf = (error: Record<string, unknown>): string => {
  const body = error.error
  if (body === undefined || body === null) return typeof error.message === "string" ? error.message : ""
  if (typeof body === "string") return body
  if (!isObject(body)) return ""
  const wrapped = "error" in body || body.type === "error" ? body : { error: body }
  try {
    return JSON.stringify(wrapped)
  } catch {
    return ""
  }
}

const names = (error: Record<string, unknown>): string => {
  const ctor = (error as { constructor?: { name?: unknown } }).constructor
  return `${typeof error.name === "string" ? error.name : ""} ${typeof ctor?.name === "string" ? ctor.name : ""}`
}

const fields = (target: Target) => ({
  provider: target.provider,
  ...(target.model === undefined ? {} : { model: target.model })
})

/**
 * Classifies an error thrown by an official SDK. Returns `undefined` for anything that is not an SDK or
 * transport error (a bug in the calling code), which callers should let through as a defect.
 *
 * - an `APIError` with a status: the core classifier on its status, headers and body;
 * - an `APIError` without a status but with a body (an in-stream `error` event): the classifier, with
 *   status 200 (the stream's);
 * - `APIConnectionTimeoutError`: `Timeout` (phase `total`); `APIConnectionError` and network errors:
 *   `ConnectionError`.
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
export const classifyError = (
  error: unknown,
  target: Target,
  nowMillis: number
): LlmError.ProviderError | undefined => {
  if (!isObject(error)) return undefined
  const status = typeof error.status === "number" ? error.status : undefined
  const kind = names(error)
  const hasBody = error.error !== undefined && error.error !== null
  if (status !== undefined || (hasBody && /APIError/.test(kind))) {
    return Classification.classify({
      status: status ?? 200,
      headers: headersOf(error.headers),
      body: bodyOf(error),
      provider: target.provider,
      model: target.model,
      nowMillis
    })
  }
  const message = typeof error.message === "string" ? error.message : "request failed"
  if (/ConnectionTimeout|TimeoutError/.test(kind)) {
    return new LlmError.Timeout({
      ...fields(target),
      message: `the SDK's own timeout fired: ${message}`,
      phase: "total",
      afterMs: 0
    })
  }
  const code = typeof error.code === "string" ? error.code : ""
  if (/Connection|FetchError|SocketError/.test(kind) || /^E[A-Z]+$/.test(code) || message === "fetch failed") {
    return new LlmError.ConnectionError({ ...fields(target), message })
  }
  return undefined
}

const toEffectError = (error: unknown, target: Target) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const classified = classifyError(error, target, now)
    return classified === undefined ? Effect.die(error) : Effect.fail(classified)
  })

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
export const tryPromise = <A>(
  target: Target,
  evaluate: (signal: AbortSignal) => PromiseLike<A>
): Effect.Effect<A, LlmError.ProviderError> =>
  Effect.tryPromise({
    try: (signal) => evaluate(signal),
    catch: (error) => error
  }).pipe(Effect.catch((error) => toEffectError(error, target)))

/**
 * Runs an SDK stream (an `AsyncIterable` such as the result of `stream: true`, or the Promise of one) as a
 * `Stream` of its events, with the same classification for errors thrown while opening or iterating.
 * Stopping the stream early, or interrupting it, aborts the request.
 *
 * Note: the SDKs end an SSE stream silently when the connection closes before the end marker; check for
 * your last expected event (e.g. `message_stop`, a `finish_reason`) or use this package's providers, which
 * fail such streams with `StreamTruncated`.
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
export const stream = <A>(
  target: Target,
  evaluate: (signal: AbortSignal) => AsyncIterable<A> | PromiseLike<AsyncIterable<A>>
): Stream.Stream<A, LlmError.ProviderError> =>
  Stream.unwrap(
    Effect.map(
      Effect.acquireRelease(
        Effect.sync(() => new AbortController()),
        (controller) => Effect.sync(() => controller.abort())
      ),
      (controller) =>
        Stream.unwrap(
          Effect.map(
            tryPromise(target, () => Promise.resolve(evaluate(controller.signal))),
            (iterable) => Stream.fromAsyncIterable(iterable, (error) => error)
          )
        ).pipe(
          Stream.catch((error) =>
            Stream.fromEffect(LlmError.isProviderError(error) ? Effect.fail(error) : toEffectError(error, target))
          )
        )
    )
  )

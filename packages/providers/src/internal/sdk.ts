/**
 * The official SDKs inside the toolkit: classification of what they throw (API errors, and every transport
 * failure under whatever wrapping), their streams as `Stream`s, and an SDK client as an `LlmProvider` that
 * speaks through this package's codecs.
 *
 * @internal
 */
import {
  Classification,
  LlmError,
  type LlmProvider,
  type LlmRequest,
  type LlmResponse,
  RateLimitSnapshot
} from "@llm-resilience/core"
import { Clock, Effect, Stream } from "effect"
import { identity } from "effect/Function"
import type { Codec, FinishMeta, Problem } from "./codec.ts"
import { encodeBody, responseOf } from "./codec.ts"
import { decodeEvents, makeDecoder } from "./stream.ts"

/** Where a call goes. */
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

/** Names of transport errors: the SDKs' connection and abort errors, undici's and node's socket errors. */
const transportNames = /Connection|Abort|FetchError|SocketError|UND_ERR/

/** Codes of transport errors: `ECONNRESET`, `EPIPE`, `ETIMEDOUT` ..., undici's `UND_ERR_*`, `ABORT_ERR`. */
const transportCodes = /^(?:E[A-Z]+|UND_ERR_[A-Z_]+|ABORT_ERR)$/

/** Messages of transport errors that carry no telling name or code (undici's `TypeError: terminated`). */
const transportMessages =
  /^(?:terminated|fetch failed|other side closed|socket hang up|aborted|(?:this|the) operation was aborted\.?|request was aborted\.?)$/i

/**
 * The messages along `error`'s cause chain (a few links), when one link is a transport failure: a
 * connection cut or reset, a failed fetch, an abort. Everything else (a bug) is `undefined`.
 */
const transportFailure = (error: Record<string, unknown>): string | undefined => {
  const messages: Array<string> = []
  let transport = false
  let link: unknown = error
  for (let depth = 0; depth < 4 && isObject(link); depth++) {
    const message = typeof link.message === "string" ? link.message : ""
    const code = typeof link.code === "string" ? link.code : ""
    if (message !== "") messages.push(code === "" ? message : `${message} (${code})`)
    if (transportNames.test(names(link)) || transportCodes.test(code) || transportMessages.test(message.trim())) {
      transport = true
    }
    link = link.cause
  }
  return transport ? messages.join(": ") || "connection failed" : undefined
}

/** See `SdkAdapter.classifyError`. */
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
  if (/ConnectionTimeout|TimeoutError/.test(kind)) {
    const message = typeof error.message === "string" ? error.message : "request timed out"
    return new LlmError.Timeout({
      ...fields(target),
      message: `the SDK's own timeout fired: ${message}`,
      phase: "total",
      afterMs: 0
    })
  }
  const transport = transportFailure(error)
  return transport === undefined ? undefined : new LlmError.ConnectionError({ ...fields(target), message: transport })
}

/** Fails with the classified error, or dies with an unclassifiable one (a bug). */
export const fail = (error: unknown, target: Target): Effect.Effect<never, LlmError.ProviderError> =>
  LlmError.isProviderError(error)
    ? Effect.fail(error)
    : Effect.flatMap(Clock.currentTimeMillis, (now) => {
        const classified = classifyError(error, target, now)
        return classified === undefined ? Effect.die(error) : Effect.fail(classified)
      })

/** See `SdkAdapter.tryPromise`. */
export const tryPromise = <A>(
  target: Target,
  evaluate: (signal: AbortSignal) => PromiseLike<A>
): Effect.Effect<A, LlmError.ProviderError> =>
  Effect.tryPromise({ try: (signal) => evaluate(signal), catch: (error) => error }).pipe(
    Effect.catch((error) => fail(error, target))
  )

/**
 * The items of an opened SDK stream. A transport failure while iterating is `StreamTruncated` (the
 * response had begun), with `received()` chunks. With `parsing`, the iterable is the SDK's own parser, so a
 * `SyntaxError` is an event it could not parse: a `ServerError` (the SDKs do not skip one).
 */
const iterate = <A>(
  target: Target,
  iterable: AsyncIterable<A>,
  received: () => number,
  parsing = false
): Stream.Stream<A, LlmError.ProviderError> =>
  Stream.fromAsyncIterable(iterable, (error) => error).pipe(
    Stream.catch((error) =>
      Stream.fromEffect(
        parsing && error instanceof SyntaxError
          ? Effect.fail(
              new LlmError.ServerError({
                ...fields(target),
                status: 200,
                message: `the SDK could not parse a stream event: ${error.message}`
              })
            )
          : Effect.catchTag(fail(error, target), "ConnectionError", (e) =>
              Effect.fail(
                new LlmError.StreamTruncated({
                  ...fields(target),
                  message: `connection lost mid-stream: ${e.message}`,
                  receivedChunks: received()
                })
              )
            )
      )
    )
  )

/** Opens an SDK stream with an `AbortSignal` that aborts when the stream ends or is interrupted. */
const opened = <A, B>(
  target: Target,
  open: (signal: AbortSignal) => PromiseLike<A>,
  use: (opened: A) => Stream.Stream<B, LlmError.ProviderError>
): Stream.Stream<B, LlmError.ProviderError> =>
  Stream.unwrap(
    Effect.acquireRelease(
      Effect.sync(() => new AbortController()),
      (controller) => Effect.sync(() => controller.abort())
    ).pipe(
      Effect.flatMap((controller) =>
        Effect.map(
          tryPromise(target, () => open(controller.signal)),
          use
        )
      )
    )
  )

/** See `SdkAdapter.stream`. */
export const stream = <A>(
  target: Target,
  evaluate: (signal: AbortSignal) => AsyncIterable<A> | PromiseLike<AsyncIterable<A>>
): Stream.Stream<A, LlmError.ProviderError> =>
  opened(
    target,
    (signal) => Promise.resolve(evaluate(signal)),
    (iterable) => {
      let received = 0
      return Stream.tap(
        iterate(target, iterable, () => received),
        () => Effect.sync(() => received++)
      )
    }
  )

/** A Stainless-generated `create` method (`chat.completions.create`, `messages.create`). */
export type Create = (body: never, options: { readonly signal: AbortSignal }) => PromiseLike<unknown>

interface WithResponse {
  readonly withResponse: () => PromiseLike<{ readonly data: unknown; readonly response: { readonly headers: unknown } }>
}

const hasWithResponse = (u: unknown): u is WithResponse =>
  isObject(u) && typeof (u as { withResponse?: unknown }).withResponse === "function"

/** Calls `create`, with the response headers when the SDK gives them (`withResponse()`). */
const call = (create: Create, body: unknown, signal: AbortSignal) => {
  const promise = create(body as never, { signal })
  return hasWithResponse(promise)
    ? promise.withResponse().then((r) => ({ data: r.data, headers: headersOf(r.response.headers) }))
    : Promise.resolve(promise).then((data) => ({ data, headers: {} as Headers }))
}

/** An `LlmProvider` that sends every request through an SDK's `create`, in `codec`'s wire format. */
export const sdkProvider = (name: string, codec: Codec, create: Create): LlmProvider.LlmProvider["Service"] => {
  /** What the response headers say, and what a problem in the (HTTP 200) body becomes. */
  const context = (model: string, headers: Headers) =>
    Effect.map(Clock.currentTimeMillis, (nowMillis) => {
      const snapshot = RateLimitSnapshot.fromHeaders(headers, nowMillis)
      const meta: FinishMeta = {
        provider: name,
        model,
        requestId: Classification.requestIdOf(headers),
        rateLimit: RateLimitSnapshot.isEmpty(snapshot) ? undefined : snapshot
      }
      const failure = (problem: Problem): LlmError.ProviderError =>
        problem._tag === "Malformed"
          ? new LlmError.ServerError({ provider: name, model, status: 200, message: problem.detail })
          : Classification.classify({ status: 200, headers, body: problem.body, provider: name, model, nowMillis })
      return { meta, failure }
    })

  const complete = (request: LlmRequest.LlmRequest): Effect.Effect<LlmResponse.LlmResponse, LlmError.ProviderError> =>
    Effect.gen(function* () {
      const target = { provider: name, model: request.model }
      const { data, headers } = yield* tryPromise(target, (signal) =>
        call(create, encodeBody(codec, request, false), signal)
      )
      const { failure, meta } = yield* context(request.model, headers)
      const decoded = codec.decodeBody(data)
      return "_tag" in decoded
        ? yield* Effect.fail(failure(decoded))
        : responseOf(decoded, meta, { codec, request, body: data })
    })

  const streamOf = (request: LlmRequest.LlmRequest): Stream.Stream<LlmResponse.StreamChunk, LlmError.ProviderError> => {
    const target = { provider: name, model: request.model }
    return opened(
      target,
      (signal) => call(create, encodeBody(codec, request, true), signal),
      ({ data, headers }) =>
        Stream.unwrap(
          Effect.map(context(request.model, headers), ({ failure, meta }) => {
            if (!isObject(data) || !(Symbol.asyncIterator in data)) {
              return Stream.fail(failure({ _tag: "Malformed", detail: "the SDK returned no stream" }))
            }
            const decoder = makeDecoder(codec, meta)
            const events = iterate(target, data as AsyncIterable<unknown>, decoder.received, true)
            return decodeEvents(events, decoder, {
              feed: decoder.feedParsed,
              failure,
              lost: identity,
              truncated: (message) =>
                new LlmError.StreamTruncated({ ...target, status: 200, message, receivedChunks: decoder.received() }),
              provider: name,
              model: request.model
            })
          })
        )
    )
  }

  return { name, complete, stream: streamOf }
}

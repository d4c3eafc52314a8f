/**
 * The HTTP client the gateway calls providers with: effect's `HttpClient` over undici's `Dispatcher.dispatch`,
 * with one small handler per request (an {@link Exchange}) that is also the response body's buffer.
 *
 * Why not `NodeHttpClient.makeUndici`: it goes through undici's `request` API (an `AsyncResource` handler,
 * a Node `Readable` body, an `AbortSignal` listener) and then adapts that `Readable` back into an effect
 * `Stream`; and `HttpClient.make` adds an `AbortController`, a `FinalizationRegistry` entry and a wrapping
 * response to every call. Here the handler hands undici's chunks straight to the body's reader, interruption
 * aborts undici's controller directly, and untraced calls (the providers run their calls untraced unless a
 * span could be seen) skip `HttpClient.make`; traced calls go through it, so spans and trace propagation stay
 * effect's. Measured against `makeUndici` on the gateway bundle in the same run: see docs/architecture.md.
 *
 * What it keeps of effect's client: status and headers as undici parses them (a repeated header's values
 * joined with ", "), bodies read incrementally as a `Stream` or whole, request bodies of every kind as
 * `makeUndici` sends them, failures before the response head as a `TransportError`, failures in the body as a
 * `DecodeError`. Interrupting a call, or ending a body's stream before its end, aborts the request (undici
 * closes the connection). Until a stream reads it, a body is buffered as it arrives (nothing holds the
 * connection for a response nobody reads); a stream being read pauses the connection while more than
 * `highWaterMark` bytes wait. A body has one reader at a time (a second reader waiting beside the first dies).
 * Upgrades are not supported (the gateway never asks for one): a request for one fails with a
 * `TransportError`.
 *
 * Nothing of an untraced call outlives it in a way a scavenge cannot see through: its objects hold no
 * function created per request (V8 allocates a function literal assigned to a property by unoptimized code
 * in the old generation, and such a dead closure keeps its request and the caller's continuation through
 * every scavenge until the next mark-compact: undici's `request` API does `this.abort = (reason) => ...`),
 * and its response is registered in no `FinalizationRegistry` (a scavenge keeps what is registered in one).
 *
 * @internal
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeStream from "@effect/platform-node/NodeStream"
import * as Undici from "@effect/platform-node/Undici"
import { Cause, Channel, Effect, Inspectable, Layer, Option, Result, Scope, Stream, Tracer } from "effect"
import { pipeArguments } from "effect/Pipeable"
import type * as Schema from "effect/Schema"
import type * as Socket from "effect/socket/Socket"
import {
  Cookies,
  Headers,
  HttpClient,
  HttpClientError,
  type HttpClientRequest,
  HttpClientResponse,
  HttpIncomingMessage,
  Url,
  UrlParams
} from "effect/http"

type Controller = Undici.Dispatcher.DispatchController
type Resume<A> = (effect: Effect.Effect<A, HttpClientError.HttpClientError>) => void

/** Bytes a stream being read lets wait before the connection is paused. */
export const highWaterMark = 64 * 1024

/** The empty list of chunks: never added to (`onResponseData` replaces an empty list). */
const noChunks: Array<Uint8Array> = []

/** One request in flight: undici's handler for it, then its response body's buffer. */
class Exchange implements Undici.Dispatcher.DispatchHandler {
  readonly request: HttpClientRequest.HttpClientRequest
  readonly url: URL
  /** The call waiting for the response head, until it comes. */
  private head: Resume<HttpClientResponse.HttpClientResponse> | undefined
  private controller: Controller | undefined = undefined
  /** Why the request was aborted before undici started it. */
  private aborted: Error | undefined = undefined
  /** Body chunks not read yet, and their size. */
  private chunks: Array<Uint8Array> = noChunks
  private size = 0
  /** The whole body once `whole` has read it. */
  private bytes: ArrayBuffer | undefined = undefined
  /** `true` once the body ended, the error once it failed. */
  done: true | Error | undefined = undefined
  /** Whether a stream reads the body (and so may pause the connection). */
  streaming = false
  /** The reader waiting for more of the body. */
  private wake: ((effect: Effect.Effect<void>) => void) | undefined = undefined

  constructor(
    request: HttpClientRequest.HttpClientRequest,
    url: URL,
    head: Resume<HttpClientResponse.HttpClientResponse>
  ) {
    this.request = request
    this.url = url
    this.head = head
  }

  onRequestStart(controller: Controller): void {
    this.controller = controller
    if (this.aborted !== undefined) controller.abort(this.aborted)
  }
  onResponseStart(_: Controller, status: number, headers: Record<string, string | Array<string> | undefined>): void {
    // informational responses (100 Continue, 103 Early Hints) come before the real one
    if (status < 200) return
    const head = this.head
    this.head = undefined
    head?.(Effect.succeed(new UpstreamResponse(this, status, headers)))
  }
  onResponseData(controller: Controller, chunk: Buffer): void {
    // a one-element list rather than a push onto an empty one, which makes room for 17 (a stream reads
    // most chunks one by one)
    if (this.chunks.length === 0) this.chunks = [chunk]
    else this.chunks.push(chunk)
    this.size += chunk.length
    if (this.streaming && this.size > highWaterMark) controller.pause()
    this.notify()
  }
  onResponseEnd(): void {
    this.done = true
    this.controller = undefined
    this.notify()
  }
  onResponseError(_: Controller | null, error: Error): void {
    this.controller = undefined
    const head = this.head
    if (head !== undefined) {
      this.head = undefined
      head(
        Effect.fail(
          new HttpClientError.HttpClientError({
            reason: new HttpClientError.TransportError({ request: this.request, cause: error })
          })
        )
      )
    }
    this.done = error
    this.notify()
  }

  /** The `AbortSignal` listener (`HttpClient.make`'s signal): aborts the request. */
  handleEvent(): void {
    this.abort(new Error("The request was aborted"))
  }

  /** Aborts the request unless it is over: undici fails it (`onResponseError`) and closes its connection. */
  abort(reason: Error): void {
    if (this.done !== undefined) return
    if (this.controller === undefined) this.aborted ??= reason
    else this.controller.abort(reason)
  }

  /** The chunks read so far, taken; resumes a paused connection. */
  take(): Array<Uint8Array> {
    const chunks = this.chunks
    if (chunks.length === 0) return chunks
    this.chunks = noChunks
    this.size = 0
    if (this.controller?.paused === true) this.controller.resume()
    return chunks
  }

  /** The whole body, once it has ended (the same buffer each time). */
  whole(): ArrayBuffer {
    if (this.bytes !== undefined) return this.bytes
    // every byte is written below: no need to zero them first (and its ArrayBuffer is exactly the body)
    const out = Buffer.allocUnsafeSlow(this.size)
    let at = 0
    for (const chunk of this.take()) {
      out.set(chunk, at)
      at += chunk.length
    }
    return (this.bytes = out.buffer)
  }

  /**
   * Waits until undici brings more of the body (or its end); one effect for all the waits of a body. A body
   * has one reader at a time: a second one waiting beside it dies.
   */
  readonly more: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.wake !== undefined) return resume(Effect.die(new Error("The response body is already being read")))
    this.wake = resume
    return this.unwait
  })
  private readonly unwait: Effect.Effect<void> = Effect.sync(() => {
    this.wake = undefined
  })

  private notify(): void {
    const wake = this.wake
    if (wake === undefined) return
    this.wake = undefined
    wake(Effect.void)
  }
}

/** Sends `request` through `dispatcher`; `signal` (from `HttpClient.make`) aborts it too. */
const send = (
  dispatcher: Undici.Dispatcher,
  request: HttpClientRequest.HttpClientRequest,
  url: URL,
  signal: AbortSignal | undefined
): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError> => {
  const { body } = request
  if (body._tag === "Stream") {
    return Effect.flatMap(NodeStream.toReadable(body.stream), (readable) =>
      dispatch(dispatcher, request, url, signal, readable, request.headers)
    )
  }
  if (body._tag === "FormData") {
    const form = new Undici.FormData()
    for (const [key, value] of body.formData) form.append(key, value)
    // undici writes the content type with the multipart boundary
    return dispatch(dispatcher, request, url, signal, form, Headers.remove(request.headers, "content-type"))
  }
  return dispatch(
    dispatcher,
    request,
    url,
    signal,
    body._tag === "Empty" ? null : (body.body as Uint8Array),
    request.headers
  )
}

const dispatch = (
  dispatcher: Undici.Dispatcher,
  request: HttpClientRequest.HttpClientRequest,
  url: URL,
  signal: AbortSignal | undefined,
  body: Exclude<Undici.Dispatcher.DispatchOptions["body"], undefined>,
  headers: Headers.Headers
) =>
  Effect.callback<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError>((resume) => {
    const exchange = new Exchange(request, url, resume)
    if (request.headers.upgrade !== undefined) {
      exchange.onResponseError(null, new Error("this client does not support upgrades"))
      return
    }
    signal?.addEventListener("abort", exchange, { once: true })
    try {
      dispatcher.dispatch(
        {
          origin: url.origin,
          path: url.pathname + url.search,
          method: request.method,
          headers,
          body,
          // timeouts are the caller's (Effect.timeout, interruption)
          headersTimeout: 0,
          bodyTimeout: 0
        },
        exchange
      )
    } catch (cause) {
      exchange.onResponseError(null, cause instanceof Error ? cause : new Error(String(cause)))
    }
    return Effect.sync(() => exchange.abort(new Error("The request was interrupted")))
  })

const decodeError = (response: UpstreamResponse, cause: unknown) =>
  new HttpClientError.HttpClientError({
    reason: new HttpClientError.DecodeError({ request: response.request, response, cause })
  })

/** The body as a stream of the chunks undici brings; ending the stream before the body's end aborts the request. */
const bodyStream = (response: UpstreamResponse): Stream.Stream<Uint8Array, HttpClientError.HttpClientError> =>
  Stream.fromChannel(
    Channel.fromTransform((_, scope) => {
      const exchange = response.exchange
      exchange.streaming = true
      const pull: Effect.Effect<Array<Uint8Array>, HttpClientError.HttpClientError | Cause.Done> = Effect.suspend(
        () => {
          const chunks = exchange.take()
          if (chunks.length > 0) return Effect.succeed(chunks)
          if (exchange.done === true) return Cause.done()
          if (exchange.done !== undefined) return Effect.fail(decodeError(response, exchange.done))
          return next
        }
      )
      const next = Effect.flatMap(exchange.more, () => pull)
      return Effect.as(
        Scope.addFinalizer(
          scope,
          Effect.sync(() => exchange.abort(new Error("The response body was not read to its end")))
        ),
        pull as Effect.Effect<[Uint8Array, ...Array<Uint8Array>], HttpClientError.HttpClientError | Cause.Done>
      )
    })
  )

/** The whole body; interrupting the read aborts the request. */
const bodyBytes = (response: UpstreamResponse): Effect.Effect<ArrayBuffer, HttpClientError.HttpClientError> => {
  const exchange = response.exchange
  const loop: Effect.Effect<ArrayBuffer, HttpClientError.HttpClientError> = Effect.suspend(() => {
    if (exchange.done === true) return Effect.succeed(exchange.whole())
    if (exchange.done !== undefined) return Effect.fail(decodeError(response, exchange.done))
    return next
  })
  const next = Effect.flatMap(exchange.more, () => loop)
  return Effect.onInterrupt(loop, () => Effect.sync(() => exchange.abort(new Error("The request was interrupted"))))
}

const utf8 = new TextDecoder()

/** The prototype of effect's `Headers` (what `Headers.fromInput` builds on). */
const headersProto: object = Object.getPrototypeOf(Headers.empty)

/**
 * undici's parsed headers (names already lower-case) as effect's `Headers`, a repeated header's values joined
 * with ", " as `Headers.fromInput` does. Built by hand: `fromInput` goes through `Object.entries` and
 * lower-cases each name again, 1.6 KB more allocated per call (19.3 against 17.7 KB, the client measured on
 * its own with a dozen response headers).
 */
const headersOf = (source: Record<string, string | Array<string> | undefined>): Headers.Headers => {
  const out: Record<string, string> = Object.create(headersProto)
  for (const name in source) {
    const value = source[name]
    if (value !== undefined) out[name] = typeof value === "string" ? value : value.join(", ")
  }
  return out as Headers.Headers
}

/** A response from upstream: its head as undici parsed it, its body read from its `Exchange`. */
class UpstreamResponse extends Inspectable.Class implements HttpClientResponse.HttpClientResponse {
  readonly [HttpIncomingMessage.TypeId] = HttpIncomingMessage.TypeId
  readonly [HttpClientResponse.TypeId] = HttpClientResponse.TypeId
  readonly exchange: Exchange
  readonly status: number
  private readonly source: Record<string, string | Array<string> | undefined>
  private parsed: Headers.Headers | undefined = undefined

  constructor(exchange: Exchange, status: number, headers: Record<string, string | Array<string> | undefined>) {
    super()
    this.exchange = exchange
    this.status = status
    this.source = headers
  }

  get request(): HttpClientRequest.HttpClientRequest {
    return this.exchange.request
  }
  get url(): string {
    const { hash, href } = this.exchange.url
    return hash === "" ? href : href.slice(0, -hash.length)
  }
  get headers(): Headers.Headers {
    return (this.parsed ??= headersOf(this.source))
  }
  get cookies(): Cookies.Cookies {
    const header = this.source["set-cookie"]
    return header === undefined ? Cookies.empty : Cookies.fromSetCookie(header)
  }
  get remoteAddress(): Option.Option<string> {
    return Option.none()
  }
  get stream(): Stream.Stream<Uint8Array, HttpClientError.HttpClientError> {
    return bodyStream(this)
  }
  get arrayBuffer(): Effect.Effect<ArrayBuffer, HttpClientError.HttpClientError> {
    return bodyBytes(this)
  }
  get text(): Effect.Effect<string, HttpClientError.HttpClientError> {
    return Effect.map(bodyBytes(this), (bytes) => utf8.decode(bytes))
  }
  get json(): Effect.Effect<Schema.Json, HttpClientError.HttpClientError> {
    return Effect.flatMap(this.text, (text) =>
      Effect.try({ try: () => (text === "" ? null : JSON.parse(text)), catch: (cause) => decodeError(this, cause) })
    )
  }
  get urlParamsBody(): Effect.Effect<UrlParams.UrlParams, HttpClientError.HttpClientError> {
    return Effect.flatMap(this.text, (text) =>
      Effect.try({
        // a leading "?" is form data; URLSearchParams would drop it as a query prefix
        try: () => UrlParams.fromInput(new URLSearchParams(text.replace(/^\?/, "%3F"))),
        catch: (cause) => decodeError(this, cause)
      })
    )
  }
  get formData(): Effect.Effect<FormData, HttpClientError.HttpClientError> {
    return Effect.flatMap(bodyBytes(this), (body) =>
      Effect.tryPromise({
        try: () => new globalThis.Response(body, { headers: this.headers }).formData(),
        catch: (cause) => decodeError(this, cause)
      })
    )
  }
  get upgrade(): Effect.Effect<Socket.Socket, HttpClientError.HttpClientError> {
    return Effect.fail(
      new HttpClientError.HttpClientError({
        reason: new HttpClientError.StatusCodeError({ request: this.request, response: this })
      })
    )
  }
  toJSON(): unknown {
    return HttpIncomingMessage.inspect(this, {
      _id: "effect/http/HttpClientResponse",
      request: this.request.toJSON(),
      status: this.status
    })
  }
  pipe() {
    // eslint-disable-next-line prefer-rest-params -- effect's `pipe` convention
    return pipeArguments(this, arguments)
  }
}

/**
 * The client over `dispatcher`. A call whose span nobody would see (`HttpClient.TracerDisabledWhen`, or
 * `Tracer.DisablePropagation`) is sent directly; any other goes through `HttpClient.make`, for its span and
 * trace headers.
 */
export const make = (dispatcher: Undici.Dispatcher): HttpClient.HttpClient => {
  const traced = HttpClient.make((request, url, signal) => send(dispatcher, request, url, signal))
  return HttpClient.makeWith(
    (effect) =>
      Effect.flatMap(effect, (request) =>
        Effect.withFiber((fiber) => {
          if (!fiber.getRef(Tracer.DisablePropagation) && !fiber.getRef(HttpClient.TracerDisabledWhen)(request)) {
            return traced.execute(request)
          }
          const url = Url.make(request.url, request.urlParams, Option.getOrUndefined(request.hash))
          return Result.isFailure(url)
            ? Effect.fail(
                new HttpClientError.HttpClientError({
                  reason: new HttpClientError.InvalidUrlError({ request, cause: url.failure })
                })
              )
            : send(dispatcher, request, url.success, undefined)
        })
      ),
    Effect.succeed as HttpClient.HttpClient.Preprocess<never, never>
  )
}

/** The client on its own undici `Agent`, closed with the layer. */
export const layer: Layer.Layer<HttpClient.HttpClient> = Layer.effect(HttpClient.HttpClient)(
  Effect.map(NodeHttpClient.makeDispatcher, make)
)

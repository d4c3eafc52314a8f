/**
 * The chaos server's replies: a step (`ok` or a fault) rendered as the response to one request in its wire
 * format, whole, in part, late, or not at all.
 *
 * @internal
 */
import type * as Http from "node:http"
import type * as Net from "node:net"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { type Clock, Duration, Effect, Stream } from "effect"
import { type HttpServerRequest, HttpServerResponse } from "effect/http"
import type { Fault, Step } from "./faults.ts"
import type { Limiter } from "./limits.ts"
import type { Answer, ErrorContext, ErrorKind, Frames, Wire } from "./wire.ts"

/** Resolved server settings. */
export interface Settings {
  readonly stallMs: number
  readonly slowHeadersMs: number
  readonly keepAliveIntervalMs: number
  readonly retryAfterSeconds: number
  readonly text: string
  readonly cachedInputTokens: number
  readonly apiKey: string | undefined
  readonly hugeBodyBytes: number
  /** Rate limits per model, enforced at arrival (limits.ts). */
  readonly limiter?: Limiter | undefined
  /** How many answer chunks the partial faults send; `undefined`: half. */
  readonly partialChunks: number | undefined
  /** The clock of stalls and timestamps: real time, even when the server is built under a TestClock. */
  readonly clock: Clock.Clock
}

/** One request being answered: what every reply needs of it. */
export interface Exchange {
  readonly request: HttpServerRequest.HttpServerRequest
  readonly wire: Wire
  readonly settings: Settings
  readonly sequence: number
  readonly stream: boolean
  /** The request id header, when the wire has one. */
  readonly baseHeaders: Record<string, string>
  readonly errorContext: ErrorContext
  /** `x-chaos-delay-ms` as a number (`NaN` when absent). */
  readonly delayOverride: number
}

/** The error kinds whose bodies each wire renders (the other faults are about transport and streams). */
export const errorKinds: ReadonlySet<string> = new Set<ErrorKind>([
  "rate-limit",
  "insufficient-quota",
  "overloaded",
  "server-error",
  "authentication",
  "permission-denied",
  "model-not-found",
  "bad-request",
  "context-length",
  "content-filter"
])

const encoder = new TextEncoder()
const jsonType = "application/json"
const sseType = "text/event-stream; charset=utf-8"

const htmlPage = (status: number, title: string) =>
  `<html>\r\n<head><title>${status} ${title}</title></head>\r\n<body>\r\n<center><h1>${status} ${title}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n`

const portalPage =
  "<!DOCTYPE html><html><head><title>Sign in to the network</title></head><body><p>Please sign in to continue.</p></body></html>"

/** A JSON response. */
export const json = (status: number, body: unknown, headers: Record<string, string>) =>
  HttpServerResponse.text(JSON.stringify(body), { status, contentType: jsonType, headers })

const nodeResponse = (request: HttpServerRequest.HttpServerRequest) =>
  NodeHttpServerRequest.toServerResponse(request) as Http.ServerResponse

const destroySocket = (request: HttpServerRequest.HttpServerRequest, reset: boolean) =>
  Effect.sync(() => {
    const socket = NodeHttpServerRequest.toIncomingMessage(request).socket as Net.Socket
    if (reset && typeof socket.resetAndDestroy === "function") socket.resetAndDestroy()
    else socket.destroy()
  })

/** A stream that sends the response headers at once (as real APIs do), before any body byte. */
const flushHeaders = (request: HttpServerRequest.HttpServerRequest): Stream.Stream<never> =>
  Stream.fromEffectDrain(Effect.sync(() => nodeResponse(request).flushHeaders()))

/** Frames sent back to back: one buffer, one write. */
const texts = (parts: ReadonlyArray<string>): Stream.Stream<Uint8Array> => {
  const text = parts.join("")
  return text === "" ? Stream.empty : Stream.succeed(encoder.encode(text))
}

const sleep = (x: Exchange, ms: number) => x.settings.clock.sleep(Duration.millis(ms))

/** The fault's delay: `x-chaos-delay-ms` when it holds a non-negative number, else the setting. */
const delay = (x: Exchange, fallback: number) =>
  Number.isFinite(x.delayOverride) && x.delayOverride >= 0 ? x.delayOverride : fallback

/** Emits nothing for `ms`, then drops the connection and waits for the handler to be interrupted. */
const stallThenDrop = (x: Exchange, ms: number): Stream.Stream<never> =>
  Stream.fromEffectDrain(Effect.andThen(sleep(x, ms), Effect.andThen(destroySocket(x.request, false), Effect.never)))

const sse = (body: Stream.Stream<Uint8Array>, headers: Record<string, string>, status = 200) =>
  HttpServerResponse.stream(body, {
    status,
    contentType: sseType,
    headers: { "cache-control": "no-cache", ...headers }
  })

const streamed = (body: Stream.Stream<Uint8Array>, contentType: string, headers: Record<string, string>) =>
  HttpServerResponse.stream(body, { status: 200, contentType, headers })

/** How many deltas the partial faults send: `partialChunks`, else half the answer (at least one). */
const partial = (x: Exchange, frames: Frames) =>
  Math.min(frames.deltas.length, x.settings.partialChunks ?? Math.max(1, Math.floor(frames.deltas.length / 2)))

/** The wire's error response of a kind. */
export const errorReply = (x: Exchange, kind: ErrorKind): HttpServerResponse.HttpServerResponse => {
  const reply = x.wire.error(kind, x.errorContext)
  const headers = { ...x.baseHeaders, ...reply.headers }
  // a rejection sent as an answer (Gemini's blocked prompt) is a stream's one event when streaming
  return reply.status === 200 && x.stream
    ? sse(texts([`data: ${JSON.stringify(reply.body)}\n\n`]), headers)
    : json(reply.status, reply.body, headers)
}

/** A Cloudflare error page, as a proxy in front of the provider sends it. */
const proxyPage = (x: Exchange, status: number, title: string) =>
  HttpServerResponse.text(htmlPage(status, title), {
    status,
    contentType: "text/html",
    headers: { server: "cloudflare", "cf-ray": `8chaos${x.sequence}-AMS` }
  })

/**
 * The reply of a step that answers (`ok`) or fails after the request was accepted: `answer` is what a
 * healthy model would say, `okHeaders` a healthy response's headers. Only `slow-headers` waits before its
 * response; `no-response` and `connection-reset` never give one.
 */
export const answerReply = (
  x: Exchange,
  step: Step,
  answer: Answer,
  okHeaders: Record<string, string>
): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  switch (step) {
    case "slow-headers":
      return Effect.andThen(
        sleep(x, delay(x, x.settings.slowHeadersMs)),
        Effect.sync(() => response(x, "ok", answer, okHeaders))
      )
    case "no-response":
      return Effect.andThen(
        sleep(x, delay(x, x.settings.stallMs)),
        Effect.andThen(destroySocket(x.request, false), Effect.never)
      )
    case "connection-reset":
      return Effect.andThen(destroySocket(x.request, true), Effect.never)
    default:
      return Effect.succeed(response(x, step, answer, okHeaders))
  }
}

/** The response of a step, sent at once (its body may stall, be cut or drop the connection). */
const response = (
  x: Exchange,
  step: Exclude<Step, "slow-headers" | "no-response" | "connection-reset">,
  answer: Answer,
  okHeaders: Record<string, string>
): HttpServerResponse.HttpServerResponse => {
  const { request, settings, wire } = x
  switch (step) {
    case "ok":
    case "refusal":
    case "prefill-rejected": {
      if (!x.stream) return json(200, wire.body(answer), okHeaders)
      const frames = wire.frames(answer)
      return sse(texts([...frames.head, ...frames.deltas, ...frames.tail]), okHeaders)
    }
    case "no-end-marker": {
      if (!x.stream) return json(200, wire.body(answer), okHeaders)
      const frames = wire.frames(answer)
      const tail = wire.endMarker ? frames.tail.slice(0, -1) : frames.tail
      return sse(texts([...frames.head, ...frames.deltas, ...tail]), okHeaders)
    }
    case "slow-first-token": {
      const wait = Stream.fromEffectDrain(sleep(x, delay(x, settings.slowHeadersMs)))
      if (!x.stream) {
        const body = texts([JSON.stringify(wire.body(answer))])
        return streamed(Stream.concat(flushHeaders(request), Stream.concat(wait, body)), jsonType, okHeaders)
      }
      const frames = wire.frames(answer)
      return sse(
        Stream.concat(
          Stream.concat(flushHeaders(request), texts(frames.head)),
          Stream.concat(wait, texts([...frames.deltas, ...frames.tail]))
        ),
        okHeaders
      )
    }
    case "rate-limit-no-retry-after":
      return json(429, wire.error("rate-limit", x.errorContext).body, x.baseHeaders)
    case "bad-gateway":
      return proxyPage(x, 502, "Bad Gateway")
    case "service-unavailable":
      return proxyPage(x, 503, "Service Temporarily Unavailable")
    case "garbage-headers": {
      const reply = wire.error("rate-limit", x.errorContext)
      return json(reply.status, reply.body, { ...x.baseHeaders, ...wire.garbageRateLimitHeaders })
    }
    case "stall-first-byte":
      return streamed(
        Stream.concat(flushHeaders(request), stallThenDrop(x, delay(x, settings.stallMs))),
        x.stream ? sseType : jsonType,
        okHeaders
      )
    case "stall-mid-stream": {
      const stall = stallThenDrop(x, delay(x, settings.stallMs))
      if (!x.stream) {
        const bodyText = JSON.stringify(wire.body(answer))
        const half = texts([bodyText.slice(0, Math.floor(bodyText.length / 2))])
        return streamed(Stream.concat(Stream.concat(flushHeaders(request), half), stall), jsonType, okHeaders)
      }
      const frames = wire.frames(answer)
      return sse(
        Stream.concat(texts([...frames.head, ...frames.deltas.slice(0, partial(x, frames))]), stall),
        okHeaders
      )
    }
    case "truncated-stream": {
      if (!x.stream) {
        // Content-Length promises the whole body; half of it arrives, then the connection drops.
        const bytes = encoder.encode(JSON.stringify(wire.body(answer)))
        return HttpServerResponse.stream(
          Stream.concat(
            Stream.succeed(bytes.subarray(0, Math.floor(bytes.length / 2))),
            Stream.fromEffectDrain(
              Effect.andThen(sleep(x, 10), Effect.andThen(destroySocket(request, false), Effect.never))
            )
          ),
          { status: 200, contentType: jsonType, contentLength: bytes.length, headers: okHeaders }
        )
      }
      const frames = wire.frames(answer)
      return sse(texts([...frames.head, ...frames.deltas.slice(0, partial(x, frames))]), okHeaders)
    }
    case "stream-error": {
      if (!x.stream) return errorReply(x, wire.streamErrorKind)
      const frames = wire.frames(answer)
      return sse(
        texts([...frames.head, ...frames.deltas.slice(0, partial(x, frames)), wire.errorFrame(answer.requestId)]),
        okHeaders
      )
    }
    case "malformed-json": {
      if (!x.stream) {
        return HttpServerResponse.text(`{"id": "${answer.id}", "choices": [ }, "usage": {`, {
          status: 200,
          contentType: jsonType,
          headers: okHeaders
        })
      }
      const frames = wire.frames(answer)
      return sse(
        texts([
          ...frames.head,
          `data: {"choices": [{"delta": {"content": "oops" ]\n\n`,
          ...frames.deltas,
          ...frames.tail
        ]),
        okHeaders
      )
    }
    case "keep-alive-only": {
      const interval = Math.max(1, settings.keepAliveIntervalMs)
      const count = Math.max(1, Math.floor(delay(x, settings.stallMs) / interval))
      const beat = encoder.encode(x.stream ? ": keep-alive\n\n" : "\n")
      const beats = Stream.fromIterable(Array.from({ length: count }, () => beat)).pipe(
        Stream.mapEffect((b) => Effect.as(sleep(x, interval), b))
      )
      return streamed(Stream.concat(flushHeaders(request), beats), x.stream ? sseType : jsonType, okHeaders)
    }
    case "wrong-content-type":
      return HttpServerResponse.text(portalPage, { status: 200, contentType: "text/html; charset=utf-8" })
    case "huge-body": {
      const block = encoder.encode("x".repeat(64 * 1024))
      const blocks = Math.ceil(settings.hugeBodyBytes / block.length)
      const padding = Stream.fromIterable(Array.from({ length: blocks }, () => block))
      if (!x.stream) {
        return streamed(
          Stream.concat(Stream.concat(texts([`{"id":"${answer.id}","padding":"`]), padding), texts([`"}`])),
          jsonType,
          okHeaders
        )
      }
      const frames = wire.frames(answer)
      return sse(
        Stream.concat(
          Stream.concat(texts([...frames.head, `data: {"padding":"`]), padding),
          texts([`"}\n\n`, ...frames.tail])
        ),
        okHeaders
      )
    }
    default:
      return errorReply(x, step satisfies Fault as ErrorKind)
  }
}

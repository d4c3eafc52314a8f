/**
 * The HTTP engine shared by the providers: sends one request, classifies every failure with the core
 * classifier, reads the rate-limit snapshot from every response, caps what it reads, and turns an SSE body
 * into chunks that end in `Finish` only once the stream is complete (see `stream.ts`).
 *
 * No retries and no timeouts here: those are stages of the toolkit. The provider's span and the HTTP client's
 * are made only where a span could be seen (`Telemetry.spanVisible`); the client's keeps no key and no prompt
 * (see `withoutRetainedSecrets`); the prompt is recorded only when `tracePrompts` is set.
 *
 * @internal
 */
import {
  Classification,
  LlmError,
  type LlmProvider,
  type LlmRequest,
  type LlmResponse,
  RateLimitSnapshot,
  Telemetry
} from "@llm-resilience/core"
import { Clock, Effect, Stream } from "effect"
import * as Sse from "effect/encoding/Sse"
import { Headers, type HttpClient, type HttpClientError, HttpClientRequest, type HttpClientResponse } from "effect/http"
import type { Codec, DecodedBody, FinishMeta, Problem } from "./codec.ts"
import { encodeBody, excerpt, parseJson, responseOf } from "./codec.ts"
import { withoutRetainedSecrets } from "./options.ts"
import { decodeEvents, makeDecoder } from "./stream.ts"

/** Byte caps on what the engine reads from a provider. */
export interface Limits {
  /** Largest whole (non-streamed) response body. */
  readonly maxResponseBytes: number
  /** Largest part of an error body that is read (the rest is dropped; classification uses the prefix). */
  readonly maxErrorBodyBytes: number
  /** Largest single SSE event. */
  readonly maxEventBytes: number
}

/** Where one call goes: its URL and extra query parameters. */
export interface Route {
  readonly url: string
  readonly urlParams?: Readonly<Record<string, string>> | undefined
}

/** Everything the engine needs to call one provider. */
export interface EngineOptions {
  readonly name: string
  readonly spanPrefix: string
  readonly url: string
  /** The URL of one call when it depends on the model or on streaming (Gemini, Azure deployments). */
  readonly route?: ((model: string, stream: boolean) => Route) | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly urlParams: Readonly<Record<string, string>>
  readonly codec: Codec
  readonly limits: Limits
  /** Removes secrets from any text that ends up in an error message. */
  readonly scrub: (text: string) => string
  /** Records the request body (the prompt) on the provider's span as `llm.request.body`. Default off. */
  readonly tracePrompts?: boolean | undefined
}

type ProviderError = LlmError.ProviderError

interface CallContext {
  readonly provider: string
  readonly model: string
  status?: number
  requestId?: string
  /** The response's headers, read once (the client builds them anew on every access). */
  headers: Headers.Headers
}

const fields = (c: CallContext) => ({
  provider: c.provider,
  model: c.model,
  ...(c.status === undefined ? {} : { status: c.status }),
  ...(c.requestId === undefined ? {} : { requestId: c.requestId })
})

const isJsonType = (contentType: string): boolean => /^application\/(?:[\w.+-]+\+)?json\b/i.test(contentType.trim())

const isSseType = (contentType: string): boolean => /^text\/event-stream\b/i.test(contentType.trim())

const causeMessage = (error: HttpClientError.HttpClientError): string => {
  const reason = error.reason as { readonly _tag: string; readonly cause?: unknown }
  const parts: Array<string> = [reason._tag]
  let cause = reason.cause
  for (let depth = 0; depth < 3 && cause instanceof Error; depth++) {
    const code = (cause as { code?: unknown }).code
    parts.push(typeof code === "string" ? `${cause.message} (${code})` : cause.message)
    cause = cause.cause
  }
  return parts.join(": ")
}

const decodeUtf8 = (parts: ReadonlyArray<Uint8Array>): string => {
  const decoder = new TextDecoder()
  let text = ""
  for (const part of parts) text += decoder.decode(part, { stream: true })
  return text + decoder.decode()
}

const utf8 = new TextDecoder()

/**
 * Reads at most `max` bytes of a body. Stops reading (and so releases the connection) once the cap is
 * crossed; `over` says whether it was. A body whose declared length is within the cap is read whole at once
 * (the HTTP client reads exactly that many bytes): no stream, and nothing to abort once it is read.
 */
const readCapped = (
  response: HttpClientResponse.HttpClientResponse,
  headers: Headers.Headers,
  max: number
): Effect.Effect<{ readonly text: string; readonly over: boolean }, HttpClientError.HttpClientError> => {
  const declared = headers["content-length"]
  const encoding = headers["content-encoding"]
  if (
    declared !== undefined &&
    /^\d+$/.test(declared) &&
    Number(declared) <= max &&
    (encoding === undefined || encoding === "identity")
  ) {
    return Effect.map(response.arrayBuffer, (bytes) => ({ text: utf8.decode(bytes), over: false }))
  }
  return Effect.suspend(() => {
    const parts: Array<Uint8Array> = []
    let size = 0
    let over = false
    return response.stream.pipe(
      Stream.takeWhile((chunk) => {
        if (size + chunk.length > max) {
          over = true
          return false
        }
        parts.push(chunk)
        size += chunk.length
        return true
      }),
      Stream.runDrain,
      Effect.map(() => ({ text: decodeUtf8(parts), over }))
    )
  })
}

/** Builds the provider service on an HTTP client. */
export const makeEngine = (client: HttpClient.HttpClient, o: EngineOptions): LlmProvider.LlmProvider["Service"] => {
  const { codec, limits, name, scrub } = o
  const http = withoutRetainedSecrets(client)
  const base = HttpClientRequest.post(o.url, { headers: o.headers, urlParams: o.urlParams })
  const jsonRequest = HttpClientRequest.setHeader(base, "accept", "application/json")
  const sseRequest = HttpClientRequest.setHeader(base, "accept", "text/event-stream")

  const send = (request: LlmRequest.LlmRequest, stream: boolean, c: CallContext) => {
    let body: string
    try {
      body = JSON.stringify(encodeBody(codec, request, stream))
    } catch (cause) {
      return Effect.fail(
        new LlmError.BadRequest({
          ...fields(c),
          message: scrub(`the request could not be encoded as JSON: ${cause instanceof Error ? cause.message : ""}`)
        })
      )
    }
    let outgoing = stream ? sseRequest : jsonRequest
    const route = o.route?.(request.model, stream)
    if (route !== undefined) {
      outgoing = HttpClientRequest.appendUrlParams(HttpClientRequest.setUrl(outgoing, route.url), route.urlParams ?? {})
    }
    const sent = http(HttpClientRequest.bodyText(outgoing, body, "application/json"))
    return (
      o.tracePrompts === true ? Effect.andThen(Effect.annotateCurrentSpan("llm.request.body", scrub(body)), sent) : sent
    ).pipe(
      Effect.mapError(
        (error): ProviderError =>
          new LlmError.ConnectionError({ ...fields(c), message: scrub(`request failed: ${causeMessage(error)}`) })
      )
    )
  }

  /** Observes a response: status, request id, span attributes (when a span could be seen); the time it was seen. */
  const observe = (response: HttpClientResponse.HttpClientResponse, c: CallContext) =>
    Effect.withFiber((fiber) => {
      const nowMillis = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      c.status = response.status
      c.headers = response.headers
      const requestId = Classification.requestIdOf(c.headers)
      if (requestId !== undefined) c.requestId = requestId
      if (!Telemetry.spanVisible(fiber)) return Effect.succeed(nowMillis)
      return Effect.as(
        Effect.annotateCurrentSpan({
          "http.response.status_code": response.status,
          ...(requestId === undefined ? {} : { "llm.request_id": requestId })
        }),
        nowMillis
      )
    })

  const classify = (response: HttpClientResponse.HttpClientResponse, body: string, c: CallContext, nowMillis: number) =>
    Classification.classify({
      status: response.status,
      headers: c.headers,
      // a body that echoes the key (a proxy, a debugging server) must not carry it into the error message
      body: scrub(body),
      provider: c.provider,
      model: c.model,
      nowMillis
    })

  /** A non-2xx response: read (a capped prefix of) the body and classify. */
  const failure = (response: HttpClientResponse.HttpClientResponse, c: CallContext, nowMillis: number) =>
    readCapped(response, c.headers, limits.maxErrorBodyBytes).pipe(
      Effect.map((b) => b.text),
      Effect.orElseSucceed(() => ""),
      Effect.flatMap((body) => Effect.fail(classify(response, body, c, nowMillis)))
    )

  const discard = (response: HttpClientResponse.HttpClientResponse, c: CallContext) =>
    Effect.ignore(readCapped(response, c.headers, 0))

  const snapshotOf = (c: CallContext, nowMillis: number) => {
    const snapshot = RateLimitSnapshot.fromHeaders(c.headers, nowMillis)
    return RateLimitSnapshot.isEmpty(snapshot) ? undefined : snapshot
  }

  const problemError = (
    problem: Problem,
    response: HttpClientResponse.HttpClientResponse,
    c: CallContext,
    nowMillis: number
  ): ProviderError =>
    problem._tag === "ErrorReport"
      ? classify(response, problem.body, c, nowMillis)
      : new LlmError.ServerError({ ...fields(c), message: scrub(problem.detail) })

  const wrongType = (contentType: string, expected: string, c: CallContext) =>
    new LlmError.ServerError({
      ...fields(c),
      message: `expected ${expected}, got ${contentType === "" ? "no content type" : excerpt(contentType, 60)}`
    })

  /** Reads and decodes a whole JSON body. */
  const readWhole = (
    response: HttpClientResponse.HttpClientResponse,
    c: CallContext,
    nowMillis: number
  ): Effect.Effect<DecodedBody & { readonly json: unknown }, ProviderError> =>
    readCapped(response, c.headers, limits.maxResponseBytes).pipe(
      Effect.mapError(
        (error): ProviderError =>
          new LlmError.ConnectionError({
            ...fields(c),
            message: scrub(`connection lost while reading the response body: ${causeMessage(error)}`)
          })
      ),
      Effect.flatMap((body) => {
        if (body.over) {
          return Effect.fail(
            new LlmError.ServerError({
              ...fields(c),
              message: `response body exceeds ${limits.maxResponseBytes} bytes`
            })
          )
        }
        const parsed = parseJson(body.text)
        if (!parsed.ok) {
          return Effect.fail(
            new LlmError.ServerError({
              ...fields(c),
              message: scrub(`malformed JSON in response body: ${excerpt(body.text)}`)
            })
          )
        }
        const decoded = codec.decodeBody(parsed.value)
        return "_tag" in decoded
          ? Effect.fail(problemError(decoded, response, c, nowMillis))
          : Effect.succeed({ ...decoded, json: parsed.value })
      })
    )

  const completion = Effect.fnUntraced(function* (request: LlmRequest.LlmRequest) {
    const c: CallContext = { provider: name, model: request.model, headers: Headers.empty }
    const response = yield* send(request, false, c)
    const nowMillis = yield* observe(response, c)
    if (response.status < 200 || response.status >= 300) return yield* failure(response, c, nowMillis)
    const contentType = c.headers["content-type"] ?? ""
    if (contentType !== "" && !isJsonType(contentType)) {
      yield* discard(response, c)
      return yield* Effect.fail(wrongType(contentType, "application/json", c))
    }
    const decoded = yield* readWhole(response, c, nowMillis)
    const rateLimit = snapshotOf(c, nowMillis)
    return responseOf(
      decoded,
      { provider: name, model: request.model, requestId: c.requestId, rateLimit },
      { codec, request, body: decoded.json }
    )
  })

  // The span only where it could be seen (as the client's, see `withoutRetainedSecrets`), and no stack trace
  // (`Effect.fn` captures one per call, pointing here).
  const complete = (request: LlmRequest.LlmRequest): Effect.Effect<LlmResponse.LlmResponse, ProviderError> =>
    Effect.withFiber((fiber) =>
      Telemetry.spanVisible(fiber)
        ? Effect.withSpan(completion(request), `${o.spanPrefix}.complete`, {
            attributes: { "llm.provider": name, "llm.model": request.model },
            captureStackTrace: false
          })
        : completion(request)
    )

  const sseChunks = (
    response: HttpClientResponse.HttpClientResponse,
    c: CallContext,
    meta: FinishMeta,
    nowMillis: number
  ): Stream.Stream<LlmResponse.StreamChunk, ProviderError> => {
    const decoder = makeDecoder(codec, meta)
    const text = new TextDecoder()
    const events: Array<Sse.Event> = []
    const parser = Sse.makeParser(
      (event) => {
        // `retry:` directives are for EventSource reconnection; an LLM stream is never resumed.
        if (event._tag === "Event") events.push(event)
      },
      { maxEventSize: limits.maxEventBytes }
    )
    const oversized: Problem = { _tag: "Malformed", detail: `a stream event exceeds ${limits.maxEventBytes} bytes` }
    /** One read of the body: its text through the SSE parser, each whole event through the decoder. */
    const feed = (bytes: Uint8Array, out: Array<LlmResponse.StreamChunk>): Problem | undefined => {
      if (parser.feed(text.decode(bytes, { stream: true })) !== undefined) return oversized
      let problem: Problem | undefined
      for (let i = 0; i < events.length && problem === undefined; i++) problem = decoder.feed(events[i], out)
      events.length = 0
      return problem
    }
    const truncated = (message: string) =>
      new LlmError.StreamTruncated({ ...fields(c), message: scrub(message), receivedChunks: decoder.received() })
    return decodeEvents(response.stream, decoder, {
      feed,
      failure: (problem) => problemError(problem, response, c, nowMillis),
      lost: (error) =>
        truncated(`connection lost mid-stream after ${decoder.received()} chunks: ${causeMessage(error)}`),
      truncated,
      provider: c.provider,
      model: c.model
    })
  }

  /** Sends a streamed request and answers the stream of its response. */
  const opened = (
    request: LlmRequest.LlmRequest
  ): Effect.Effect<Stream.Stream<LlmResponse.StreamChunk, ProviderError>, ProviderError> =>
    Effect.gen(function* () {
      const c: CallContext = { provider: name, model: request.model, headers: Headers.empty }
      const response = yield* send(request, true, c)
      const nowMillis = yield* observe(response, c)
      if (response.status < 200 || response.status >= 300) return yield* failure(response, c, nowMillis)
      const rateLimit = snapshotOf(c, nowMillis)
      const meta: FinishMeta = { provider: name, model: request.model, requestId: c.requestId, rateLimit }
      const contentType = c.headers["content-type"] ?? ""
      if (isSseType(contentType)) return sseChunks(response, c, meta, nowMillis)
      if (isJsonType(contentType)) {
        // Some OpenAI-compatible servers ignore `stream: true` and answer whole.
        const decoded = yield* readWhole(response, c, nowMillis)
        const finish: LlmResponse.StreamChunk = {
          _tag: "Finish",
          finishReason: decoded.finishReason,
          usage: decoded.usage,
          provider: name,
          model: decoded.model ?? request.model,
          ...(c.requestId === undefined ? {} : { requestId: c.requestId }),
          ...(rateLimit === undefined ? {} : { rateLimit })
        }
        return Stream.fromIterable<LlmResponse.StreamChunk>(
          decoded.text.length > 0 ? [{ _tag: "TextDelta", text: decoded.text }, finish] : [finish]
        )
      }
      yield* discard(response, c)
      return yield* Effect.fail(wrongType(contentType, "text/event-stream", c))
    })

  // as `complete`: the span only where it could be seen, without a stack trace
  const stream = (request: LlmRequest.LlmRequest): Stream.Stream<LlmResponse.StreamChunk, ProviderError> =>
    Stream.unwrap(
      Effect.withFiber((fiber) =>
        Telemetry.spanVisible(fiber)
          ? Effect.succeed(
              Stream.withSpan(Stream.unwrap(opened(request)), `${o.spanPrefix}.stream`, {
                attributes: { "llm.provider": name, "llm.model": request.model },
                captureStackTrace: false
              })
            )
          : opened(request)
      )
    )

  return { name, complete, stream }
}

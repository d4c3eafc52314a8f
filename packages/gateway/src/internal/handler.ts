/**
 * One gateway request: authenticate, read the wire's body and the override headers, resolve the model to
 * the paths to try, and answer whole or as a stream through the resilient provider.
 *
 * A stream's response starts only once its first chunk arrived: until then a failure is an HTTP error with
 * the right status (and a request-level fallback can still run); after it, a failure is the wire's in-band
 * error event.
 *
 * @internal
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { CallReport, LlmError, type LlmProvider, type LlmRequest, type LlmResponse } from "@llm-resilience/core"
import { Cause, Clock, Effect, Exit, Metric, Result, Scope, Stream } from "effect"
import type * as Arr from "effect/Array"
import { HttpServerRequest, HttpServerResponse } from "effect/http"
import type { Pull } from "effect"
import { type Failure, failureHeaders, failureOf, gatewayFailure } from "./failure.ts"
import type { Wire, WireRequest } from "./wire.ts"

/** A model clients can name: the path that serves it and the model its first step calls. */
export interface Target {
  readonly path: string
  readonly model: string
}

/** Who is calling: the tenant of the gateway key and its request limit. */
export interface Caller {
  readonly tenant: string | undefined
  readonly requestsPerMinute: number | undefined
}

/** What the handler needs from the gateway. */
export interface Context {
  readonly provider: LlmProvider.LlmProvider["Service"]
  readonly targets: ReadonlyMap<string, Target>
  /** The caller of a request's credentials; `undefined` when they are missing or wrong. */
  readonly authenticate: (headers: Readonly<Record<string, string | undefined>>) => Caller | undefined
  /** Counts a request against its tenant's limit; a failure when the limit is reached. */
  readonly admitTenant: (caller: Caller) => Effect.Effect<Failure | undefined>
  readonly nextId: () => string
  /** The largest request body read; a larger one is answered 413 without being read. */
  readonly maxBodyBytes: number
  /** Whether the gateway is shutting down (new requests are refused). */
  readonly draining?: () => boolean
}

const requestsOptions = {
  description: "Requests the gateway answered, by wire format, route and HTTP status",
  incremental: true
} as const

/** Requests served, by wire, route and status. */
export const requests = Metric.counter("gateway_requests", requestsOptions)

/**
 * The series of `requests` for one wire, by route and status, each made once: a counter with its own
 * attributes is the same series as `Metric.withAttributes(requests, ...)`, without merging the attributes and
 * building the series key again on every request. Routes come from the configuration and statuses from a
 * small set, so the cache stays small; it belongs to the gateway's handler and goes with it.
 */
const seriesOf = (wire: string) => {
  const series = new Map<string, Metric.Counter<number>>()
  return (route: string, status: number) => {
    const key = `${route} ${status}`
    let counter = series.get(key)
    if (counter === undefined) {
      counter = Metric.counter("gateway_requests", {
        ...requestsOptions,
        attributes: { wire, route, status: String(status) }
      })
      series.set(key, counter)
    }
    return counter
  }
}

// headers are set on the made response (here and for streams): passed to `text` or `stream`, they were
// copied into an object whose prototype is then swapped, a slow path of V8 that cost more than the rest of
// the response
const json = (body: unknown, status: number, headers: Record<string, string>) =>
  HttpServerResponse.setHeaders(
    HttpServerResponse.text(JSON.stringify(body), { status, contentType: "application/json" }),
    headers
  )

const decoder = new TextDecoder()
const encoder = new TextEncoder()

/** An `expect` header asking for `100 Continue` (Node's own test). */
const continueExpected = /(?:^|\W)100-continue(?:$|\W)/i

/** A body over the gateway's `maxBodyBytes`: not read (what was read is dropped). */
const tooLarge: unique symbol = Symbol("tooLarge")

/**
 * The request's body, parsed as JSON (`null` when empty, as `HttpServerRequest.json` reads it); `undefined`
 * when it is not JSON or the client went away while sending it; `tooLarge` once it passes `maxBytes` (by its
 * `content-length`, or as it arrives), after which the rest is discarded unread. Read from Node's request
 * itself: the platform's `json` goes through a cached `arrayBuffer` effect run on a fiber of its own and
 * `finished()`, which allocated more than the rest of the handler.
 */
const readJson = (message: IncomingMessage, response: ServerResponse, maxBytes: number): Effect.Effect<unknown> =>
  Effect.callback<unknown>((resume) => {
    if (Number(message.headers["content-length"] ?? 0) > maxBytes) {
      message.resume()
      return resume(Effect.succeed(tooLarge))
    }
    // a client that sent `expect: 100-continue` waits for it before the body: the platform sends it only from
    // its own body readers, and Node only when nothing listens for such requests (the platform does)
    const expect = message.headers.expect
    if (expect !== undefined && continueExpected.test(expect) && !response.headersSent) response.writeContinue()
    const chunks: Array<Buffer> = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size <= maxBytes) return void chunks.push(chunk)
      cleanup()
      chunks.length = 0
      message.resume()
      resume(Effect.succeed(tooLarge))
    }
    const cleanup = () => {
      message.off("data", onData).off("end", onEnd).off("error", onError)
    }
    function onEnd() {
      cleanup()
      const text = decoder.decode(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
      let json: unknown
      try {
        json = text === "" ? null : JSON.parse(text)
      } catch {
        json = undefined
      }
      resume(Effect.succeed(json))
    }
    function onError() {
      cleanup()
      resume(Effect.succeed(undefined))
    }
    // `on` rather than `once`: `cleanup` removes all three at the first of them, and `once` wraps each
    // listener in a bound function of its own
    message.on("data", onData).on("end", onEnd).on("error", onError)
    return Effect.sync(cleanup)
  })

const merge = (reports: ReadonlyArray<CallReport.Report>) =>
  reports.length === 1
    ? { attempts: reports[0].attempts, answeredBy: reports[0].answeredBy, admissionWaitMs: reports[0].admissionWaitMs }
    : {
        attempts: reports.flatMap((r) => r.attempts),
        answeredBy: reports.at(-1)?.answeredBy,
        admissionWaitMs: reports.reduce((sum, r) => sum + r.admissionWaitMs, 0)
      }

const isFallbackable = (error: LlmError.LlmError) => LlmError.fallbackTags.includes(error._tag)

const headerOf = (headers: Readonly<Record<string, string | undefined>>, name: string) => {
  const value = headers[name]?.trim()
  return value === undefined || value.length === 0 ? undefined : value
}

/** Serves one request of `wire`. */
export const handle = (ctx: Context, wire: Wire) => {
  const requestsOf = seriesOf(wire.name)
  const idPrefix = wire.name === "openai" ? "chatcmpl_" : "msg_"
  return Effect.gen(function* () {
    const http = yield* HttpServerRequest.HttpServerRequest
    const message = NodeHttpServerRequest.toIncomingMessage(http) as IncomingMessage
    const requestId = ctx.nextId()
    let route = "-"
    const answer = (response: HttpServerResponse.HttpServerResponse) =>
      Effect.as(Metric.update(requestsOf(route, response.status), 1), response)
    const fail = (failure: Failure, report?: unknown) => {
      const headers = failureHeaders(failure)
      if (report !== undefined) headers["x-llm-report"] = JSON.stringify(report)
      headers["x-request-id"] = requestId
      return answer(json(wire.errorBody(failure, requestId), wire.status(failure), headers))
    }

    if (ctx.draining?.() === true) {
      return yield* fail(gatewayFailure(503, "the gateway is shutting down: retry elsewhere", { retryAfterMs: 1_000 }))
    }
    // Node's headers (lowercase names) as they are: `http.headers` copies them on each read
    const h = message.headers as Readonly<Record<string, string | undefined>>
    const caller = ctx.authenticate(h)
    if (caller === undefined) return yield* fail(gatewayFailure(401, "missing or invalid gateway key"))
    const body = yield* readJson(
      message,
      NodeHttpServerRequest.toServerResponse(http) as ServerResponse,
      ctx.maxBodyBytes
    )
    if (body === tooLarge) {
      return yield* fail(gatewayFailure(413, `the request body is larger than ${ctx.maxBodyBytes} bytes`))
    }
    if (body === undefined) return yield* fail(gatewayFailure(400, "the body is not valid JSON"))
    const decoded = wire.decode(body)
    if ("problem" in decoded) {
      return yield* fail(
        gatewayFailure(400, decoded.problem, decoded.param === undefined ? undefined : { param: decoded.param })
      )
    }

    // overrides from headers
    const priority = headerOf(h, "x-llm-priority")
    if (priority !== undefined && priority !== "interactive" && priority !== "background") {
      return yield* fail(gatewayFailure(400, "x-llm-priority must be interactive or background"))
    }
    const pathHeader = headerOf(h, "x-llm-path")
    const fallbackHeader = headerOf(h, "x-llm-fallbacks")
    const names = [pathHeader ?? decoded.model, ...decoded.fallbacks]
    if (fallbackHeader !== undefined) for (const name of fallbackHeader.split(",")) names.push(name.trim())
    const targets: Array<Target> = []
    for (const name of names) {
      const target = ctx.targets.get(name)
      if (target === undefined) {
        return yield* fail(
          gatewayFailure(404, `The model \`${name}\` does not exist or you do not have access to it.`, {
            code: "model_not_found",
            param: "model"
          })
        )
      }
      targets.push(target)
    }
    route = targets[0].path
    const tenant = caller.tenant ?? headerOf(h, "x-llm-tenant")
    const conversationId = headerOf(h, "x-llm-conversation-id")
    const limited = yield* ctx.admitTenant(caller)
    if (limited !== undefined) return yield* fail(limited)

    const passThrough =
      decoded.foreign === undefined
        ? { [wire.name]: decoded.passThrough }
        : { ...decoded.foreign, [wire.name]: decoded.passThrough }
    const created = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    /** The request for one target, built whole (once for a request without fallbacks). */
    const at = (target: Target): LlmRequest.LlmRequest => ({
      model: target.model,
      messages: decoded.messages,
      ...(decoded.maxOutputTokens === undefined ? {} : { maxOutputTokens: decoded.maxOutputTokens }),
      ...(decoded.temperature === undefined ? {} : { temperature: decoded.temperature }),
      ...(decoded.responseFormat === undefined ? {} : { responseFormat: decoded.responseFormat }),
      passThrough,
      metadata: {
        ...(tenant === undefined ? {} : { tenant }),
        ...(conversationId === undefined ? {} : { conversationId }),
        ...(priority === undefined ? {} : { priority }),
        path: target.path
      }
    })

    if (!decoded.stream) {
      const reports: Array<CallReport.Report> = []
      for (let i = 0; ; i++) {
        const result = yield* Effect.result(ctx.provider.complete(at(targets[i])))
        if (Result.isSuccess(result)) {
          const r: LlmResponse.LlmResponse = result.success
          if (r.report !== undefined) reports.push(r.report)
          return yield* answer(
            json(wire.response(r, idPrefix + requestId, created), 200, {
              "x-request-id": requestId,
              "x-llm-provider": r.provider,
              "x-llm-model": r.model,
              "x-llm-report": JSON.stringify(merge(reports))
            })
          )
        }
        const report = CallReport.of(result.failure)
        if (report !== undefined) reports.push(report)
        if (i === targets.length - 1 || !isFallbackable(result.failure)) {
          return yield* fail(failureOf(result.failure), merge(reports))
        }
      }
    }
    return yield* streamed(ctx, wire, decoded, targets, at, requestId, idPrefix + requestId, created, answer, fail)
  })
}

/** A stream that delivered its first chunks, with the rest still to pull. */
interface Started {
  readonly first: Arr.NonEmptyReadonlyArray<LlmResponse.StreamChunk>
  readonly pull: Pull.Pull<Arr.NonEmptyReadonlyArray<LlmResponse.StreamChunk>, LlmError.LlmError>
  readonly scope: Scope.Closeable
  readonly model: string
}

const streamed = Effect.fnUntraced(function* (
  ctx: Context,
  wire: Wire,
  decoded: WireRequest,
  targets: ReadonlyArray<Target>,
  at: (target: Target) => LlmRequest.LlmRequest,
  requestId: string,
  responseId: string,
  created: number,
  answer: (r: HttpServerResponse.HttpServerResponse) => Effect.Effect<HttpServerResponse.HttpServerResponse>,
  fail: (failure: Failure, report?: unknown) => Effect.Effect<HttpServerResponse.HttpServerResponse>
) {
  const events: Array<CallReport.Event> = []
  const listener: CallReport.Listener = (event) => Effect.sync(() => events.push(event))
  let started: Started | undefined
  for (let i = 0; started === undefined; i++) {
    const target = targets[i]
    const scope = yield* Scope.make()
    const attempt = yield* Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const pull = yield* Stream.toPull(
          ctx.provider.stream(at(target)).pipe(Stream.provideService(CallReport.Events, listener))
        ).pipe(Scope.provide(scope))
        const first = yield* Effect.result(restore(pull))
        if (Result.isFailure(first)) yield* Scope.close(scope, Exit.void)
        return { pull, first }
      }).pipe(Effect.onInterrupt(() => Scope.close(scope, Exit.void)))
    )
    if (Result.isSuccess(attempt.first)) {
      started = { first: attempt.first.success, pull: attempt.pull as Started["pull"], scope, model: target.model }
      break
    }
    const error = attempt.first.failure
    if (Cause.isDone(error)) {
      return yield* fail(
        failureOf(new LlmError.StreamTruncated({ message: "the stream ended empty", receivedChunks: 0 }))
      )
    }
    if (i === targets.length - 1 || !isFallbackable(error)) {
      return yield* fail(failureOf(error), { events })
    }
  }
  const { first, pull, scope } = started
  // the model answering: the path's first step's, then the step of each fallback move (before the first
  // chunk, or mid-stream when the path's mode is `continue`)
  let model = started.model
  let read = 0
  const answering = () => {
    for (; read < events.length; read++) {
      const e = events[read]
      if (e._tag === "FallbackMoved") model = e.to.slice(e.to.indexOf("/") + 1)
    }
    return model
  }
  const firstModel = answering()
  const writer = wire.stream(decoded, responseId, created)
  // the first chunks, then the rest as the provider delivers them: the events of each pull are one write
  let pending: Arr.NonEmptyReadonlyArray<LlmResponse.StreamChunk> | undefined = first
  const chunks = Effect.suspend(() => {
    if (pending === undefined) return pull
    const delivered = pending
    pending = undefined
    return Effect.succeed(delivered)
  })
  const body = Stream.fromPull(Effect.succeed(chunks)).pipe(
    Stream.mapArray((delivered) => {
      let text = ""
      for (const chunk of delivered) text += writer.chunk(chunk, answering())
      return [encoder.encode(text)] as const
    }),
    Stream.catch((error: LlmError.LlmError) => Stream.make(encoder.encode(writer.error(failureOf(error))))),
    // the whole report, once the stream is over: an SSE comment, which clients skip
    Stream.concat(Stream.sync(() => encoder.encode(`: llm-report ${JSON.stringify({ events })}\n\n`))),
    Stream.ensuring(Scope.close(scope, Exit.void))
  )
  return yield* answer(
    HttpServerResponse.setHeaders(HttpServerResponse.stream(body, { contentType: "text/event-stream" }), {
      "cache-control": "no-cache",
      "x-request-id": requestId,
      "x-llm-model": firstModel,
      "x-llm-report": JSON.stringify({ events })
    })
  )
})

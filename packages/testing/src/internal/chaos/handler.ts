/**
 * The chaos server's request handler: picks a fault for each request (header, path prefix, scenario) and
 * answers in the request's wire format, faithfully or with the fault.
 *
 * @internal
 */
import type * as Http from "node:http"
import type * as Net from "node:net"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Clock, Duration, Effect, Stream } from "effect"
import { type HttpServerRequest, HttpServerResponse } from "effect/http"
import { anthropicWire } from "./anthropic.ts"
import { delayHeader, type Fault, faultHeader, faults, isStep, type Step, splitFaultPath } from "./faults.ts"
import { azureWire } from "./azure.ts"
import { geminiWire } from "./gemini.ts"
import { openAiWire } from "./openai.ts"
import { responsesWire } from "./responses.ts"
import type { Limiter } from "./limits.ts"
import type { Answer, ErrorKind, RouteInfo, Wire } from "./wire.ts"

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
}

/** One request as the server saw it. */
export interface Recorded {
  readonly wire: Wire["name"]
  readonly step: Step
  readonly model: string | undefined
  readonly stream: boolean
}

/** Mutable server state: the scenario cursor and the request log. */
export interface State {
  scenario: ReadonlyArray<Step>
  cursor: number
  loop: boolean
  sequence: number
  readonly recorded: Array<Recorded>
}

const encoder = new TextEncoder()

/** Every wire format the server speaks. */
export const wires: ReadonlyArray<Wire> = [openAiWire, responsesWire, azureWire, anthropicWire, geminiWire]

const errorKinds: ReadonlySet<string> = new Set<ErrorKind>([
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

const htmlPage = (status: number, title: string) =>
  `<html>\r\n<head><title>${status} ${title}</title></head>\r\n<body>\r\n<center><h1>${status} ${title}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n`

const portalPage =
  "<!DOCTYPE html><html><head><title>Sign in to the network</title></head><body><p>Please sign in to continue.</p></body></html>"

/** What a model without prefill says to a conversation that ends with an assistant message. */
const prefillMessage =
  "This model does not support assistant message prefill. The conversation must end with a user message."

/** Whether a request body's conversation (`messages`, `input` or `contents`) ends with the assistant's turn. */
const endsWithAssistant = (body: unknown): boolean => {
  if (body === null || typeof body !== "object") return false
  const b = body as Record<string, unknown>
  const turns = [b.messages, b.input, b.contents].find(Array.isArray) as ReadonlyArray<unknown> | undefined
  const last = turns?.[turns.length - 1] as { readonly role?: unknown } | undefined
  return last?.role === "assistant" || last?.role === "model"
}

/** What the model says when it refuses (the `refusal` fault). */
const refusalText = "I'm sorry, but I can't help with that request."

const splitWords = (text: string): Array<string> => {
  const words = text.split(/(?<= )/)
  return words.filter((w) => w.length > 0)
}

const json = (status: number, body: unknown, headers: Record<string, string>) =>
  HttpServerResponse.text(JSON.stringify(body), { status, contentType: "application/json", headers })

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

const texts = (parts: ReadonlyArray<string>): Stream.Stream<Uint8Array> =>
  Stream.fromIterable(parts.map((p) => encoder.encode(p)))

const sleep = (ms: number) => Effect.sleep(Duration.millis(ms))

/** Emits nothing for `ms`, then drops the connection and waits for the handler to be interrupted. */
const stallThenDrop = (request: HttpServerRequest.HttpServerRequest, ms: number): Stream.Stream<never> =>
  Stream.fromEffectDrain(Effect.andThen(sleep(ms), Effect.andThen(destroySocket(request, false), Effect.never)))

const sse = (body: Stream.Stream<Uint8Array>, headers: Record<string, string>, status = 200) =>
  HttpServerResponse.stream(body, {
    status,
    contentType: "text/event-stream; charset=utf-8",
    headers: { "cache-control": "no-cache", ...headers }
  })

const streamed = (body: Stream.Stream<Uint8Array>, contentType: string, headers: Record<string, string>) =>
  HttpServerResponse.stream(body, { status: 200, contentType, headers })

const pickStep = (
  request: HttpServerRequest.HttpServerRequest,
  pathFault: string | undefined,
  state: State
): Step | { readonly unknown: string } => {
  const header = request.headers[faultHeader]
  const named = header !== undefined && header !== "" ? header : pathFault
  if (named !== undefined) return isStep(named) ? named : { unknown: named }
  if (state.cursor < state.scenario.length) {
    const step = state.scenario[state.cursor]
    state.cursor = state.loop ? (state.cursor + 1) % state.scenario.length : state.cursor + 1
    return step
  }
  return "ok"
}

/** The key a request carries: `Authorization: Bearer`, or the wire's key header (`x-api-key`, `api-key` ...). */
const apiKeyOf = (wire: Wire, request: HttpServerRequest.HttpServerRequest): string | undefined => {
  const auth = request.headers.authorization
  if (auth?.startsWith("Bearer ")) return auth.slice(7)
  return request.headers[wire.apiKeyHeader]
}

const routeOf = (
  path: string,
  query: URLSearchParams
): { readonly wire: Wire; readonly route: RouteInfo } | undefined => {
  for (const wire of wires) {
    const route = wire.match(path, query)
    if (route !== undefined) return { wire, route }
  }
  return undefined
}

/**
 * Builds the handler of every wire route.
 */
export const makeHandler =
  (settings: Settings, state: State) =>
  (request: HttpServerRequest.HttpServerRequest): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
    Effect.gen(function* () {
      const url = new URL(request.url, "http://chaos.local")
      const { fault: pathFault, path } = splitFaultPath(url.pathname)
      const routed = routeOf(path, url.searchParams)
      // a path under a wildcard route (`/v1beta/models/*`) that no wire answers, e.g. another method
      if (routed === undefined) return json(404, { error: { code: 404, message: `no route for ${path}` } }, {})
      const { route, wire } = routed
      const sequence = ++state.sequence
      const requestId = `req_chaos_${String(sequence).padStart(6, "0")}`
      const nowMillis = yield* Clock.currentTimeMillis
      const baseHeaders: Record<string, string> =
        wire.requestIdHeader === undefined ? {} : { [wire.requestIdHeader]: requestId }
      const delayOverride = Number(request.headers[delayHeader])
      const delay = (fallback: number) =>
        Number.isFinite(delayOverride) && delayOverride >= 0 ? delayOverride : fallback

      const chosen = pickStep(request, pathFault, state)
      const raw = yield* Effect.orElseSucceed(request.text, () => undefined)
      let parsedJson: unknown
      try {
        parsedJson = raw === undefined ? undefined : JSON.parse(raw)
      } catch {
        parsedJson = undefined
      }
      const parsed =
        route.invalid ??
        (parsedJson === undefined ? "Invalid JSON in request body" : wire.parseRequest(parsedJson, route))
      const recordedAt = state.recorded.push({
        wire: wire.name,
        step: typeof chosen === "string" ? chosen : "bad-request",
        model: typeof parsed === "string" ? undefined : parsed.model,
        stream: typeof parsed === "string" ? false : parsed.stream
      })
      if (typeof chosen !== "string") {
        return json(
          400,
          wire.invalidRequest(`unknown chaos fault '${chosen.unknown}'; known: ok, ${faults.join(", ")}`, requestId),
          baseHeaders
        )
      }
      if (typeof parsed === "string") {
        return json(400, wire.invalidRequest(parsed, requestId), baseHeaders)
      }
      const errorContext = {
        requestId,
        model: parsed.model,
        retryAfterSeconds: settings.retryAfterSeconds,
        nowMillis
      }
      const errorReply = (kind: ErrorKind) => {
        const reply = wire.error(kind, errorContext)
        const headers = { ...baseHeaders, ...reply.headers }
        // a rejection sent as an answer (Gemini's blocked prompt) is a stream's one event when streaming
        return reply.status === 200 && parsed.stream
          ? sse(texts([`data: ${JSON.stringify(reply.body)}\n\n`]), headers)
          : json(reply.status, reply.body, headers)
      }
      if (settings.apiKey !== undefined && apiKeyOf(wire, request) !== settings.apiKey) {
        return errorReply("authentication")
      }
      const step: Step = chosen
      if (errorKinds.has(step)) {
        return errorReply(step as ErrorKind)
      }
      if (step === "prefill-rejected" && endsWithAssistant(parsedJson)) {
        return json(400, wire.invalidRequest(prefillMessage, requestId), baseHeaders)
      }

      // an answer, whole or in part
      // a request that forces a tool call gets one, its arguments `{"text": <the answer text>}` in pieces
      const tool = step === "refusal" || parsed.tool === undefined ? undefined : parsed.tool
      let chunks = splitWords(
        step === "refusal" ? refusalText : tool === undefined ? settings.text : JSON.stringify({ text: settings.text })
      )
      let finish: Answer["finish"] = step === "refusal" ? "refusal" : "stop"
      if (parsed.maxTokens !== undefined && parsed.maxTokens < chunks.length) {
        chunks = chunks.slice(0, Math.max(0, parsed.maxTokens))
        finish = "length"
      }
      const inputTokens = Math.max(1, Math.ceil(parsed.promptChars / 4))
      const answer: Answer = {
        id: wire.answerId(sequence),
        requestId,
        model: parsed.model,
        chunks,
        finish,
        tool:
          tool === undefined
            ? undefined
            : { id: `${wire.name === "anthropic" ? "toolu" : "call"}_chaos${sequence}`, name: tool },
        inputTokens,
        cachedInputTokens: Math.min(settings.cachedInputTokens, inputTokens),
        outputTokens: chunks.length,
        nowMillis,
        includeUsage: parsed.includeUsage
      }
      // a model with limits: counted at arrival, refused over them with the provider's 429 and headers
      const verdict = settings.limiter?.admit(
        wire.name,
        parsed.model,
        answer.inputTokens + answer.outputTokens,
        nowMillis,
        requestId
      )
      if (verdict?.exceeded !== undefined) {
        state.recorded[recordedAt - 1] = { ...state.recorded[recordedAt - 1], step: "rate-limit" }
        const reply = wire.error("rate-limit", errorContext)
        return json(429, verdict.body ?? reply.body, { ...baseHeaders, ...verdict.headers })
      }
      const okHeaders = {
        ...baseHeaders,
        ...(verdict?.headers ?? wire.rateLimitHeaders(nowMillis, false, settings.retryAfterSeconds))
      }
      const frames = wire.frames(answer)
      const half = Math.min(
        frames.deltas.length,
        settings.partialChunks ?? Math.max(1, Math.floor(frames.deltas.length / 2))
      )
      const bodyText = JSON.stringify(wire.body(answer))
      const jsonType = "application/json"

      switch (step) {
        case "ok":
        case "refusal":
        case "prefill-rejected":
        case "slow-headers": {
          if (step === "slow-headers") yield* sleep(delay(settings.slowHeadersMs))
          if (!parsed.stream) return json(200, wire.body(answer), okHeaders)
          return sse(texts([...frames.head, ...frames.deltas, ...frames.tail]), okHeaders)
        }
        case "no-end-marker": {
          if (!parsed.stream) return json(200, wire.body(answer), okHeaders)
          const tail = wire.endMarker ? frames.tail.slice(0, -1) : frames.tail
          return sse(texts([...frames.head, ...frames.deltas, ...tail]), okHeaders)
        }
        case "slow-first-token": {
          const wait = Stream.fromEffectDrain(sleep(delay(settings.slowHeadersMs)))
          if (!parsed.stream) {
            return streamed(
              Stream.concat(flushHeaders(request), Stream.concat(wait, texts([bodyText]))),
              jsonType,
              okHeaders
            )
          }
          return sse(
            Stream.concat(
              Stream.concat(flushHeaders(request), texts(frames.head)),
              Stream.concat(wait, texts([...frames.deltas, ...frames.tail]))
            ),
            okHeaders
          )
        }
        case "no-response":
          return yield* Effect.andThen(
            sleep(delay(settings.stallMs)),
            Effect.andThen(destroySocket(request, false), Effect.never)
          )
        case "rate-limit-no-retry-after":
          return json(429, wire.error("rate-limit", errorContext).body, baseHeaders)
        case "connection-reset": {
          yield* destroySocket(request, true)
          return yield* Effect.never
        }
        case "bad-gateway":
          return HttpServerResponse.text(htmlPage(502, "Bad Gateway"), {
            status: 502,
            contentType: "text/html",
            headers: { server: "cloudflare", "cf-ray": `8chaos${sequence}-AMS` }
          })
        case "service-unavailable":
          return HttpServerResponse.text(htmlPage(503, "Service Temporarily Unavailable"), {
            status: 503,
            contentType: "text/html",
            headers: { server: "cloudflare", "cf-ray": `8chaos${sequence}-AMS` }
          })
        case "garbage-headers": {
          const reply = wire.error("rate-limit", errorContext)
          return json(reply.status, reply.body, { ...baseHeaders, ...wire.garbageRateLimitHeaders })
        }
        case "stall-first-byte":
          return streamed(
            Stream.concat(flushHeaders(request), stallThenDrop(request, delay(settings.stallMs))),
            parsed.stream ? "text/event-stream; charset=utf-8" : jsonType,
            okHeaders
          )
        case "stall-mid-stream": {
          if (!parsed.stream) {
            const partial = texts([bodyText.slice(0, Math.floor(bodyText.length / 2))])
            return streamed(
              Stream.concat(
                Stream.concat(flushHeaders(request), partial),
                stallThenDrop(request, delay(settings.stallMs))
              ),
              jsonType,
              okHeaders
            )
          }
          return sse(
            Stream.concat(
              texts([...frames.head, ...frames.deltas.slice(0, half)]),
              stallThenDrop(request, delay(settings.stallMs))
            ),
            okHeaders
          )
        }
        case "truncated-stream": {
          if (!parsed.stream) {
            // Content-Length promises the whole body; half of it arrives, then the connection drops.
            const bytes = encoder.encode(bodyText)
            return HttpServerResponse.stream(
              Stream.concat(
                Stream.succeed(bytes.subarray(0, Math.floor(bytes.length / 2))),
                Stream.fromEffectDrain(
                  Effect.andThen(sleep(10), Effect.andThen(destroySocket(request, false), Effect.never))
                )
              ),
              { status: 200, contentType: jsonType, contentLength: bytes.length, headers: okHeaders }
            )
          }
          return sse(texts([...frames.head, ...frames.deltas.slice(0, half)]), okHeaders)
        }
        case "stream-error": {
          if (!parsed.stream) return errorReply(wire.streamErrorKind)
          return sse(texts([...frames.head, ...frames.deltas.slice(0, half), wire.errorFrame(requestId)]), okHeaders)
        }
        case "malformed-json": {
          if (!parsed.stream) {
            return HttpServerResponse.text(`{"id": "${answer.id}", "choices": [ }, "usage": {`, {
              status: 200,
              contentType: jsonType,
              headers: okHeaders
            })
          }
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
          const count = Math.max(1, Math.floor(delay(settings.stallMs) / interval))
          const beat = parsed.stream ? ": keep-alive\n\n" : "\n"
          const beats = Stream.fromIterable(Array.from({ length: count }, () => encoder.encode(beat))).pipe(
            Stream.mapEffect((b) => Effect.as(sleep(interval), b))
          )
          return streamed(
            Stream.concat(flushHeaders(request), beats),
            parsed.stream ? "text/event-stream; charset=utf-8" : jsonType,
            okHeaders
          )
        }
        case "wrong-content-type":
          return HttpServerResponse.text(portalPage, { status: 200, contentType: "text/html; charset=utf-8" })
        case "huge-body": {
          const block = encoder.encode("x".repeat(64 * 1024))
          const blocks = Math.ceil(settings.hugeBodyBytes / block.length)
          const padding = Stream.fromIterable(Array.from({ length: blocks }, () => block))
          if (!parsed.stream) {
            return streamed(
              Stream.concat(Stream.concat(texts([`{"id":"${answer.id}","padding":"`]), padding), texts([`"}`])),
              jsonType,
              okHeaders
            )
          }
          return sse(
            Stream.concat(
              Stream.concat(texts([...frames.head, `data: {"padding":"`]), padding),
              texts([`"}\n\n`, ...frames.tail])
            ),
            okHeaders
          )
        }
        default:
          return errorReply(step satisfies Fault as ErrorKind)
      }
    })

/**
 * The chaos server's request handler: picks a fault for each request (header, path prefix, scenario), reads
 * the request, records it, and answers in the request's wire format, faithfully or with the fault
 * (replies.ts).
 *
 * @internal
 */
import { Effect } from "effect"
import type { HttpServerRequest, HttpServerResponse } from "effect/http"
import { anthropicWire } from "./anthropic.ts"
import { azureWire } from "./azure.ts"
import { delayHeader, faultHeader, faults, isStep, type Step, splitFaultPath } from "./faults.ts"
import { geminiWire } from "./gemini.ts"
import type { History } from "./history.ts"
import { openAiWire } from "./openai.ts"
import { answerReply, errorKinds, errorReply, type Exchange, json, type Settings } from "./replies.ts"
import { responsesWire } from "./responses.ts"
import type { Answer, ErrorKind, RouteInfo, Wire } from "./wire.ts"

export type { Settings } from "./replies.ts"

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
  readonly recorded: History<Recorded>
}

/** Every wire format the server speaks. */
export const wires: ReadonlyArray<Wire> = [openAiWire, responsesWire, azureWire, anthropicWire, geminiWire]

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

/** The answer's chunks: one word each, its trailing space included. */
const splitWords = (text: string): ReadonlyArray<string> => text.split(/(?<= )/).filter((w) => w.length > 0)

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

const routeOf = (path: string, url: URL): { readonly wire: Wire; readonly route: RouteInfo } | undefined => {
  for (const wire of wires) {
    const route = wire.match(path, url)
    if (route !== undefined) return { wire, route }
  }
  return undefined
}

/** The request body as JSON, or `undefined` when it cannot be read or is not JSON. */
const bodyOf = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<unknown> =>
  Effect.map(
    Effect.orElseSucceed(request.text, () => undefined),
    (raw) => {
      try {
        return raw === undefined ? undefined : (JSON.parse(raw) as unknown)
      } catch {
        return undefined
      }
    }
  )

/**
 * Builds the handler of every wire route; `url` is the request's URL, parsed once by the caller.
 */
export const makeHandler = (settings: Settings, state: State) => {
  // the answer text as chunks, split once
  const textChunks = splitWords(settings.text)
  const toolChunks = splitWords(JSON.stringify({ text: settings.text }))
  const refusalChunks = splitWords(refusalText)

  /** The reply once the body is read: a 400 for what the server cannot read, else the step's. */
  const respond = (
    request: HttpServerRequest.HttpServerRequest,
    wire: Wire,
    route: RouteInfo,
    chosen: Step | { readonly unknown: string },
    sequence: number,
    nowMillis: number,
    body: unknown
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
    const requestId = `req_chaos_${String(sequence).padStart(6, "0")}`
    const baseHeaders: Record<string, string> =
      wire.requestIdHeader === undefined ? {} : { [wire.requestIdHeader]: requestId }
    const parsed =
      route.invalid ?? (body === undefined ? "Invalid JSON in request body" : wire.parseRequest(body, route))
    const record: { -readonly [K in keyof Recorded]: Recorded[K] } = {
      wire: wire.name,
      step: typeof chosen === "string" ? chosen : "bad-request",
      model: typeof parsed === "string" ? undefined : parsed.model,
      stream: typeof parsed === "string" ? false : parsed.stream
    }
    state.recorded.append(record)
    if (typeof chosen !== "string") {
      const message = `unknown chaos fault '${chosen.unknown}'; known: ok, ${faults.join(", ")}`
      return Effect.succeed(json(400, wire.invalidRequest(message, requestId), baseHeaders))
    }
    if (typeof parsed === "string") {
      return Effect.succeed(json(400, wire.invalidRequest(parsed, requestId), baseHeaders))
    }
    const x: Exchange = {
      request,
      wire,
      settings,
      sequence,
      stream: parsed.stream,
      baseHeaders,
      errorContext: { requestId, model: parsed.model, retryAfterSeconds: settings.retryAfterSeconds, nowMillis },
      delayOverride: Number(request.headers[delayHeader])
    }
    if (settings.apiKey !== undefined && apiKeyOf(wire, request) !== settings.apiKey) {
      return Effect.succeed(errorReply(x, "authentication"))
    }
    const step = chosen
    if (errorKinds.has(step)) return Effect.succeed(errorReply(x, step as ErrorKind))
    if (step === "prefill-rejected" && endsWithAssistant(body)) {
      return Effect.succeed(json(400, wire.invalidRequest(prefillMessage, requestId), baseHeaders))
    }

    // an answer, whole or in part
    // a request that forces a tool call gets one, its arguments `{"text": <the answer text>}` in pieces
    const tool = step === "refusal" ? undefined : parsed.tool
    let chunks = step === "refusal" ? refusalChunks : tool === undefined ? textChunks : toolChunks
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
      record.step = "rate-limit"
      const reply = wire.error("rate-limit", x.errorContext)
      return Effect.succeed(json(429, verdict.body ?? reply.body, { ...baseHeaders, ...verdict.headers }))
    }
    const okHeaders = {
      ...baseHeaders,
      ...(verdict?.headers ?? wire.rateLimitHeaders(nowMillis, false, settings.retryAfterSeconds))
    }
    return answerReply(x, step, answer, okHeaders)
  }

  return (
    request: HttpServerRequest.HttpServerRequest,
    url: URL
  ): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
    const { fault: pathFault, path } = splitFaultPath(url.pathname)
    const routed = request.method === "POST" ? routeOf(path, url) : undefined
    if (routed === undefined) {
      return Effect.succeed(json(404, { error: { code: 404, message: `no route for ${path}` } }, {}))
    }
    // the sequence, the scenario's step and the time (rate limits count at arrival) before the body is read
    const sequence = ++state.sequence
    const chosen = pickStep(request, pathFault, state)
    const nowMillis = settings.clock.currentTimeMillisUnsafe()
    return Effect.flatMap(bodyOf(request), (body) =>
      respond(request, routed.wire, routed.route, chosen, sequence, nowMillis, body)
    )
  }
}

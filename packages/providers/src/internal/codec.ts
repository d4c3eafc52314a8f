/**
 * What the providers need from a wire format: how to encode a request, decode a whole response, and
 * decode one event of a stream into chunks.
 *
 * @internal
 */
import type { LlmRequest, LlmResponse } from "@llm-resilience/core"

/** The parts of a whole response the wire format decodes. */
export interface DecodedBody {
  readonly text: string
  readonly finishReason: LlmResponse.FinishReason
  readonly usage: LlmResponse.Usage
  readonly model: string | undefined
}

/** Why a body or event could not be used. */
export type Problem =
  /** The body / event is an error report from the provider (an error body in a 200, an `error` event). */
  | { readonly _tag: "ErrorReport"; readonly body: string }
  /** The body / event is not what the wire format promises. */
  | { readonly _tag: "Malformed"; readonly detail: string }

/** Response metadata a `Finish` chunk carries. */
export interface FinishMeta {
  readonly provider: string
  readonly model: string
  readonly requestId: string | undefined
  readonly rateLimit: LlmResponse.LlmResponse["rateLimit"]
}

/** What the events of one stream have said so far; a wire's event decoder updates it. */
export interface StreamState {
  /** Why the model stopped, once an event said so (OpenAI `finish_reason`, Anthropic `stop_reason`). */
  finishReason: LlmResponse.FinishReason | undefined
  /** Whether the model refused (OpenAI `refusal` content): the finish reason is then `content_filter`. */
  refused: boolean
  usage: LlmResponse.Usage
  model: string
  /** The wire's own keys of the tool calls started so far, in order: a call's `ToolCallDelta.index` is its position. */
  readonly calls: Array<number>
}

/** A wire format. */
export interface Codec {
  /** The wire's key in `LlmRequest.passThrough` (`openai`, `anthropic`, `gemini`, `responses`). */
  readonly wire: string
  readonly encode: (request: LlmRequest.LlmRequest, stream: boolean) => unknown
  readonly decodeBody: (json: unknown) => DecodedBody | Problem
  /** The raw `data` of the wire's end marker when it is not JSON (OpenAI `[DONE]`). */
  readonly endData: string | undefined
  /**
   * Decodes one parsed stream event named `name` (the SSE `event:` field, `message` when absent): pushes
   * text and tool-call deltas to `out`, updates `state`, and returns `"end"` at the wire's end marker or a problem.
   */
  readonly decodeEvent: (
    name: string,
    data: Record<string, unknown>,
    state: StreamState,
    out: Array<LlmResponse.StreamChunk>
  ) => Problem | "end" | undefined
}

/** Fields of the body a provider controls: never taken from `LlmRequest.passThrough`. */
const controlled: ReadonlySet<string> = new Set(["model", "stream", "stream_options"])

/** The body of a request: the wire's encoding, with the request's pass-through fields for this wire over it. */
export const encodeBody = (codec: Codec, request: LlmRequest.LlmRequest, stream: boolean): unknown => {
  const encoded = codec.encode(request, stream)
  const fields = request.passThrough?.[codec.wire]
  if (fields === undefined || !isObject(encoded)) return encoded
  const body: Record<string, unknown> = { ...encoded }
  for (const key of Object.keys(fields)) if (!controlled.has(key)) body[key] = fields[key]
  return body
}

/**
 * The response of a decoded whole body: the model the body names, else the one asked for; with the whole
 * body (`raw`) when the request passed fields through this wire.
 */
export const responseOf = (
  decoded: DecodedBody,
  meta: FinishMeta,
  raw?: { readonly codec: Codec; readonly request: LlmRequest.LlmRequest; readonly body: unknown }
): LlmResponse.LlmResponse => ({
  text: decoded.text,
  finishReason: decoded.finishReason,
  usage: decoded.usage,
  provider: meta.provider,
  model: decoded.model ?? meta.model,
  ...(meta.requestId === undefined ? {} : { requestId: meta.requestId }),
  ...(meta.rateLimit === undefined ? {} : { rateLimit: meta.rateLimit }),
  ...(raw?.request.passThrough?.[raw.codec.wire] === undefined ? {} : { raw: { wire: raw.codec.wire, body: raw.body } })
})

/** Whether a value is a plain object. */
export const isObject = (u: unknown): u is Record<string, unknown> =>
  u !== null && typeof u === "object" && !Array.isArray(u)

/** A value that is a string with at least one character; `undefined` otherwise. */
export const nonEmpty = (u: unknown): string | undefined => (typeof u === "string" && u.length > 0 ? u : undefined)

/** A non-negative finite number, or `fallback`. */
export const count = (u: unknown, fallback = 0): number =>
  typeof u === "number" && Number.isFinite(u) && u >= 0 ? u : fallback

/** Parses JSON without throwing. */
export const parseJson = (text: string): { readonly ok: true; readonly value: unknown } | { readonly ok: false } => {
  try {
    return { ok: true, value: JSON.parse(text) }
  } catch {
    return { ok: false }
  }
}

/** A short, single-line excerpt of untrusted text for error messages. */
export const excerpt = (text: string, max = 120): string => {
  const flat = text.replace(/\s+/g, " ").trim()
  return flat.length > max ? `${flat.slice(0, max)}...` : flat
}

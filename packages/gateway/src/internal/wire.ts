/**
 * What the gateway needs from a client-facing wire format: how to read a request into the toolkit's
 * `LlmRequest`, and how to write a whole response, the events of a stream, and an error.
 *
 * @internal
 */
import type { LlmRequest, LlmResponse } from "@llm-resilience/core"
import type { Failure } from "./failure.ts"

/** A request as a wire format carried it. */
export interface WireRequest {
  /** The `model` field: a route, or a configured `provider/model`. */
  readonly model: string
  readonly messages: ReadonlyArray<LlmRequest.Message>
  readonly maxOutputTokens?: number
  readonly temperature?: number
  readonly responseFormat?: LlmRequest.ResponseFormat
  readonly stream: boolean
  /** OpenAI `stream_options.include_usage`. */
  readonly includeUsage: boolean
  /** The gateway extension `fallbacks`: routes or models tried in order after the request's own. */
  readonly fallbacks: ReadonlyArray<string>
  /** The body's fields sent as they are to a provider of the same wire format (`LlmRequest.passThrough`). */
  readonly passThrough: Record<string, unknown>
  /** Fields for providers of another wire format, by wire (the tool definitions, translated). */
  readonly foreign?: Readonly<Record<string, Record<string, unknown>>>
}

/**
 * Writes the events of one stream as SSE text; `model` is the model answering, `id` the response id. A
 * chunk's events are one string (empty when the chunk adds none): the handler sends what one pull delivered
 * as one write, and each event's JSON is written around the chunk's text, without an object per event.
 */
export interface StreamWriter {
  readonly chunk: (chunk: LlmResponse.StreamChunk, model: string) => string
  readonly error: (failure: Failure) => string
}

/** A client-facing wire format. */
export interface Wire {
  readonly name: "openai" | "anthropic"
  /** Reads a request body; a string is what is wrong with it (and `param` the field, when known). */
  readonly decode: (body: unknown) => WireRequest | { readonly problem: string; readonly param?: string }
  readonly response: (response: LlmResponse.LlmResponse, id: string, created: number) => unknown
  readonly stream: (request: WireRequest, id: string, created: number) => StreamWriter
  readonly errorBody: (failure: Failure, requestId: string) => unknown
  /** The status this wire sends for a failure. */
  readonly status: (failure: Failure) => number
}

/** Whether a value is a plain object. */
export const isObject = (u: unknown): u is Record<string, unknown> =>
  u !== null && typeof u === "object" && !Array.isArray(u)

/** The text of a message's content: a string, or the text parts of a list of parts. */
export const textOf = (content: unknown): string | undefined => {
  if (typeof content === "string") return content
  if (content === null || content === undefined) return ""
  if (!Array.isArray(content)) return undefined
  let text = ""
  for (const part of content) {
    if (typeof part === "string") text += part
    else if (isObject(part) && typeof part.text === "string") text += part.text
    else if (isObject(part) && typeof part.content === "string") text += part.content
  }
  return text
}

/** A positive integer field, `undefined` when absent, or a problem. */
export const positiveInt = (u: unknown, param: string): number | undefined | { readonly problem: string } =>
  u === undefined || u === null
    ? undefined
    : typeof u === "number" && Number.isInteger(u) && u >= 1
      ? u
      : { problem: `${param} must be a positive integer` }

/**
 * The fields of a body passed through: all but those the gateway re-encodes (`keys`: `fallbacks`, and those
 * named differently upstream). `messages` too is left to the toolkit's encoding when every message is plain
 * text (a `system`, `user` or `assistant` role and a string content), so that what `Resilience` changes in
 * them reaches the provider (the delivered text a continuation sends as assistant prefill); messages with
 * tool calls or content parts go as sent.
 */
export const without = (body: Record<string, unknown>, keys: ReadonlyArray<string>): Record<string, unknown> => {
  const plain =
    Array.isArray(body.messages) &&
    body.messages.every(
      (m) =>
        isObject(m) &&
        (m.role === "system" || m.role === "user" || m.role === "assistant") &&
        typeof m.content === "string" &&
        Object.keys(m).length === 2
    )
  const rest: Record<string, unknown> = {}
  for (const key of Object.keys(body)) {
    if (!keys.includes(key) && !(plain && key === "messages")) rest[key] = body[key]
  }
  return rest
}

/** The `fallbacks` extension: a list of strings, or a problem. */
export const fallbacksOf = (u: unknown): ReadonlyArray<string> | { readonly problem: string } =>
  u === undefined || u === null
    ? []
    : Array.isArray(u) && u.every((f) => typeof f === "string" && f.length > 0)
      ? (u as ReadonlyArray<string>)
      : { problem: "fallbacks must be a list of model names" }

/** The `foreign` field of a request: `fields` for `wire`, or nothing. */
export const foreignOf = (
  wire: string,
  fields: Record<string, unknown> | undefined
): { readonly foreign?: Readonly<Record<string, Record<string, unknown>>> } =>
  fields === undefined ? {} : { foreign: { [wire]: fields } }

/**
 * The Google Gemini wire format (`models/{model}:generateContent`, `:streamGenerateContent?alt=sse`):
 * request encoding, `GenerateContentResponse` decoding, and the event decoder for SSE streams, each event
 * a whole `GenerateContentResponse` with a text delta and tool calls.
 *
 * - The answer is the text parts of the first candidate (thought parts left out).
 * - A `functionCall` part is a whole tool call (the Gemini API does not stream a call's arguments): in a
 *   stream it is one `ToolCallDelta` with its `id` (when the model gave one), `name` and `args` as JSON text,
 *   in the order of the parts, calls numbered in the order they come.
 * - `finishReason`: `STOP` -> `stop` (`tool_calls` once a part was a `functionCall`), `MAX_TOKENS` ->
 *   `length`; the safety family (`SAFETY`, `RECITATION`, `BLOCKLIST`, `PROHIBITED_CONTENT`, `SPII`,
 *   `IMAGE_SAFETY` ...) -> `content_filter`; anything else -> `unknown`. A blocked prompt (no candidates,
 *   `promptFeedback.blockReason`) is an empty answer with `content_filter`.
 * - Usage: `promptTokenCount` in, `candidatesTokenCount + thoughtsTokenCount` out (thoughts are billed as
 *   output), `cachedContentTokenCount` cached. Stream events carry the running usage; the last one counts.
 * - Streams have no end marker: complete once an event named a finish reason (or a prompt block) and the
 *   body then ended cleanly. `{"error": ...}` events are error reports.
 *
 * @internal
 */
import type { LlmRequest, LlmResponse } from "@llm-resilience/core"
import type { Codec, DecodedBody, Problem } from "./codec.ts"
import { count, isObject, nonEmpty } from "./codec.ts"

const safetyReasons: ReadonlySet<string> = new Set([
  "SAFETY",
  "RECITATION",
  "BLOCKLIST",
  "PROHIBITED_CONTENT",
  "SPII",
  "IMAGE_SAFETY",
  "IMAGE_PROHIBITED_CONTENT",
  "IMAGE_RECITATION"
])

/** A named finish reason (`FINISH_REASON_UNSPECIFIED` and `""` say nothing), mapped; else `undefined`. */
const finishReason = (u: unknown, toolCall: boolean): LlmResponse.FinishReason | undefined => {
  if (typeof u !== "string" || u.length === 0 || u === "FINISH_REASON_UNSPECIFIED") return undefined
  if (u === "STOP") return toolCall ? "tool_calls" : "stop"
  if (u === "MAX_TOKENS") return "length"
  return safetyReasons.has(u) ? "content_filter" : "unknown"
}

const usageOf = (u: Record<string, unknown>): LlmResponse.Usage => {
  const usage = {
    inputTokens: count(u.promptTokenCount),
    outputTokens: count(u.candidatesTokenCount) + count(u.thoughtsTokenCount)
  }
  const cached = u.cachedContentTokenCount
  return cached === undefined ? usage : { ...usage, cachedInputTokens: count(cached) }
}

const encode = (request: LlmRequest.LlmRequest): unknown => {
  const system: Array<string> = []
  const contents: Array<unknown> = []
  for (const m of request.messages) {
    if (m.role === "system") system.push(m.content)
    else contents.push({ role: m.role === "assistant" ? "model" : "user", parts: [{ text: m.content }] })
  }
  const config: Record<string, unknown> = {}
  if (request.maxOutputTokens !== undefined) config.maxOutputTokens = request.maxOutputTokens
  if (request.temperature !== undefined) config.temperature = request.temperature
  const format = request.responseFormat
  if (format !== undefined && format.type !== "text") {
    config.responseMimeType = "application/json"
    if (format.type === "json_schema") config.responseJsonSchema = format.schema
  }
  const body: Record<string, unknown> = { contents }
  if (system.length > 0) body.systemInstruction = { parts: [{ text: system.join("\n\n") }] }
  if (Object.keys(config).length > 0) body.generationConfig = config
  return body
}

/** The first candidate (`index` 0 or absent). */
const candidateOf = (json: Record<string, unknown>): Record<string, unknown> | undefined => {
  if (!Array.isArray(json.candidates)) return undefined
  for (const c of json.candidates) if (isObject(c) && (c.index === undefined || c.index === 0)) return c
  return undefined
}

/** The parts of a candidate's content. */
const partsOf = (candidate: Record<string, unknown>): ReadonlyArray<unknown> => {
  const content = candidate.content
  return isObject(content) && Array.isArray(content.parts) ? content.parts : []
}

/** The answer's text, and whether it makes a tool call. */
const answerOf = (candidate: Record<string, unknown>) => {
  let text = ""
  let toolCall = false
  for (const part of partsOf(candidate)) {
    if (!isObject(part)) continue
    if (part.functionCall !== undefined) toolCall = true
    if (typeof part.text === "string" && part.thought !== true) text += part.text
  }
  return { text, toolCall }
}

/** A non-empty string, or `undefined`. */

/** A `functionCall` as the one piece of its tool call. */
const toolCallOf = (call: Record<string, unknown>, index: number): LlmResponse.StreamChunk => {
  const id = nonEmpty(call.id)
  const name = nonEmpty(call.name)
  return {
    _tag: "ToolCallDelta",
    index,
    ...(id === undefined ? {} : { id }),
    ...(name === undefined ? {} : { name }),
    arguments: JSON.stringify(isObject(call.args) ? call.args : {})
  }
}

const blocked = (json: Record<string, unknown>): boolean =>
  isObject(json.promptFeedback) &&
  typeof json.promptFeedback.blockReason === "string" &&
  json.promptFeedback.blockReason !== "BLOCKED_REASON_UNSPECIFIED"

const modelOf = (json: Record<string, unknown>): string | undefined =>
  typeof json.modelVersion === "string" && json.modelVersion.length > 0 ? json.modelVersion : undefined

const isError = (json: Record<string, unknown>): boolean => json.error !== undefined && json.error !== null

const decodeBody = (json: unknown): DecodedBody | Problem => {
  if (!isObject(json)) return { _tag: "Malformed", detail: "response body is not a JSON object" }
  if (isError(json)) return { _tag: "ErrorReport", body: JSON.stringify(json) }
  const usage = isObject(json.usageMetadata) ? usageOf(json.usageMetadata) : { inputTokens: 0, outputTokens: 0 }
  const candidate = candidateOf(json)
  if (candidate === undefined) {
    return blocked(json)
      ? { text: "", finishReason: "content_filter", usage, model: modelOf(json) }
      : { _tag: "Malformed", detail: "response has no candidates" }
  }
  const { text, toolCall } = answerOf(candidate)
  return {
    text,
    finishReason: finishReason(candidate.finishReason, toolCall) ?? "unknown",
    usage,
    model: modelOf(json)
  }
}

const decodeEvent: Codec["decodeEvent"] = (_name, data, state, out) => {
  if (isError(data)) return { _tag: "ErrorReport", body: JSON.stringify(data) }
  state.model = modelOf(data) ?? state.model
  if (isObject(data.usageMetadata)) state.usage = usageOf(data.usageMetadata)
  if (blocked(data)) state.finishReason = "content_filter"
  const candidate = candidateOf(data)
  if (candidate === undefined) return undefined
  // the text parts of one event are one delta; a tool call ends it, to keep the parts' order
  let text = ""
  for (const part of partsOf(candidate)) {
    if (!isObject(part)) continue
    if (isObject(part.functionCall)) {
      if (text.length > 0) out.push({ _tag: "TextDelta", text })
      text = ""
      out.push(toolCallOf(part.functionCall, state.calls.push(state.calls.length) - 1))
    } else if (typeof part.text === "string" && part.thought !== true) text += part.text
  }
  if (text.length > 0) out.push({ _tag: "TextDelta", text })
  // the finish may come on a later event than the calls
  state.finishReason = finishReason(candidate.finishReason, state.calls.length > 0) ?? state.finishReason
  return undefined
}

/** The Gemini codec. */
export const geminiCodec: Codec = {
  wire: "gemini",
  encode,
  decodeBody,
  endData: undefined,
  decodeEvent
}

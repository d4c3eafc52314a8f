/**
 * The Google Gemini wire format (`models/{model}:generateContent`, `:streamGenerateContent?alt=sse`):
 * request encoding, `GenerateContentResponse` decoding, and the event decoder for SSE streams, each event
 * a whole `GenerateContentResponse` with a text delta.
 *
 * - The answer is the text parts of the first candidate (thought parts left out).
 * - `finishReason`: `STOP` -> `stop` (`tool_calls` when a part is a `functionCall`), `MAX_TOKENS` ->
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
import { count, isObject } from "./codec.ts"

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

const partsOf = (candidate: Record<string, unknown>) => {
  let text = ""
  let toolCall = false
  const content = candidate.content
  if (isObject(content) && Array.isArray(content.parts)) {
    for (const part of content.parts) {
      if (!isObject(part)) continue
      if (part.functionCall !== undefined) toolCall = true
      if (typeof part.text === "string" && part.thought !== true) text += part.text
    }
  }
  return { text, toolCall }
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
  const { text, toolCall } = partsOf(candidate)
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
  const { text, toolCall } = partsOf(candidate)
  if (text.length > 0) out.push({ _tag: "TextDelta", text })
  state.finishReason = finishReason(candidate.finishReason, toolCall) ?? state.finishReason
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

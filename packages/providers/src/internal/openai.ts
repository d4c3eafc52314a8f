/**
 * The OpenAI Chat Completions wire format: request encoding, `chat.completion` decoding and the
 * `chat.completion.chunk` stream decoder (end marker `data: [DONE]`).
 *
 * @internal
 */
import type { LlmRequest, LlmResponse } from "@llm-resilience/core"
import type { Codec, DecodedBody, FinishMeta, Problem, StreamDecoder } from "./codec.ts"
import { count, excerpt, isObject, parseJson } from "./codec.ts"

/** Encoding choices that differ between OpenAI-compatible servers. */
export interface OpenAiWireOptions {
  readonly maxTokensField: "max_tokens" | "max_completion_tokens"
  readonly includeUsage: boolean
}

const finishReason = (u: unknown): LlmResponse.FinishReason => {
  switch (u) {
    case "stop":
      return "stop"
    case "length":
      return "length"
    case "content_filter":
      return "content_filter"
    case "tool_calls":
    case "function_call":
      return "tool_calls"
    default:
      return "unknown"
  }
}

const usageOf = (u: unknown): LlmResponse.Usage => {
  if (!isObject(u)) return { inputTokens: 0, outputTokens: 0 }
  const details = u.prompt_tokens_details
  const cached = isObject(details) ? details.cached_tokens : undefined
  const usage = { inputTokens: count(u.prompt_tokens), outputTokens: count(u.completion_tokens) }
  return typeof cached === "number" && Number.isFinite(cached) && cached >= 0
    ? { ...usage, cachedInputTokens: cached }
    : usage
}

const encode =
  (options: OpenAiWireOptions) =>
  (request: LlmRequest.LlmRequest, stream: boolean): unknown => {
    const body: Record<string, unknown> = {
      model: request.model,
      messages: request.messages.map((m) => ({ role: m.role, content: m.content }))
    }
    if (request.maxOutputTokens !== undefined) body[options.maxTokensField] = request.maxOutputTokens
    if (request.temperature !== undefined) body.temperature = request.temperature
    const format = request.responseFormat
    if (format !== undefined && format.type !== "text") {
      body.response_format =
        format.type === "json_object"
          ? { type: "json_object" }
          : { type: "json_schema", json_schema: { name: format.name, schema: format.schema } }
    }
    if (stream) {
      body.stream = true
      if (options.includeUsage) body.stream_options = { include_usage: true }
    }
    return body
  }

const decodeBody = (json: unknown): DecodedBody | Problem => {
  if (!isObject(json)) return { _tag: "Malformed", detail: "response body is not a JSON object" }
  if (json.error !== undefined && json.error !== null) return { _tag: "ErrorReport", body: JSON.stringify(json) }
  const choices = json.choices
  const first = Array.isArray(choices) ? choices[0] : undefined
  if (!isObject(first) || !isObject(first.message)) {
    return { _tag: "Malformed", detail: "response has no choices[0].message" }
  }
  const content = first.message.content
  if (content !== null && content !== undefined && typeof content !== "string") {
    return { _tag: "Malformed", detail: "choices[0].message.content is not a string" }
  }
  return {
    text: content ?? "",
    finishReason: finishReason(first.finish_reason),
    usage: usageOf(json.usage),
    model: typeof json.model === "string" ? json.model : undefined
  }
}

const streamDecoder = (meta: FinishMeta): StreamDecoder => {
  let ended = false
  let finish: LlmResponse.FinishReason = "unknown"
  let usage: LlmResponse.Usage = { inputTokens: 0, outputTokens: 0 }
  let model = meta.model
  return {
    ended: () => ended,
    feed: (event, out) => {
      if (ended) return undefined
      const data = event.data
      if (data === "[DONE]") {
        ended = true
        out.push({
          _tag: "Finish",
          finishReason: finish,
          usage,
          provider: meta.provider,
          model,
          ...(meta.requestId === undefined ? {} : { requestId: meta.requestId }),
          ...(meta.rateLimit === undefined ? {} : { rateLimit: meta.rateLimit })
        })
        return undefined
      }
      const parsed = parseJson(data)
      if (!parsed.ok || !isObject(parsed.value)) {
        return { _tag: "Malformed", detail: `stream event is not a JSON object: ${excerpt(data)}` }
      }
      const chunk = parsed.value
      if (chunk.error !== undefined && chunk.error !== null) return { _tag: "ErrorReport", body: data }
      if (typeof chunk.model === "string" && chunk.model.length > 0) model = chunk.model
      if (isObject(chunk.usage)) usage = usageOf(chunk.usage)
      const choices = chunk.choices
      if (Array.isArray(choices)) {
        for (const choice of choices) {
          if (!isObject(choice) || (choice.index !== undefined && choice.index !== 0)) continue
          const delta = choice.delta
          if (isObject(delta) && typeof delta.content === "string" && delta.content.length > 0) {
            out.push({ _tag: "TextDelta", text: delta.content })
          }
          if (typeof choice.finish_reason === "string") finish = finishReason(choice.finish_reason)
        }
      }
      return undefined
    }
  }
}

/** The OpenAI Chat Completions codec. */
export const openAiCodec = (options: OpenAiWireOptions): Codec => ({
  encode: encode(options),
  decodeBody,
  streamDecoder
})

/**
 * The OpenAI Chat Completions wire format: request encoding, `chat.completion` decoding and the
 * `chat.completion.chunk` event decoder (end marker `data: [DONE]`), with its tool-call pieces. A refusal (`message.refusal`,
 * `delta.refusal`) is the answer's text, with finish reason `content_filter`.
 *
 * @internal
 */
import type { LlmRequest, LlmResponse } from "@llm-resilience/core"
import type { Codec, DecodedBody, Problem, StreamState } from "./codec.ts"
import { count, isObject, nonEmpty } from "./codec.ts"

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
  // a refusal comes as `message.refusal` (content null): its text is the answer, its finish `content_filter`
  const refusal = nonEmpty(first.message.refusal)
  return {
    text: nonEmpty(content) ?? refusal ?? "",
    finishReason: refusal === undefined ? finishReason(first.finish_reason) : "content_filter",
    usage: usageOf(json.usage),
    model: typeof json.model === "string" ? json.model : undefined
  }
}

/**
 * The pieces of `delta.tool_calls`: a call's first piece has its `id` and `function.name`, the next ones more
 * of `function.arguments`. Calls are numbered in the order they start, whatever their `index`.
 */
const toolCalls = (calls: ReadonlyArray<unknown>, state: StreamState, out: Array<LlmResponse.StreamChunk>) => {
  for (const call of calls) {
    if (!isObject(call)) continue
    const key = typeof call.index === "number" ? call.index : 0
    const fn = isObject(call.function) ? call.function : {}
    const args = typeof fn.arguments === "string" ? fn.arguments : ""
    let index = state.calls.indexOf(key)
    const id = nonEmpty(call.id)
    const name = nonEmpty(fn.name)
    if (index === -1) {
      index = state.calls.push(key) - 1
      out.push({
        _tag: "ToolCallDelta",
        index,
        ...(id === undefined ? {} : { id }),
        ...(name === undefined ? {} : { name }),
        arguments: args
      })
    } else if (args.length > 0) out.push({ _tag: "ToolCallDelta", index, arguments: args })
  }
}

const decodeEvent: Codec["decodeEvent"] = (_name, chunk, state, out) => {
  if (chunk.error !== undefined && chunk.error !== null) return { _tag: "ErrorReport", body: JSON.stringify(chunk) }
  if (typeof chunk.model === "string" && chunk.model.length > 0) state.model = chunk.model
  // usage comes on its own last chunk (`include_usage`), or on the finish chunk: both orders are fine
  if (isObject(chunk.usage)) state.usage = usageOf(chunk.usage)
  const choices = chunk.choices
  if (!Array.isArray(choices)) return undefined
  for (const choice of choices) {
    if (!isObject(choice) || (choice.index !== undefined && choice.index !== 0)) continue
    const delta = choice.delta
    if (isObject(delta)) {
      const content = nonEmpty(delta.content)
      if (content !== undefined) out.push({ _tag: "TextDelta", text: content })
      const refusal = nonEmpty(delta.refusal)
      if (refusal !== undefined) {
        state.refused = true
        out.push({ _tag: "TextDelta", text: refusal })
      }
      if (Array.isArray(delta.tool_calls)) toolCalls(delta.tool_calls, state, out)
    }
    // some compatible servers send `""` for "not yet"; only a named reason finishes the stream
    const reason = nonEmpty(choice.finish_reason)
    if (reason !== undefined) state.finishReason = finishReason(reason)
  }
  return undefined
}

/** The OpenAI Chat Completions codec. */
export const openAiCodec = (options: OpenAiWireOptions): Codec => ({
  wire: "openai",
  encode: encode(options),
  decodeBody,
  endData: "[DONE]",
  decodeEvent
})

/**
 * The Anthropic Messages wire format: request encoding (system prompt apart, `max_tokens` required),
 * `message` decoding and the event decoder (end marker `message_stop`), with the tool calls of `tool_use`
 * blocks.
 *
 * @internal
 */
import type { LlmRequest, LlmResponse } from "@llm-resilience/core"
import type { Codec, DecodedBody, Problem } from "./codec.ts"
import { count, isObject } from "./codec.ts"

/** Encoding choices. */
export interface AnthropicWireOptions {
  readonly defaultMaxTokens: number
}

const finishReason = (u: unknown): LlmResponse.FinishReason => {
  switch (u) {
    case "end_turn":
    case "stop_sequence":
    case "pause_turn":
      return "stop"
    case "max_tokens":
    case "model_context_window_exceeded":
      return "length"
    case "tool_use":
      return "tool_calls"
    case "refusal":
      return "content_filter"
    default:
      return "unknown"
  }
}

/** Anthropic's `input_tokens` excludes cache reads and writes; ours is the whole prompt. */
const usageOf = (u: Record<string, unknown>, previous?: LlmResponse.Usage): LlmResponse.Usage => {
  const hasInput =
    u.input_tokens !== undefined ||
    u.cache_read_input_tokens !== undefined ||
    u.cache_creation_input_tokens !== undefined
  const cached = count(u.cache_read_input_tokens)
  const input = hasInput
    ? count(u.input_tokens) + cached + count(u.cache_creation_input_tokens)
    : (previous?.inputTokens ?? 0)
  const usage = {
    inputTokens: input,
    outputTokens: u.output_tokens === undefined ? (previous?.outputTokens ?? 0) : count(u.output_tokens)
  }
  const cachedInputTokens = hasInput ? cached : previous?.cachedInputTokens
  return cachedInputTokens === undefined ? usage : { ...usage, cachedInputTokens }
}

const encode =
  (options: AnthropicWireOptions) =>
  (request: LlmRequest.LlmRequest, stream: boolean): unknown => {
    const system: Array<string> = []
    const messages: Array<{ role: "user" | "assistant"; content: string }> = []
    for (const m of request.messages) {
      if (m.role === "system") system.push(m.content)
      else messages.push({ role: m.role === "assistant" ? "assistant" : "user", content: m.content })
    }
    const body: Record<string, unknown> = {
      model: request.model,
      max_tokens: request.maxOutputTokens ?? options.defaultMaxTokens,
      messages
    }
    if (system.length > 0) body.system = system.join("\n\n")
    if (request.temperature !== undefined) body.temperature = request.temperature
    if (stream) body.stream = true
    return body
  }

const textOf = (content: unknown): string | undefined => {
  if (!Array.isArray(content)) return undefined
  let text = ""
  for (const block of content) {
    if (isObject(block) && block.type === "text" && typeof block.text === "string") text += block.text
  }
  return text
}

const decodeBody = (json: unknown): DecodedBody | Problem => {
  if (!isObject(json)) return { _tag: "Malformed", detail: "response body is not a JSON object" }
  if (json.type === "error") return { _tag: "ErrorReport", body: JSON.stringify(json) }
  const text = textOf(json.content)
  if (text === undefined) return { _tag: "Malformed", detail: "response has no content array" }
  return {
    text,
    finishReason: finishReason(json.stop_reason),
    usage: isObject(json.usage) ? usageOf(json.usage) : { inputTokens: 0, outputTokens: 0 },
    model: typeof json.model === "string" ? json.model : undefined
  }
}

const decodeEvent: Codec["decodeEvent"] = (name, data, state, out) => {
  const type = name === "message" && typeof data.type === "string" ? data.type : name
  switch (type) {
    case "message_start": {
      const message = data.message
      if (isObject(message)) {
        if (typeof message.model === "string" && message.model.length > 0) state.model = message.model
        if (isObject(message.usage)) state.usage = usageOf(message.usage)
      }
      return undefined
    }
    case "content_block_start": {
      // a `tool_use` block starts a tool call: its input comes as `input_json_delta` pieces
      const block = data.content_block
      if (isObject(block) && block.type === "tool_use") {
        const index = state.calls.push(typeof data.index === "number" ? data.index : -1) - 1
        const input = isObject(block.input) && Object.keys(block.input).length > 0 ? JSON.stringify(block.input) : ""
        out.push({
          _tag: "ToolCallDelta",
          index,
          ...(typeof block.id === "string" ? { id: block.id } : {}),
          ...(typeof block.name === "string" ? { name: block.name } : {}),
          arguments: input
        })
      }
      return undefined
    }
    case "content_block_delta": {
      const delta = data.delta
      if (!isObject(delta)) return undefined
      if (delta.type === "text_delta" && typeof delta.text === "string" && delta.text.length > 0) {
        out.push({ _tag: "TextDelta", text: delta.text })
      } else if (delta.type === "input_json_delta" && typeof delta.partial_json === "string") {
        const index = state.calls.indexOf(typeof data.index === "number" ? data.index : -1)
        if (index !== -1 && delta.partial_json.length > 0) {
          out.push({ _tag: "ToolCallDelta", index, arguments: delta.partial_json })
        }
      }
      return undefined
    }
    case "message_delta": {
      if (isObject(data.delta) && data.delta.stop_reason != null) {
        state.finishReason = finishReason(data.delta.stop_reason)
      }
      if (isObject(data.usage)) state.usage = usageOf(data.usage, state.usage)
      return undefined
    }
    case "message_stop":
      return "end"
    case "error":
      return { _tag: "ErrorReport", body: JSON.stringify(data) }
    default:
      return undefined
  }
}

/** The Anthropic Messages codec. */
export const anthropicCodec = (options: AnthropicWireOptions): Codec => ({
  wire: "anthropic",
  encode: encode(options),
  decodeBody,
  endData: undefined,
  decodeEvent
})

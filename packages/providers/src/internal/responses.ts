/**
 * The OpenAI Responses wire format (`POST /responses`): request encoding, `response` decoding and the
 * `response.*` event decoder.
 *
 * - The answer is the `output_text` parts of the `message` items of `output` (other items such as
 *   `reasoning` may come first). A `refusal` part is the text, with finish reason `content_filter`.
 * - `status: incomplete` finishes by `incomplete_details.reason` (`max_output_tokens` -> `length`,
 *   `content_filter` -> `content_filter`); `completed` is `stop`, or `tool_calls` with a `function_call`
 *   item; `failed` is an error report of `response.error`.
 * - Tool calls stream as `function_call` items: `response.output_item.added` starts one (its first
 *   `ToolCallDelta`, with the item's `call_id`, which a tool's result answers, and `name`), then
 *   `response.function_call_arguments.delta` events carry its `arguments` in pieces, matched by
 *   `output_index`; calls are numbered in the order they start.
 * - Streams are complete only at a terminal event (`response.completed`, `response.incomplete`), which
 *   carries the whole response and so the usage; `response.failed` and `error` events are error reports.
 *   There is no `[DONE]` marker; one after the terminal event is ignored.
 *
 * @internal
 */
import type { LlmRequest, LlmResponse } from "@llm-resilience/core"
import type { Codec, DecodedBody, Problem, StreamState } from "./codec.ts"
import { count, isObject, nonEmpty } from "./codec.ts"

const usageOf = (u: unknown): LlmResponse.Usage => {
  if (!isObject(u)) return { inputTokens: 0, outputTokens: 0 }
  const details = u.input_tokens_details
  const cached = isObject(details) ? details.cached_tokens : undefined
  const usage = { inputTokens: count(u.input_tokens), outputTokens: count(u.output_tokens) }
  return typeof cached === "number" && Number.isFinite(cached) && cached >= 0
    ? { ...usage, cachedInputTokens: cached }
    : usage
}

const encode = (request: LlmRequest.LlmRequest, stream: boolean): unknown => {
  const body: Record<string, unknown> = {
    model: request.model,
    input: request.messages.map((m) => ({ type: "message", role: m.role, content: m.content }))
  }
  if (request.maxOutputTokens !== undefined) body.max_output_tokens = request.maxOutputTokens
  if (request.temperature !== undefined) body.temperature = request.temperature
  const format = request.responseFormat
  if (format !== undefined && format.type !== "text") {
    body.text = {
      format:
        format.type === "json_object"
          ? { type: "json_object" }
          : { type: "json_schema", name: format.name, schema: format.schema }
    }
  }
  if (stream) body.stream = true
  return body
}

/** The text, refusal and tool use of a response's `output` items. */
const outputOf = (output: ReadonlyArray<unknown>) => {
  let text = ""
  let refusal = ""
  let toolCall = false
  for (const item of output) {
    if (!isObject(item)) continue
    if (item.type === "function_call") toolCall = true
    if (item.type !== "message" || !Array.isArray(item.content)) continue
    for (const part of item.content) {
      if (!isObject(part)) continue
      if (part.type === "output_text" && typeof part.text === "string") text += part.text
      if (part.type === "refusal" && typeof part.refusal === "string") refusal += part.refusal
    }
  }
  return { text, refusal, toolCall }
}

const finishOf = (response: Record<string, unknown>, toolCall: boolean): LlmResponse.FinishReason => {
  if (response.status === "completed") return toolCall ? "tool_calls" : "stop"
  if (response.status === "incomplete") {
    const reason = isObject(response.incomplete_details) ? response.incomplete_details.reason : undefined
    return reason === "max_output_tokens" ? "length" : reason === "content_filter" ? "content_filter" : "unknown"
  }
  return "unknown"
}

/** A failed response as an error body the classifier reads (`{"error":{code,message}}`). */
const failure = (response: Record<string, unknown>): Problem => ({
  _tag: "ErrorReport",
  body: JSON.stringify({ error: isObject(response.error) ? response.error : { message: "the response failed" } })
})

const modelOf = (response: Record<string, unknown>): string | undefined =>
  typeof response.model === "string" && response.model.length > 0 ? response.model : undefined

const decodeBody = (json: unknown): DecodedBody | Problem => {
  if (!isObject(json)) return { _tag: "Malformed", detail: "response body is not a JSON object" }
  if (json.status === "failed" || isObject(json.error)) return failure(json)
  if (!Array.isArray(json.output)) return { _tag: "Malformed", detail: "response has no output array" }
  const { refusal, text, toolCall } = outputOf(json.output)
  return {
    text: text.length > 0 ? text : refusal,
    finishReason: refusal.length > 0 ? "content_filter" : finishOf(json, toolCall),
    usage: usageOf(json.usage),
    model: modelOf(json)
  }
}

const terminal = (data: Record<string, unknown>, state: StreamState): Problem | "end" => {
  const response = data.response
  if (!isObject(response)) return { _tag: "Malformed", detail: `${String(data.type)} event has no response` }
  const output = Array.isArray(response.output) ? outputOf(response.output) : undefined
  state.model = modelOf(response) ?? state.model
  state.usage = usageOf(response.usage)
  if (output !== undefined && output.refusal.length > 0) state.refused = true
  state.finishReason = finishOf(response, (output?.toolCall ?? false) || state.calls.length > 0)
  return "end"
}

/** A non-empty string, or `undefined`. */

/** The first piece of a tool call: a `function_call` item was added to the output. */
const callStarted = (data: Record<string, unknown>, state: StreamState, out: Array<LlmResponse.StreamChunk>) => {
  const item = data.item
  if (!isObject(item) || item.type !== "function_call") return
  const index = state.calls.push(typeof data.output_index === "number" ? data.output_index : -1) - 1
  const id = nonEmpty(item.call_id) ?? nonEmpty(item.id)
  const name = nonEmpty(item.name)
  out.push({
    _tag: "ToolCallDelta",
    index,
    ...(id === undefined ? {} : { id }),
    ...(name === undefined ? {} : { name }),
    arguments: typeof item.arguments === "string" ? item.arguments : ""
  })
}

const decodeEvent: Codec["decodeEvent"] = (name, data, state, out) => {
  const type = typeof data.type === "string" ? data.type : name
  switch (type) {
    case "response.output_text.delta":
    case "response.refusal.delta": {
      if (typeof data.delta === "string" && data.delta.length > 0) {
        if (type === "response.refusal.delta") state.refused = true
        out.push({ _tag: "TextDelta", text: data.delta })
      }
      return undefined
    }
    case "response.output_item.added": {
      callStarted(data, state, out)
      return undefined
    }
    case "response.function_call_arguments.delta": {
      const index = state.calls.indexOf(typeof data.output_index === "number" ? data.output_index : -1)
      if (index !== -1 && typeof data.delta === "string" && data.delta.length > 0) {
        out.push({ _tag: "ToolCallDelta", index, arguments: data.delta })
      }
      return undefined
    }
    case "response.created":
    case "response.queued":
    case "response.in_progress": {
      if (isObject(data.response)) state.model = modelOf(data.response) ?? state.model
      return undefined
    }
    case "response.completed":
    case "response.incomplete":
      return terminal(data, state)
    case "response.failed":
      return isObject(data.response) ? failure(data.response) : failure({})
    case "error":
      return { _tag: "ErrorReport", body: JSON.stringify(data) }
    default:
      return undefined
  }
}

/** The OpenAI Responses codec. */
export const responsesCodec: Codec = {
  wire: "responses",
  encode,
  decodeBody,
  endData: undefined,
  decodeEvent
}

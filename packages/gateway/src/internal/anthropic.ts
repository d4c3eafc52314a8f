/**
 * The Anthropic Messages wire format as the gateway serves it: `POST /v1/messages`, whole and streamed
 * (`message_start` ... `message_stop`, a text block and a `tool_use` block per tool call), and the
 * `{"type": "error", "error": {...}}` body; an error after the stream started is an `event: error`.
 *
 * @internal
 */
import type { LlmRequest, LlmResponse } from "@llm-resilience/core"
import type { Failure } from "./failure.ts"
import type { Wire, WireRequest } from "./wire.ts"
import { anthropicToOpenAi } from "./tools.ts"
import { fallbacksOf, foreignOf, isObject, positiveInt, textOf, without } from "./wire.ts"

const decode: Wire["decode"] = (body) => {
  if (!isObject(body)) return { problem: "the body must be a JSON object" }
  if (typeof body.model !== "string" || body.model.length === 0)
    return { problem: "model: Field required", param: "model" }
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    return { problem: "messages: must be a non-empty list", param: "messages" }
  }
  const messages: Array<LlmRequest.Message> = []
  const system = textOf(body.system)
  if (system === undefined) return { problem: "system: must be text or text blocks", param: "system" }
  if (system.length > 0) messages.push({ role: "system", content: system })
  for (let i = 0; i < body.messages.length; i++) {
    const m: unknown = body.messages[i]
    const role = isObject(m) && (m.role === "user" || m.role === "assistant") ? m.role : undefined
    const content = isObject(m) ? textOf(m.content) : undefined
    if (role === undefined) return { problem: `messages.${i}.role: must be user or assistant`, param: "messages" }
    if (content === undefined) return { problem: `messages.${i}.content: must be text or blocks`, param: "messages" }
    messages.push({ role, content })
  }
  const maxOutputTokens = positiveInt(body.max_tokens, "max_tokens")
  if (maxOutputTokens === undefined) return { problem: "max_tokens: Field required", param: "max_tokens" }
  if (isObject(maxOutputTokens)) return { ...maxOutputTokens, param: "max_tokens" }
  if (body.temperature !== undefined && body.temperature !== null && typeof body.temperature !== "number") {
    return { problem: "temperature: must be a number", param: "temperature" }
  }
  const fallbacks = fallbacksOf(body.fallbacks)
  if ("problem" in fallbacks) return { ...fallbacks, param: "fallbacks" }
  return {
    model: body.model,
    messages,
    maxOutputTokens,
    ...(typeof body.temperature === "number" ? { temperature: body.temperature } : {}),
    stream: body.stream === true,
    includeUsage: true,
    fallbacks,
    passThrough: without(body, ["fallbacks"]),
    ...foreignOf("openai", anthropicToOpenAi(body))
  } satisfies WireRequest
}

const stopReason = (reason: LlmResponse.FinishReason): string => {
  switch (reason) {
    case "length":
      return "max_tokens"
    case "content_filter":
      return "refusal"
    case "tool_calls":
      return "tool_use"
    default:
      return "end_turn"
  }
}

const usage = (u: LlmResponse.Usage) => ({
  input_tokens: Math.max(0, u.inputTokens - (u.cachedInputTokens ?? 0)),
  output_tokens: u.outputTokens,
  ...(u.cachedInputTokens === undefined ? {} : { cache_read_input_tokens: u.cachedInputTokens })
})

const response: Wire["response"] = (r, id, created) =>
  r.raw?.wire === "anthropic" && isObject(r.raw.body) ? r.raw.body : encodeResponse(r, id, created)

const encodeResponse: Wire["response"] = (r, id) => ({
  id,
  type: "message",
  role: "assistant",
  model: r.model,
  content: [{ type: "text", text: r.text }],
  stop_reason: stopReason(r.finishReason),
  stop_sequence: null,
  usage: usage(r.usage)
})

/** One SSE event: its name, and its data (`type` the name, then `json`'s fields). */
const event = (name: string, json: Record<string, unknown>): string =>
  `event: ${name}\ndata: ${JSON.stringify({ type: name, ...json })}\n\n`

const stream: Wire["stream"] = (_request, id) => {
  let started = false
  // the content block open (a text block, or the tool call of that index), and the next block's index
  let open: "text" | number | undefined
  let blocks = 0
  const start = (model: string): string => {
    if (started) return ""
    started = true
    return event("message_start", {
      message: {
        id,
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 0, output_tokens: 0 }
      }
    })
  }
  const close = (): string => {
    if (open === undefined) return ""
    open = undefined
    return event("content_block_stop", { index: blocks - 1 })
  }
  /** Opens the block `block` (closing the one open) unless it is open. */
  const enter = (block: "text" | number, content: Record<string, unknown>): string => {
    if (open === block) return ""
    const closed = close()
    open = block
    return closed + event("content_block_start", { index: blocks++, content_block: content })
  }
  // the event of every token: written as text around it, without an object to build and stringify
  const delta = (type: "text_delta" | "input_json_delta", field: "text" | "partial_json", value: string): string =>
    `event: content_block_delta\ndata: {"type":"content_block_delta","index":${blocks - 1},"delta":{"type":"${type}","${field}":${JSON.stringify(value)}}}\n\n`
  return {
    chunk: (c, model) => {
      if (c._tag === "TextDelta") {
        return start(model) + enter("text", { type: "text", text: "" }) + delta("text_delta", "text", c.text)
      }
      if (c._tag === "ToolCallDelta") {
        const opened = enter(c.index, {
          type: "tool_use",
          id: c.id ?? `toolu_${id}_${c.index}`,
          name: c.name ?? "",
          input: {}
        })
        return (
          start(model) + opened + (c.arguments.length > 0 ? delta("input_json_delta", "partial_json", c.arguments) : "")
        )
      }
      return (
        start(c.model) +
        // an empty answer still has its (empty) text block
        (blocks === 0 ? enter("text", { type: "text", text: "" }) : "") +
        close() +
        event("message_delta", {
          delta: { stop_reason: stopReason(c.finishReason), stop_sequence: null },
          usage: usage(c.usage)
        }) +
        event("message_stop", {})
      )
    },
    error: (failure) => event("error", { error: { type: failure.anthropicType, message: failure.message } })
  }
}

/** The Anthropic Messages wire. */
export const anthropic: Wire = {
  name: "anthropic",
  decode,
  response,
  stream,
  errorBody: (failure: Failure, requestId: string) => ({
    type: "error",
    error: { type: failure.anthropicType, message: failure.message },
    request_id: requestId
  }),
  status: (failure) => failure.anthropicStatus ?? failure.status
}

/**
 * The OpenAI Chat Completions wire format as the gateway serves it: `POST /v1/chat/completions`, whole and
 * streamed (`chat.completion.chunk` events ending in `data: [DONE]`, tool calls as `delta.tool_calls`), and the
 * `{"error": {...}}` body.
 *
 * @internal
 */
import type { LlmRequest, LlmResponse } from "@llm-resilience/core"
import type { Failure } from "./failure.ts"
import type { Wire, WireRequest } from "./wire.ts"
import { openAiToAnthropic } from "./tools.ts"
import { fallbacksOf, foreignOf, isObject, positiveInt, textOf, without } from "./wire.ts"

const roles: Record<string, LlmRequest.Role> = {
  system: "system",
  developer: "system",
  user: "user",
  assistant: "assistant",
  tool: "tool",
  function: "tool"
}

const responseFormatOf = (u: unknown): LlmRequest.ResponseFormat | undefined | { readonly problem: string } => {
  if (u === undefined || u === null) return undefined
  if (!isObject(u)) return { problem: "response_format must be an object" }
  if (u.type === "text" || u.type === "json_object") return { type: u.type }
  if (u.type === "json_schema" && isObject(u.json_schema) && isObject(u.json_schema.schema)) {
    const name = typeof u.json_schema.name === "string" ? u.json_schema.name : "response"
    return { type: "json_schema", name, schema: u.json_schema.schema }
  }
  return { problem: "response_format must be text, json_object or json_schema with a schema" }
}

const decode: Wire["decode"] = (body) => {
  if (!isObject(body)) return { problem: "the body must be a JSON object" }
  if (typeof body.model !== "string" || body.model.length === 0) return { problem: "model is required", param: "model" }
  if (!Array.isArray(body.messages) || body.messages.length === 0) {
    return { problem: "messages must be a non-empty list", param: "messages" }
  }
  const messages: Array<LlmRequest.Message> = []
  for (let i = 0; i < body.messages.length; i++) {
    const m: unknown = body.messages[i]
    const role = isObject(m) && typeof m.role === "string" ? roles[m.role] : undefined
    // only an assistant message (with tool calls) may come without content
    const content = isObject(m) && (m.content !== undefined || role === "assistant") ? textOf(m.content) : undefined
    if (role === undefined) return { problem: `messages[${i}].role is not a known role`, param: `messages[${i}].role` }
    if (content === undefined) return { problem: `messages[${i}].content is not text`, param: `messages[${i}].content` }
    messages.push({ role, content })
  }
  const maxOutputTokens = positiveInt(body.max_completion_tokens ?? body.max_tokens, "max_completion_tokens")
  if (isObject(maxOutputTokens)) return { ...maxOutputTokens, param: "max_completion_tokens" }
  if (body.temperature !== undefined && body.temperature !== null && typeof body.temperature !== "number") {
    return { problem: "temperature must be a number", param: "temperature" }
  }
  const responseFormat = responseFormatOf(body.response_format)
  if (isObject(responseFormat) && "problem" in responseFormat) return { ...responseFormat, param: "response_format" }
  const fallbacks = fallbacksOf(body.fallbacks)
  if ("problem" in fallbacks) return { ...fallbacks, param: "fallbacks" }
  return {
    model: body.model,
    messages,
    ...(maxOutputTokens === undefined ? {} : { maxOutputTokens }),
    ...(typeof body.temperature === "number" ? { temperature: body.temperature } : {}),
    ...(responseFormat === undefined ? {} : { responseFormat }),
    stream: body.stream === true,
    includeUsage: isObject(body.stream_options) && body.stream_options.include_usage === true,
    fallbacks,
    // the output cap is re-encoded under the field the upstream server wants
    passThrough: without(body, ["fallbacks", "max_tokens", "max_completion_tokens"]),
    ...foreignOf("anthropic", openAiToAnthropic(body))
  } satisfies WireRequest
}

const finishReason = (reason: LlmResponse.FinishReason): string => (reason === "unknown" ? "stop" : reason)

const usage = (u: LlmResponse.Usage) => ({
  prompt_tokens: u.inputTokens,
  completion_tokens: u.outputTokens,
  total_tokens: u.inputTokens + u.outputTokens,
  ...(u.cachedInputTokens === undefined ? {} : { prompt_tokens_details: { cached_tokens: u.cachedInputTokens } })
})

const response: Wire["response"] = (r, id, created) =>
  r.raw?.wire === "openai" && isObject(r.raw.body) ? r.raw.body : encodeResponse(r, id, created)

const encodeResponse: Wire["response"] = (r, id, created) => ({
  id,
  object: "chat.completion",
  created,
  model: r.model,
  choices: [
    {
      index: 0,
      message: { role: "assistant", content: r.text, refusal: null },
      finish_reason: finishReason(r.finishReason),
      logprobs: null
    }
  ],
  usage: usage(r.usage)
})

/** One SSE event of `json` (text). */
const data = (json: string): string => `data: ${json}\n\n`

const stream: Wire["stream"] = (request, id, created) => {
  let started = false
  // a call's first piece (it has a name) opens it with an id: an upstream without ids gets one made here
  const toolCall = (c: LlmResponse.ToolCallDelta) =>
    c.id === undefined && c.name === undefined
      ? { index: c.index, function: { arguments: c.arguments } }
      : {
          index: c.index,
          id: c.id ?? `call_${id}_${c.index}`,
          type: "function",
          function: { name: c.name ?? "", arguments: c.arguments }
        }
  // every chunk is the same JSON around its model, delta and finish reason: written as text around them,
  // without an object per chunk to build and stringify (this runs for every token of every stream)
  const head = `data: {"id":${JSON.stringify(id)},"object":"chat.completion.chunk","created":${created},"model":`
  let model: string | undefined
  let modelJson = ""
  const chunk = (answering: string, delta: string, finish: string): string => {
    if (answering !== model) {
      model = answering
      modelJson = JSON.stringify(answering)
    }
    return `${head}${modelJson},"choices":[{"index":0,"delta":${delta},"finish_reason":${finish},"logprobs":null}]}\n\n`
  }
  const role = (model: string): string => {
    if (started) return ""
    started = true
    return chunk(model, `{"role":"assistant","content":""}`, "null")
  }
  return {
    chunk: (c, model) => {
      if (c._tag === "TextDelta") return role(model) + chunk(model, `{"content":${JSON.stringify(c.text)}}`, "null")
      if (c._tag === "ToolCallDelta") {
        return role(model) + chunk(model, JSON.stringify({ tool_calls: [toolCall(c)] }), "null")
      }
      const usageChunk = {
        id,
        object: "chat.completion.chunk",
        created,
        model: c.model,
        choices: [],
        usage: usage(c.usage)
      }
      return (
        role(c.model) +
        chunk(c.model, "{}", JSON.stringify(finishReason(c.finishReason))) +
        (request.includeUsage ? data(JSON.stringify(usageChunk)) : "") +
        data("[DONE]")
      )
    },
    error: (failure) => data(JSON.stringify(errorBody(failure)))
  }
}

const errorBody = (failure: Failure) => ({
  error: { message: failure.message, type: failure.type, param: failure.param ?? null, code: failure.code }
})

/** The OpenAI Chat Completions wire. */
export const openAi: Wire = {
  name: "openai",
  decode,
  response,
  stream,
  errorBody,
  status: (failure) => failure.status
}

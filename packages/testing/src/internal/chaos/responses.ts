/**
 * The OpenAI Responses wire format as the chaos server speaks it: `POST /v1/responses`, `response` bodies,
 * named `response.*` SSE events from `response.created` to the terminal `response.completed` /
 * `response.incomplete` (no `[DONE]`), an `error` + `response.failed` pair for in-stream errors. Errors and
 * rate-limit headers are OpenAI's.
 *
 * @internal
 */
import { openAiWire } from "./openai.ts"
import type { Answer, Frames, ParsedRequest, Wire } from "./wire.ts"
import { frame, isObject, promptChars } from "./wire.ts"

const parseRequest = (json: unknown): ParsedRequest | string => {
  if (!isObject(json)) return "request body must be a JSON object"
  if (typeof json.model !== "string" || json.model.length === 0) return "Missing required parameter: 'model'."
  const input = json.input
  if (typeof input !== "string" && !Array.isArray(input)) return "Missing required parameter: 'input'."
  return {
    model: json.model,
    stream: json.stream === true,
    includeUsage: true,
    promptChars: typeof input === "string" ? input.length : promptChars(input, json.instructions),
    maxTokens: typeof json.max_output_tokens === "number" ? json.max_output_tokens : undefined
  }
}

const usage = (a: Answer) => ({
  input_tokens: a.inputTokens,
  input_tokens_details: { cached_tokens: a.cachedInputTokens },
  output_tokens: a.outputTokens,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: a.inputTokens + a.outputTokens
})

const itemId = (a: Answer) => `msg_${a.id.slice(5)}`

const part = (a: Answer, text: string) =>
  a.finish === "refusal"
    ? { type: "refusal", refusal: text }
    : { type: "output_text", annotations: [], logprobs: [], text }

const item = (a: Answer, status: string, content: ReadonlyArray<unknown>) => ({
  id: itemId(a),
  type: "message",
  status,
  content,
  role: "assistant"
})

/** The response object: `status` is `in_progress` for the snapshots that open a stream. */
const response = (a: Answer, done: boolean) => {
  const incomplete = a.finish === "length"
  return {
    id: a.id,
    object: "response",
    created_at: Math.floor(a.nowMillis / 1000),
    status: !done ? "in_progress" : incomplete ? "incomplete" : "completed",
    background: false,
    error: null,
    incomplete_details: done && incomplete ? { reason: "max_output_tokens" } : null,
    instructions: null,
    max_output_tokens: null,
    model: a.model,
    output: done ? [item(a, incomplete ? "incomplete" : "completed", [part(a, a.chunks.join(""))])] : [],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: true,
    temperature: 1,
    text: { format: { type: "text" } },
    tool_choice: "auto",
    tools: [],
    top_p: 1,
    truncation: "disabled",
    usage: done ? usage(a) : null,
    metadata: {}
  }
}

const frames = (a: Answer): Frames => {
  let sequence = 0
  const event = (type: string, payload: object) =>
    frame(JSON.stringify({ type, sequence_number: sequence++, ...payload }), type)
  const refused = a.finish === "refusal"
  const at = { item_id: itemId(a), output_index: 0, content_index: 0 }
  const text = a.chunks.join("")
  const head = [
    event("response.created", { response: response(a, false) }),
    event("response.in_progress", { response: response(a, false) }),
    event("response.output_item.added", { output_index: 0, item: item(a, "in_progress", []) }),
    event("response.content_part.added", { ...at, part: part(a, "") })
  ]
  const deltas = a.chunks.map((delta) =>
    refused
      ? event("response.refusal.delta", { ...at, delta })
      : event("response.output_text.delta", { ...at, delta, logprobs: [] })
  )
  const tail = [
    refused
      ? event("response.refusal.done", { ...at, refusal: text })
      : event("response.output_text.done", { ...at, text, logprobs: [] }),
    event("response.content_part.done", { ...at, part: part(a, text) }),
    event("response.output_item.done", {
      output_index: 0,
      item: item(a, a.finish === "length" ? "incomplete" : "completed", [part(a, text)])
    }),
    event(a.finish === "length" ? "response.incomplete" : "response.completed", { response: response(a, true) })
  ]
  return { head, deltas, tail }
}

const serverError = "The server had an error processing your request. Sorry about that!"

/** The OpenAI Responses wire format: OpenAI's errors and headers, Responses bodies and events. */
export const responsesWire: Wire = {
  ...openAiWire,
  name: "openai-responses",
  match: (path) => (path === "/v1/responses" ? {} : undefined),
  endMarker: false,
  answerId: (sequence) => `resp_chaos${String(sequence).padStart(8, "0")}`,
  parseRequest,
  body: (a) => response(a, true),
  frames,
  errorFrame: () =>
    frame(JSON.stringify({ type: "error", code: "server_error", message: serverError, param: null }), "error") +
    frame(
      JSON.stringify({
        type: "response.failed",
        response: { object: "response", status: "failed", error: { code: "server_error", message: serverError } }
      }),
      "response.failed"
    )
}

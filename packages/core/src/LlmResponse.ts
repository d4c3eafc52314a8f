/**
 * The provider-neutral response, its usage, and the chunks of a streamed response.
 *
 * A stream is a sequence of `TextDelta` and `ToolCallDelta` chunks closed by exactly one `Finish` chunk, which a provider emits
 * only once the model said it finished: at the wire format's end marker (`[DONE]`, `message_stop`), or at
 * a clean end of the body after the finish reason. A stream that ends without `Finish` was truncated.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { Report } from "./CallReport.ts"
import { RateLimitSnapshot } from "./RateLimitSnapshot.ts"

/**
 * Token usage as the provider reported it. `cachedInputTokens` is the part of `inputTokens` served from
 * the provider's prompt cache (priced lower).
 *
 * @since 0.1.0
 */
export const Usage = Schema.Struct({
  inputTokens: Schema.Finite,
  outputTokens: Schema.Finite,
  cachedInputTokens: Schema.optional(Schema.Finite)
})

/**
 * @since 0.1.0
 */
export type Usage = typeof Usage.Type

/**
 * Why the model stopped: `stop` (natural end or stop sequence), `length` (hit the output cap),
 * `content_filter` (a filter stopped it, or the model refused: the text is then the refusal), `tool_calls`,
 * or `unknown` for anything a provider adds later.
 *
 * @since 0.1.0
 */
export const FinishReason = Schema.Literals(["stop", "length", "content_filter", "tool_calls", "unknown"])

/**
 * @since 0.1.0
 */
export type FinishReason = typeof FinishReason.Type

/**
 * A completed, non-streamed response.
 *
 * @example
 * ```ts
 * import type { LlmResponse } from "@llm-resilience/core"
 * const response: LlmResponse.LlmResponse = {
 *   text: "Hello!",
 *   finishReason: "stop",
 *   usage: { inputTokens: 12, outputTokens: 3 },
 *   provider: "openai",
 *   model: "gpt-5.4-mini-2026-03-17"
 * }
 * ```
 * @since 0.1.0
 */
export const LlmResponse = Schema.Struct({
  text: Schema.String,
  finishReason: FinishReason,
  usage: Usage,
  /** The provider that answered. */
  provider: Schema.String,
  /** The model that actually answered (providers may resolve aliases). */
  model: Schema.String,
  requestId: Schema.optional(Schema.String),
  rateLimit: Schema.optional(RateLimitSnapshot),
  /** What the call did: its attempts, the step that answered, its admission wait (set by `Resilience`). */
  report: Schema.optional(Report),
  /**
   * The provider's whole response body, in its wire format (`openai`, `anthropic`), when the request
   * carried `passThrough` fields for that format: for returning fields the toolkit does not read unchanged.
   */
  raw: Schema.optional(Schema.Struct({ wire: Schema.String, body: Schema.Unknown }))
})

/**
 * @since 0.1.0
 */
export type LlmResponse = typeof LlmResponse.Type

/**
 * A piece of generated text.
 *
 * @since 0.1.0
 */
export const TextDelta = Schema.TaggedStruct("TextDelta", { text: Schema.String })

/**
 * A piece of a tool call the model is making. The first piece of each call names it (`id`, `name`); the
 * pieces after it carry more of its `arguments`, a JSON text sent in fragments (OpenAI
 * `delta.tool_calls[].function.arguments`, Anthropic `input_json_delta.partial_json`). `index` numbers the
 * calls of one answer from 0, in the order they start; a stream that makes tool calls finishes with
 * `tool_calls`.
 *
 * @example
 * ```ts
 * import type { LlmResponse } from "@llm-resilience/core"
 * const pieces: Array<LlmResponse.ToolCallDelta> = [
 *   { _tag: "ToolCallDelta", index: 0, id: "call_1", name: "get_weather", arguments: "" },
 *   { _tag: "ToolCallDelta", index: 0, arguments: "{\"city\":" },
 *   { _tag: "ToolCallDelta", index: 0, arguments: "\"Paris\"}" }
 * ]
 * ```
 * @since 0.1.0
 */
export const ToolCallDelta = Schema.TaggedStruct("ToolCallDelta", {
  index: Schema.Int,
  /** The call's id, on its first piece. */
  id: Schema.optional(Schema.String),
  /** The tool's name, on its first piece. */
  name: Schema.optional(Schema.String),
  /** A fragment of the call's JSON arguments (may be empty). */
  arguments: Schema.String
})

/**
 * @since 0.1.0
 */
export type ToolCallDelta = typeof ToolCallDelta.Type

/**
 * The last chunk of a complete stream: why it stopped, the final usage, and response metadata.
 *
 * @since 0.1.0
 */
export const Finish = Schema.TaggedStruct("Finish", {
  finishReason: FinishReason,
  usage: Usage,
  provider: Schema.String,
  model: Schema.String,
  requestId: Schema.optional(Schema.String),
  rateLimit: Schema.optional(RateLimitSnapshot)
})

/**
 * One chunk of a streamed response.
 *
 * @example
 * ```ts
 * import type { LlmResponse } from "@llm-resilience/core"
 * const chunks: Array<LlmResponse.StreamChunk> = [
 *   { _tag: "TextDelta", text: "Hel" },
 *   { _tag: "TextDelta", text: "lo" },
 *   { _tag: "Finish", finishReason: "stop", usage: { inputTokens: 5, outputTokens: 2 }, provider: "fake", model: "m" }
 * ]
 * ```
 * @since 0.1.0
 */
export const StreamChunk = Schema.Union([TextDelta, ToolCallDelta, Finish])

/**
 * @since 0.1.0
 */
export type StreamChunk = typeof StreamChunk.Type

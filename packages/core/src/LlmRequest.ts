/**
 * The provider-neutral request that every stage of the toolkit sees.
 *
 * A request names the model, carries the conversation, an optional output cap and response format, and
 * `metadata` that the policies read: the route (`path`) selects a retry profile and timeouts, `priority`
 * orders the admission queue, `conversationId` feeds the agent-loop guard, `idempotencyKey` lets a durable
 * queue deduplicate.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * Who wrote a message.
 *
 * @since 0.1.0
 */
export const Role = Schema.Literals(["system", "user", "assistant", "tool"])

/**
 * @since 0.1.0
 */
export type Role = typeof Role.Type

/**
 * One message of the conversation.
 *
 * @example
 * ```ts
 * import type { Message } from "@llm-resilience/core/LlmRequest"
 * const m: Message = { role: "user", content: "Hello" }
 * ```
 * @since 0.1.0
 */
export const Message = Schema.Struct({
  role: Role,
  content: Schema.String
})

/**
 * @since 0.1.0
 */
export type Message = typeof Message.Type

/**
 * Admission priority: `interactive` requests are admitted before `background` ones.
 *
 * @since 0.1.0
 */
export const Priority = Schema.Literals(["interactive", "background"])

/**
 * @since 0.1.0
 */
export type Priority = typeof Priority.Type

/**
 * What the policies read from a request.
 *
 * @since 0.1.0
 */
export const RequestMetadata = Schema.Struct({
  /** The route or feature this call serves; selects a retry profile and timeouts. */
  path: Schema.optional(Schema.String),
  /** Groups the turns of one agent conversation (turn and loop guards). */
  conversationId: Schema.optional(Schema.String),
  /** Spend budgets can be kept per tenant. */
  tenant: Schema.optional(Schema.String),
  priority: Schema.optional(Priority),
  idempotencyKey: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 */
export type RequestMetadata = typeof RequestMetadata.Type

/**
 * The requested response format: free text, any JSON object, or JSON matching a JSON Schema.
 *
 * @since 0.1.0
 */
export const ResponseFormat = Schema.Union([
  Schema.Struct({ type: Schema.Literal("text") }),
  Schema.Struct({ type: Schema.Literal("json_object") }),
  Schema.Struct({
    type: Schema.Literal("json_schema"),
    name: Schema.String,
    schema: Schema.Record(Schema.String, Schema.Unknown)
  })
])

/**
 * @since 0.1.0
 */
export type ResponseFormat = typeof ResponseFormat.Type

/**
 * A provider-neutral completion request.
 *
 * @example
 * ```ts
 * import { LlmRequest } from "@llm-resilience/core"
 * const request: LlmRequest.LlmRequest = {
 *   model: "gpt-5.4-mini",
 *   messages: [{ role: "user", content: "Summarise this ticket" }],
 *   maxOutputTokens: 256,
 *   metadata: { path: "support-summary", priority: "interactive" }
 * }
 * ```
 * @since 0.1.0
 */
export const LlmRequest = Schema.Struct({
  model: Schema.String,
  messages: Schema.Array(Message),
  maxOutputTokens: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
  temperature: Schema.optional(Schema.Finite),
  responseFormat: Schema.optional(ResponseFormat),
  metadata: Schema.optional(RequestMetadata),
  /**
   * Body fields the toolkit does not interpret, by wire format (`openai` for Chat Completions, `anthropic`
   * for Messages): a provider speaking that format sends them as given, over its own encoding of the
   * request (except `model`, `stream` and `stream_options`, which it controls); other providers ignore
   * them. This is how an OpenAI-compatible gateway passes `tools`, `top_p`, `user` or messages with tool
   * calls through. A provider that used them also returns its whole response body (`LlmResponse.raw`).
   */
  passThrough: Schema.optional(Schema.Record(Schema.String, Schema.Record(Schema.String, Schema.Unknown)))
})

/**
 * @since 0.1.0
 */
export type LlmRequest = typeof LlmRequest.Type

/**
 * What the chaos server needs from a wire format (OpenAI Chat Completions and Responses, Azure OpenAI,
 * Anthropic Messages, Gemini): which paths it answers, how to read a request, how to render an answer (whole
 * or as SSE frames), and how that provider's errors look.
 *
 * @internal
 */

/** The parts of a request the chaos server uses. */
export interface ParsedRequest {
  readonly model: string
  readonly stream: boolean
  /** OpenAI `stream_options.include_usage`; Anthropic always reports usage. */
  readonly includeUsage: boolean
  /** Characters of prompt text, for a rough token count. */
  readonly promptChars: number
  readonly maxTokens: number | undefined
  /** The tool the request makes the model call (OpenAI `tool_choice: "required"` or a named function, Anthropic `tool_choice` `any` or a named tool). */
  readonly tool?: string | undefined
}

/** One answer, rendered by a wire format. */
export interface Answer {
  readonly id: string
  readonly requestId: string
  readonly model: string
  readonly chunks: ReadonlyArray<string>
  /** `refusal`: `chunks` are the model's refusal. */
  readonly finish: "stop" | "length" | "refusal"
  /** A tool call the answer makes instead of text: `chunks` are the pieces of its JSON arguments. */
  readonly tool?: { readonly id: string; readonly name: string } | undefined
  readonly inputTokens: number
  readonly cachedInputTokens: number
  readonly outputTokens: number
  readonly nowMillis: number
  readonly includeUsage: boolean
}

/** The error kinds whose bodies differ per wire format. */
export type ErrorKind =
  | "rate-limit"
  | "insufficient-quota"
  | "overloaded"
  | "server-error"
  | "authentication"
  | "permission-denied"
  | "model-not-found"
  | "bad-request"
  | "context-length"
  | "content-filter"

/** An error response: status, JSON body and extra headers (a 200 is a rejection the provider sends as an answer). */
export interface ErrorReply {
  readonly status: number
  readonly body: unknown
  readonly headers: Readonly<Record<string, string>>
}

/** The SSE frames of a streamed answer, split so that faults can cut them anywhere. */
export interface Frames {
  /** Frames before the first text delta (`message_start`, role chunk ...). */
  readonly head: ReadonlyArray<string>
  /** One frame per text chunk. */
  readonly deltas: ReadonlyArray<string>
  /** Frames after the last delta, up to and including the end marker. */
  readonly tail: ReadonlyArray<string>
}

/** What a request's path (and query) says: the model and streaming when the path carries them, or a problem. */
export interface RouteInfo {
  readonly model?: string | undefined
  readonly stream?: boolean | undefined
  readonly invalid?: string | undefined
}

/** A wire format. */
export interface Wire {
  readonly name: "openai" | "openai-responses" | "azure-openai" | "anthropic" | "gemini"
  /** Whether a path (after any `/fault/<name>` prefix) is this wire's, and what it (and the URL's query) says. */
  readonly match: (path: string, url: URL) => RouteInfo | undefined
  /** The header carrying the request id, when the provider sends one. */
  readonly requestIdHeader: string | undefined
  /** The header carrying the key, besides `Authorization: Bearer`. */
  readonly apiKeyHeader: string
  /** Whether the last frame of `tail` is an end marker apart from the finish (`no-end-marker` drops it). */
  readonly endMarker: boolean
  /** The error kind a whole (non-streamed) request gets for `stream-error`. */
  readonly streamErrorKind: ErrorKind
  readonly answerId: (sequence: number) => string
  readonly parseRequest: (json: unknown, route: RouteInfo) => ParsedRequest | string
  readonly body: (answer: Answer) => unknown
  readonly frames: (answer: Answer) => Frames
  /** A frame carrying an in-stream error event. */
  readonly errorFrame: (requestId: string) => string
  readonly error: (kind: ErrorKind, context: ErrorContext) => ErrorReply
  /** Rate-limit headers of a healthy response (`exhausted: false`) or of a 429. */
  readonly rateLimitHeaders: (
    nowMillis: number,
    exhausted: boolean,
    retryAfterSeconds: number
  ) => Record<string, string>
  /** Garbage in every rate-limit header (and Retry-After). */
  readonly garbageRateLimitHeaders: Readonly<Record<string, string>>
  /** An error body for a request the chaos server itself could not read. */
  readonly invalidRequest: (message: string, requestId: string) => unknown
}

/** What an error body may mention. */
export interface ErrorContext {
  readonly requestId: string
  readonly model: string
  readonly retryAfterSeconds: number
  readonly nowMillis: number
}

/** Whether a value is a plain object. */
export const isObject = (u: unknown): u is Record<string, unknown> =>
  u !== null && typeof u === "object" && !Array.isArray(u)

/** A rendered SSE frame: `event:` line when named, one `data:` line, blank line. */
export const frame = (data: string, event?: string): string =>
  event === undefined ? `data: ${data}\n\n` : `event: ${event}\ndata: ${data}\n\n`

const textOf = (content: unknown): number => {
  if (typeof content === "string") return content.length
  if (Array.isArray(content)) {
    let n = 0
    for (const part of content) {
      if (part !== null && typeof part === "object" && typeof (part as { text?: unknown }).text === "string") {
        n += (part as { text: string }).text.length
      }
    }
    return n
  }
  return 0
}

/** Counts prompt characters over `messages[].content` (strings or text parts) and an optional `system`. */
export const promptChars = (messages: ReadonlyArray<unknown>, system?: unknown): number => {
  let n = textOf(system)
  for (const m of messages) {
    if (m !== null && typeof m === "object") n += textOf((m as { content?: unknown }).content)
  }
  return n
}

/**
 * The tool a request makes the model call: `tool_choice` naming one (OpenAI `{type: "function", function:
 * {name}}`, Anthropic `{type: "tool", name}`), or requiring one (`"required"`, `{type: "any"}`): the first of
 * `tools`.
 */
export const forcedTool = (body: Record<string, unknown>): string | undefined => {
  const choice = body.tool_choice
  const tools = Array.isArray(body.tools) ? body.tools : []
  const nameOf = (u: unknown): string | undefined => {
    if (!isObject(u)) return undefined
    const fn = isObject(u.function) ? u.function : u
    return typeof fn.name === "string" && fn.name.length > 0 ? fn.name : undefined
  }
  if (choice === "required" || (isObject(choice) && choice.type === "any")) return nameOf(tools[0])
  if (isObject(choice) && (choice.type === "function" || choice.type === "tool")) return nameOf(choice)
  return undefined
}

/** Reads the common request fields, or says what is wrong. */
export const readCommon = (
  json: unknown
):
  | { readonly model: string; readonly messages: ReadonlyArray<unknown>; readonly body: Record<string, unknown> }
  | string => {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return "request body must be a JSON object"
  const body = json as Record<string, unknown>
  if (typeof body.model !== "string" || body.model.length === 0) return "model: field required"
  if (!Array.isArray(body.messages)) return "messages: field required"
  return { model: body.model, messages: body.messages, body }
}

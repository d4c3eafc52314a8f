/**
 * Tool definitions across wire formats: a request's `tools` and `tool_choice` written for the other wire,
 * so that a fallback to a provider of the other format can still call the client's tools. Only the
 * definitions and the choice are translated; tool calls and results already in the conversation are not
 * (they reach the other format as their text).
 *
 * @internal
 */
import { isObject } from "./wire.ts"

type Fields = Record<string, unknown>

const choiceToAnthropic = (u: unknown): unknown => {
  if (u === "auto" || u === "none") return { type: u }
  if (u === "required") return { type: "any" }
  if (isObject(u) && isObject(u.function) && typeof u.function.name === "string") {
    return { type: "tool", name: u.function.name }
  }
  return undefined
}

const choiceToOpenAi = (u: unknown): unknown => {
  if (!isObject(u)) return undefined
  if (u.type === "auto" || u.type === "none") return u.type
  if (u.type === "any") return "required"
  if (u.type === "tool" && typeof u.name === "string") return { type: "function", function: { name: u.name } }
  return undefined
}

const withChoice = (fields: Fields, choice: unknown): Fields =>
  choice === undefined ? fields : { ...fields, tool_choice: choice }

/** OpenAI `tools` (functions) and `tool_choice` as Anthropic fields; `undefined` without function tools. */
export const openAiToAnthropic = (body: Fields): Fields | undefined => {
  if (!Array.isArray(body.tools)) return undefined
  const tools: Array<Fields> = []
  for (const tool of body.tools) {
    if (!isObject(tool) || tool.type !== "function" || !isObject(tool.function)) continue
    const fn = tool.function
    tools.push({
      name: fn.name,
      ...(typeof fn.description === "string" ? { description: fn.description } : {}),
      input_schema: isObject(fn.parameters) ? fn.parameters : { type: "object", properties: {} }
    })
  }
  return tools.length === 0 ? undefined : withChoice({ tools }, choiceToAnthropic(body.tool_choice))
}

/** Anthropic custom `tools` and `tool_choice` as OpenAI fields; `undefined` without custom tools. */
export const anthropicToOpenAi = (body: Fields): Fields | undefined => {
  if (!Array.isArray(body.tools)) return undefined
  const tools: Array<Fields> = []
  for (const tool of body.tools) {
    // server tools (web search ...) have a `type` of their own and no input schema: Anthropic only
    if (!isObject(tool) || typeof tool.name !== "string" || !isObject(tool.input_schema)) continue
    tools.push({
      type: "function",
      function: {
        name: tool.name,
        ...(typeof tool.description === "string" ? { description: tool.description } : {}),
        parameters: tool.input_schema
      }
    })
  }
  return tools.length === 0 ? undefined : withChoice({ tools }, choiceToOpenAi(body.tool_choice))
}

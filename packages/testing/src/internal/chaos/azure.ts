/**
 * Azure OpenAI as the chaos server speaks it: the OpenAI Chat Completions wire at
 * `POST /openai/deployments/{deployment}/chat/completions?api-version=...`, with Azure's differences: the
 * deployment in the path, `api-key` auth, `apim-request-id`, content-filter results in bodies and chunks
 * (the stream opens with a `prompt_filter_results` chunk), filtered output as `finish_reason:
 * content_filter` (the `refusal` fault), and Azure's error bodies (string `code`s, "Please retry after N
 * seconds") with `retry-after` / `retry-after-ms` on 429s.
 *
 * @internal
 */
import { openAiWire } from "./openai.ts"
import type { Answer, ErrorKind, ErrorReply, Frames, ParsedRequest, RouteInfo, Wire } from "./wire.ts"
import { frame, isObject } from "./wire.ts"

const deploymentPath = /^\/openai\/deployments\/([^/]+)\/chat\/completions$/

const match = (path: string, url: URL): RouteInfo | undefined => {
  const m = deploymentPath.exec(path)
  if (m === null) return undefined
  const model = decodeURIComponent(m[1])
  return url.searchParams.get("api-version") === null
    ? { model, invalid: "Missing required query parameter: api-version" }
    : { model }
}

// The deployment names the model; the body's `model` is optional.
const parseRequest = (json: unknown, route: RouteInfo): ParsedRequest | string =>
  openAiWire.parseRequest(isObject(json) ? { model: route.model, ...json } : json, route)

const safe = { filtered: false, severity: "safe" }
const filterResults = { hate: safe, self_harm: safe, sexual: safe, violence: safe }
const filteredResults = { ...filterResults, violence: { filtered: true, severity: "high" } }
const promptFilter = [
  { prompt_index: 0, content_filter_results: { ...filterResults, jailbreak: { filtered: false, detected: false } } }
]

const usage = (a: Answer) => ({
  prompt_tokens: a.inputTokens,
  completion_tokens: a.outputTokens,
  total_tokens: a.inputTokens + a.outputTokens,
  prompt_tokens_details: { cached_tokens: a.cachedInputTokens }
})

const filtered = (a: Answer) => a.finish === "refusal"

const body = (a: Answer) => ({
  id: a.id,
  object: "chat.completion",
  created: Math.floor(a.nowMillis / 1000),
  model: a.model,
  prompt_filter_results: promptFilter,
  choices: [
    {
      index: 0,
      message: { role: "assistant", content: filtered(a) ? null : a.chunks.join(""), refusal: null },
      finish_reason: filtered(a) ? "content_filter" : a.finish,
      logprobs: null,
      content_filter_results: filtered(a) ? filteredResults : filterResults
    }
  ],
  usage: usage(a),
  system_fingerprint: "fp_chaos"
})

const frames = (a: Answer): Frames => {
  const chunk = (delta: object, finish: string | null, results: object) =>
    frame(
      JSON.stringify({
        id: a.id,
        object: "chat.completion.chunk",
        created: Math.floor(a.nowMillis / 1000),
        model: a.model,
        system_fingerprint: "fp_chaos",
        choices: [{ index: 0, delta, finish_reason: finish, logprobs: null, content_filter_results: results }]
      })
    )
  const tail = [chunk({}, filtered(a) ? "content_filter" : a.finish, filtered(a) ? filteredResults : {})]
  if (a.includeUsage) {
    tail.push(
      frame(JSON.stringify({ id: a.id, object: "chat.completion.chunk", model: a.model, choices: [], usage: usage(a) }))
    )
  }
  tail.push(frame("[DONE]"))
  return {
    head: [
      frame(
        JSON.stringify({ id: "", object: "", created: 0, model: "", choices: [], prompt_filter_results: promptFilter })
      ),
      chunk({ role: "assistant", content: "" }, null, {})
    ],
    // filtered output: the stream stops with the finish reason, no text
    deltas: filtered(a) ? [] : a.chunks.map((content) => chunk({ content }, null, filterResults)),
    tail
  }
}

const azureError = (code: string, message: string) => ({ error: { code, message } })

const error = (kind: ErrorKind, c: Parameters<Wire["error"]>[1]): ErrorReply => {
  const after = c.retryAfterSeconds
  const retry = { "retry-after": String(after), "retry-after-ms": String(after * 1000) }
  switch (kind) {
    case "rate-limit":
      return {
        status: 429,
        headers: { ...rateLimitHeaders(c.nowMillis, true), ...retry },
        body: azureError(
          "429",
          `Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after ${after} seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit.`
        )
      }
    case "overloaded":
      // capacity, not your quota: a 429 that says so
      return {
        status: 429,
        headers: retry,
        body: azureError(
          "429",
          `The system is currently experiencing high demand and cannot process your request. Please retry after ${after} seconds.`
        )
      }
    case "authentication":
      return {
        status: 401,
        headers: {},
        body: azureError(
          "401",
          "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."
        )
      }
    case "model-not-found":
      return {
        status: 404,
        headers: {},
        body: azureError(
          "DeploymentNotFound",
          "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."
        )
      }
    case "content-filter": {
      const safe = { filtered: false, severity: "safe" }
      return {
        status: 400,
        headers: {},
        body: {
          error: {
            message:
              "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
            type: null,
            param: "prompt",
            code: "content_filter",
            status: 400,
            innererror: {
              code: "ResponsibleAIPolicyViolation",
              content_filter_result: {
                hate: safe,
                self_harm: safe,
                sexual: safe,
                violence: { filtered: true, severity: "medium" }
              }
            }
          }
        }
      }
    }
    default:
      return openAiWire.error(kind, c)
  }
}

const rateLimitHeaders = (_nowMillis: number, exhausted: boolean) => ({
  "x-ratelimit-remaining-requests": exhausted ? "0" : "119",
  "x-ratelimit-remaining-tokens": exhausted ? "0" : "119000"
})

/** Azure OpenAI: the OpenAI Chat Completions wire with Azure's URL, auth, filters and errors. */
export const azureWire: Wire = {
  ...openAiWire,
  name: "azure-openai",
  match,
  requestIdHeader: "apim-request-id",
  apiKeyHeader: "api-key",
  parseRequest,
  body,
  frames,
  error,
  rateLimitHeaders,
  garbageRateLimitHeaders: { ...openAiWire.garbageRateLimitHeaders, "x-ms-retry-after-ms": "-250" }
}

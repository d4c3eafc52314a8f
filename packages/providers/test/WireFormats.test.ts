/**
 * The OpenAI Responses, Azure OpenAI and Gemini providers on replayed payloads: requests as each API
 * documents them, bodies and SSE streams as the APIs send them (including errors in mid-stream), error
 * bodies and headers; then fuzzed streams with absurd and malformed values. The HTTP client is in memory:
 * it records each request and answers with the given bytes.
 */
import { assert, describe, it } from "@effect/vitest"
import type { LlmError, LlmProvider, LlmRequest, LlmResponse } from "@llm-resilience/core"
import { ConfigProvider, Effect, Exit, Redacted, Schema, Stream } from "effect"
import { Headers, HttpBody, HttpClient, HttpClientResponse } from "effect/http"
import * as fc from "fast-check"
import { LlmError as Errors } from "@llm-resilience/core"
import { AzureOpenAiProvider, GeminiProvider, OpenAiResponsesProvider } from "../src/index.ts"

const secret = "sk-wire-formats-SECRET-0123456789"
const apiKey = Redacted.make(secret)

interface Reply {
  readonly status?: number
  readonly headers?: Record<string, string>
  readonly body: string
}

interface Seen {
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Record<string, unknown>
  /** Header names the client redacts where it renders headers. */
  readonly redacted: ReadonlyArray<string | RegExp>
}

/** A client that records each request and answers `reply` (SSE when the body starts with `data:`/`event:`). */
const replayClient = (reply: Reply, seen: Array<Seen>) =>
  HttpClient.make((request, url) =>
    Effect.withFiber((fiber) => {
      const body = request.body as HttpBody.Uint8Array
      seen.push({
        url: url.toString(),
        headers: request.headers,
        body: JSON.parse(new TextDecoder().decode(body.body)),
        redacted: fiber.getRef(Headers.CurrentRedactedNames)
      })
      const sse = /^(?:data|event):/.test(reply.body)
      return Effect.succeed(
        HttpClientResponse.fromWeb(
          request,
          new Response(reply.body, {
            status: reply.status ?? 200,
            headers: { "content-type": sse ? "text/event-stream" : "application/json", ...reply.headers }
          })
        )
      )
    })
  )

type Maker = (client: HttpClient.HttpClient) => Effect.Effect<LlmProvider.LlmProvider["Service"], unknown>

const responses: Maker = (client) =>
  Effect.provideService(
    OpenAiResponsesProvider.make({ apiKey, baseUrl: "https://api.test/v1" }),
    HttpClient.HttpClient,
    client
  )
const azure =
  (options: Partial<AzureOpenAiProvider.MakeOptions> = {}): Maker =>
  (client) =>
    Effect.provideService(
      AzureOpenAiProvider.make({ apiKey, endpoint: "https://res.openai.azure.com", ...options }),
      HttpClient.HttpClient,
      client
    )
const gemini: Maker = (client) =>
  Effect.provideService(
    GeminiProvider.make({ apiKey, baseUrl: "https://gl.test/v1beta" }),
    HttpClient.HttpClient,
    client
  )

const request: LlmRequest.LlmRequest = {
  model: "m-1",
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello." },
    { role: "user", content: "Again" }
  ],
  maxOutputTokens: 64,
  temperature: 0.5
}

const call = (make: Maker, reply: Reply, req: LlmRequest.LlmRequest = request) =>
  Effect.gen(function* () {
    const seen: Array<Seen> = []
    const provider = yield* Effect.orDie(make(replayClient(reply, seen)))
    const exit = yield* Effect.exit(provider.complete(req))
    return { exit, seen }
  })

const streamed = (make: Maker, reply: Reply, req: LlmRequest.LlmRequest = request) =>
  Effect.gen(function* () {
    const seen: Array<Seen> = []
    const provider = yield* Effect.orDie(make(replayClient(reply, seen)))
    const exit = yield* Effect.exit(Stream.runCollect(provider.stream(req)))
    return { exit, seen }
  })

const ok = <A>(exit: Exit.Exit<A, unknown>): A => {
  if (Exit.isSuccess(exit)) return exit.value
  return assert.fail(`expected success, got ${JSON.stringify(exit.cause)}`)
}

const failure = (exit: Exit.Exit<unknown, LlmError.LlmError>): LlmError.LlmError => {
  const error = Exit.isFailure(exit) ? Exit.findErrorOption(exit) : undefined
  if (error === undefined || error._tag !== "Some") return assert.fail("expected a typed failure")
  return error.value
}

const textOf = (chunks: ReadonlyArray<LlmResponse.StreamChunk>) =>
  chunks.map((c) => (c._tag === "TextDelta" ? c.text : "")).join("")

const finishOf = (chunks: ReadonlyArray<LlmResponse.StreamChunk>) => {
  const last = chunks[chunks.length - 1]
  assert.strictEqual(chunks.filter((c) => c._tag === "Finish").length, 1)
  if (last._tag !== "Finish") return assert.fail("the stream does not end with Finish")
  return last
}

const sse = (frames: ReadonlyArray<unknown>, separator = "\n\n") =>
  frames.map((f) => `data: ${typeof f === "string" ? f : JSON.stringify(f)}${separator}`).join("")
type Event = { readonly type: string; readonly [key: string]: unknown }
const named = (frames: ReadonlyArray<Event>) =>
  frames.map((f) => `event: ${f.type}\ndata: ${JSON.stringify(f)}\n\n`).join("")

// ---------------------------------------------------------------------------------------------------------
// OpenAI Responses
// ---------------------------------------------------------------------------------------------------------

const usage = {
  input_tokens: 36,
  input_tokens_details: { cached_tokens: 12 },
  output_tokens: 87,
  output_tokens_details: { reasoning_tokens: 64 },
  total_tokens: 123
}
const message = (content: ReadonlyArray<object>) => ({
  id: "msg_1",
  type: "message",
  status: "completed",
  role: "assistant",
  content
})
const responseBody = (over: object) => ({
  id: "resp_1",
  object: "response",
  created_at: 1741290958,
  status: "completed",
  error: null,
  incomplete_details: null,
  model: "gpt-5.4-mini-2026-03-01",
  output: [
    { id: "rs_1", type: "reasoning", summary: [] },
    message([{ type: "output_text", text: "Hi there!", annotations: [], logprobs: [] }])
  ],
  usage,
  ...over
})
const created = {
  type: "response.created",
  sequence_number: 0,
  response: { ...responseBody({}), status: "in_progress", output: [], usage: null }
}
const delta = (d: string, n: number) => ({
  type: "response.output_text.delta",
  sequence_number: n,
  item_id: "msg_1",
  output_index: 1,
  content_index: 0,
  delta: d
})
const completed = (over: object = {}) => ({
  type: "response.completed",
  sequence_number: 9,
  response: responseBody(over)
})

describe("OpenAI Responses", () => {
  it.effect("posts input items to /responses with the bearer key, and maps a documented response", () =>
    Effect.gen(function* () {
      const { exit, seen } = yield* call(responses, {
        body: JSON.stringify(responseBody({})),
        headers: { "x-request-id": "req_9", "x-ratelimit-remaining-requests": "99" }
      })
      const r = ok(exit)
      assert.deepStrictEqual(
        [r.text, r.finishReason, r.model, r.requestId, r.rateLimit?.requests?.remaining],
        ["Hi there!", "stop", "gpt-5.4-mini-2026-03-01", "req_9", 99]
      )
      assert.deepStrictEqual(r.usage, { inputTokens: 36, outputTokens: 87, cachedInputTokens: 12 })
      assert.strictEqual(seen[0].url, "https://api.test/v1/responses")
      assert.strictEqual(seen[0].headers.authorization, `Bearer ${secret}`)
      assert.deepStrictEqual(seen[0].body, {
        model: "m-1",
        input: request.messages.map((m) => ({ type: "message", role: m.role, content: m.content })),
        max_output_tokens: 64,
        temperature: 0.5
      })
    })
  )

  it.effect("finish reasons: incomplete, refusal, tool call; status failed is a classified error", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [object, string, string]> = [
        [{ status: "incomplete", incomplete_details: { reason: "max_output_tokens" } }, "length", "Hi there!"],
        [{ status: "incomplete", incomplete_details: { reason: "content_filter" } }, "content_filter", "Hi there!"],
        [
          { output: [message([{ type: "refusal", refusal: "I can't help with that." }])] },
          "content_filter",
          "I can't help with that."
        ],
        [{ output: [{ type: "function_call", name: "f", arguments: "{}", call_id: "c" }] }, "tool_calls", ""]
      ]
      for (const [over, finish, text] of cases) {
        const r = ok((yield* call(responses, { body: JSON.stringify(responseBody(over)) })).exit)
        assert.deepStrictEqual([r.finishReason, r.text], [finish, text])
      }
      const failed = yield* call(responses, {
        body: JSON.stringify(
          responseBody({ status: "failed", error: { code: "rate_limit_exceeded", message: "slow down" } })
        )
      })
      assert.strictEqual(failure(failed.exit)._tag, "RateLimited")
    })
  )

  it.effect("a documented stream: deltas, then Finish with the terminal event's usage; [DONE] after it is fine", () =>
    Effect.gen(function* () {
      const body = named([created, delta("Hi", 1), delta(" there!", 2), completed()]) + "data: [DONE]\n\n"
      const { exit, seen } = yield* streamed(responses, { body })
      const chunks = ok(exit)
      assert.strictEqual(textOf(chunks), "Hi there!")
      const finish = finishOf(chunks)
      assert.deepStrictEqual(
        [finish.finishReason, finish.usage.outputTokens, finish.model],
        ["stop", 87, "gpt-5.4-mini-2026-03-01"]
      )
      assert.strictEqual(seen[0].body.stream, true)
    })
  )

  it.effect("streams: refusal deltas, an incomplete terminal, a cut before the terminal, in-stream errors", () =>
    Effect.gen(function* () {
      const refusal = named([
        created,
        { type: "response.refusal.delta", sequence_number: 1, delta: "No." },
        completed({ output: [message([{ type: "refusal", refusal: "No." }])] })
      ])
      const r = ok((yield* streamed(responses, { body: refusal })).exit)
      assert.deepStrictEqual([textOf(r), finishOf(r).finishReason], ["No.", "content_filter"])

      const incomplete = named([
        created,
        delta("Hi", 1),
        {
          type: "response.incomplete",
          sequence_number: 2,
          response: responseBody({ status: "incomplete", incomplete_details: { reason: "max_output_tokens" } })
        }
      ])
      assert.strictEqual(finishOf(ok((yield* streamed(responses, { body: incomplete })).exit)).finishReason, "length")

      // the body ends after the deltas, without a terminal event: cut
      const cut = failure(
        (yield* streamed(responses, { body: named([created, delta("Hi", 1), delta(" there", 2)]) })).exit
      )
      assert.deepStrictEqual([cut._tag, (cut as LlmError.StreamTruncated).receivedChunks], ["StreamTruncated", 2])

      // captured: an `error` event (nested shape) then `response.failed`, inside HTTP 200
      const nested = {
        type: "error",
        sequence_number: 2,
        error: {
          type: "insufficient_quota",
          code: "insufficient_quota",
          message: "You exceeded your current quota",
          param: null
        }
      }
      const quota = failure(
        (yield* streamed(responses, {
          body: named([
            created,
            nested,
            {
              type: "response.failed",
              response: responseBody({ status: "failed", error: { code: "insufficient_quota", message: "quota" } })
            }
          ])
        })).exit
      )
      assert.deepStrictEqual([quota._tag, (quota as LlmError.QuotaExhausted).status], ["QuotaExhausted", 200])
      // documented: the flat shape
      const flat = {
        type: "error",
        sequence_number: 3,
        code: "rate_limit_exceeded",
        message: "Rate limit reached",
        param: null
      }
      assert.strictEqual(
        failure((yield* streamed(responses, { body: named([created, delta("Hi", 1), flat]) })).exit)._tag,
        "RateLimited"
      )
      // a response.failed alone
      const failed = {
        type: "response.failed",
        sequence_number: 2,
        response: responseBody({ status: "failed", error: { code: "server_error", message: "boom" } })
      }
      assert.strictEqual(
        failure((yield* streamed(responses, { body: named([created, failed]) })).exit)._tag,
        "ServerError"
      )
    })
  )
})

// ---------------------------------------------------------------------------------------------------------
// Azure OpenAI
// ---------------------------------------------------------------------------------------------------------

const filters = { hate: { filtered: false, severity: "safe" }, violence: { filtered: false, severity: "safe" } }
const azureChunk = (delta: object, finish: string | null, extra: object = {}) => ({
  id: "chatcmpl-1",
  object: "chat.completion.chunk",
  created: 1,
  model: "gpt-4o-2024-11-20",
  choices: [{ index: 0, delta, finish_reason: finish, content_filter_results: finish === null ? filters : {} }],
  ...extra
})
const promptFilterChunk = {
  id: "",
  object: "",
  created: 0,
  model: "",
  choices: [],
  prompt_filter_results: [{ prompt_index: 0, content_filter_results: filters }]
}
const azureUsage = {
  id: "chatcmpl-1",
  object: "chat.completion.chunk",
  model: "gpt-4o-2024-11-20",
  choices: [],
  usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 }
}

describe("Azure OpenAI", () => {
  it.effect("the deployment and api-version in the URL, the key in api-key (redacted), not Authorization", () =>
    Effect.gen(function* () {
      const reply = { body: sse([promptFilterChunk, azureChunk({ content: "ok" }, "stop"), "[DONE]"]) }
      const byModel = (yield* streamed(azure(), reply)).seen[0]
      assert.strictEqual(
        byModel.url,
        "https://res.openai.azure.com/openai/deployments/m-1/chat/completions?api-version=2024-10-21"
      )
      assert.strictEqual(byModel.headers["api-key"], secret)
      assert.isUndefined(byModel.headers.authorization)
      assert.include(byModel.redacted, "api-key")
      const fixed = (yield* streamed(azure({ deployment: "eu deploy", apiVersion: "2025-04-01-preview" }), reply))
        .seen[0]
      assert.strictEqual(
        fixed.url,
        "https://res.openai.azure.com/openai/deployments/eu%20deploy/chat/completions?api-version=2025-04-01-preview"
      )
      const entra = (yield* streamed(azure({ authHeader: "bearer" }), reply)).seen[0]
      assert.deepStrictEqual([entra.headers.authorization, entra.headers["api-key"]], [`Bearer ${secret}`, undefined])
    })
  )

  it.effect("a documented stream: the prompt-filter chunk is skipped, usage from the last chunk, then [DONE]", () =>
    Effect.gen(function* () {
      const body = sse([
        promptFilterChunk,
        azureChunk({ role: "assistant", content: "" }, null),
        azureChunk({ content: "Hello" }, null),
        azureChunk({ content: "!" }, null),
        azureChunk({}, "stop"),
        azureUsage,
        "[DONE]"
      ])
      const chunks = ok((yield* streamed(azure(), { body, headers: { "apim-request-id": "apim-1" } })).exit)
      const finish = finishOf(chunks)
      assert.deepStrictEqual(
        [textOf(chunks), finish.finishReason, finish.model, finish.requestId],
        ["Hello!", "stop", "gpt-4o-2024-11-20", "apim-1"]
      )
      assert.deepStrictEqual(finish.usage, { inputTokens: 9, outputTokens: 3 })
    })
  )

  it.effect("filtered output: finish_reason content_filter, whole and streamed", () =>
    Effect.gen(function* () {
      const body = sse([
        promptFilterChunk,
        azureChunk({ content: "Some" }, null),
        azureChunk({}, "content_filter", {
          choices: [
            {
              index: 0,
              delta: {},
              finish_reason: "content_filter",
              content_filter_results: { violence: { filtered: true, severity: "high" } }
            }
          ]
        }),
        "[DONE]"
      ])
      assert.strictEqual(finishOf(ok((yield* streamed(azure(), { body })).exit)).finishReason, "content_filter")
      const whole = {
        id: "c",
        object: "chat.completion",
        model: "gpt-4o",
        prompt_filter_results: [],
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: null },
            finish_reason: "content_filter",
            content_filter_results: { violence: { filtered: true, severity: "high" } }
          }
        ],
        usage: { prompt_tokens: 5, completion_tokens: 0 }
      }
      const r = ok((yield* call(azure(), { body: JSON.stringify(whole) })).exit)
      assert.deepStrictEqual([r.text, r.finishReason], ["", "content_filter"])
    })
  )

  it.effect("errors: a filtered prompt, the rate limit with Azure's retry headers, the key never in the error", () =>
    Effect.gen(function* () {
      const filtered = {
        error: {
          message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
          type: null,
          param: "prompt",
          code: "content_filter",
          status: 400,
          innererror: {
            code: "ResponsibleAIPolicyViolation",
            content_filter_result: { hate: { filtered: true, severity: "high" } }
          }
        }
      }
      assert.strictEqual(
        failure((yield* call(azure(), { status: 400, body: JSON.stringify(filtered) })).exit)._tag,
        "ContentFiltered"
      )
      const limited = {
        error: {
          code: "429",
          message: `Requests to the ChatCompletions_Create Operation have exceeded token rate limit. Please retry after 30 seconds. (key ${secret})`
        }
      }
      const e = failure(
        (yield* call(azure(), {
          status: 429,
          body: JSON.stringify(limited),
          headers: { "x-ms-retry-after-ms": "1250", "x-ratelimit-remaining-tokens": "0" }
        })).exit
      ) as LlmError.RateLimited
      assert.deepStrictEqual(
        [e._tag, e.retryAfterMs, e.limit, e.rateLimit?.tokens?.remaining],
        ["RateLimited", 1250, "tokens", 0]
      )
      assert.notInclude(JSON.stringify(e), secret)
    })
  )
})

// ---------------------------------------------------------------------------------------------------------
// Gemini
// ---------------------------------------------------------------------------------------------------------

const geminiUsage = { promptTokenCount: 9, candidatesTokenCount: 23, totalTokenCount: 217, thoughtsTokenCount: 185 }
const candidate = (parts: ReadonlyArray<object> | undefined, finishReason?: string) => ({
  candidates: [
    {
      ...(parts === undefined ? {} : { content: { parts, role: "model" } }),
      ...(finishReason === undefined ? {} : { finishReason }),
      index: 0
    }
  ],
  usageMetadata: geminiUsage,
  modelVersion: "gemini-3-pro-preview",
  responseId: "r1"
})

describe("Gemini", () => {
  it.effect(
    "generateContent and streamGenerateContent?alt=sse URLs, the key in x-goog-api-key, the documented body",
    () =>
      Effect.gen(function* () {
        const whole = yield* call(gemini, {
          body: JSON.stringify(candidate([{ text: "thinking...", thought: true }, { text: "Three." }], "STOP"))
        })
        const r = ok(whole.exit)
        assert.deepStrictEqual([r.text, r.finishReason, r.model], ["Three.", "stop", "gemini-3-pro-preview"])
        assert.deepStrictEqual(r.usage, { inputTokens: 9, outputTokens: 208 })
        const seen = whole.seen[0]
        assert.strictEqual(seen.url, "https://gl.test/v1beta/models/m-1:generateContent")
        assert.strictEqual(seen.headers["x-goog-api-key"], secret)
        assert.include(seen.redacted, "x-goog-api-key")
        assert.deepStrictEqual(seen.body, {
          contents: [
            { role: "user", parts: [{ text: "Hi" }] },
            { role: "model", parts: [{ text: "Hello." }] },
            { role: "user", parts: [{ text: "Again" }] }
          ],
          systemInstruction: { parts: [{ text: "Be brief." }] },
          generationConfig: { maxOutputTokens: 64, temperature: 0.5 }
        })
        const tuned = yield* streamed(
          gemini,
          { body: sse([candidate([{ text: "x" }], "STOP")]) },
          { ...request, model: "tunedModels/my model" }
        )
        assert.strictEqual(
          tuned.seen[0].url,
          "https://gl.test/v1beta/tunedModels/my%20model:streamGenerateContent?alt=sse"
        )
      })
  )

  it.effect("a documented stream (CRLF separators): text deltas, the finish on the last chunk, its usage", () =>
    Effect.gen(function* () {
      const body = sse(
        [
          candidate([{ text: "There are **3**" }]),
          candidate([{ text: ' "r"s in strawberry.' }]),
          candidate([{ text: "", thoughtSignature: "EqsF" }], "STOP")
        ],
        "\r\n\r\n"
      )
      const chunks = ok((yield* streamed(gemini, { body })).exit)
      const finish = finishOf(chunks)
      assert.deepStrictEqual(
        [textOf(chunks), finish.finishReason, finish.usage.outputTokens],
        ['There are **3** "r"s in strawberry.', "stop", 208]
      )
    })
  )

  it.effect("safety blocks and other finish reasons, whole and streamed", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, LlmResponse.FinishReason]> = [
        ["SAFETY", "content_filter"],
        ["RECITATION", "content_filter"],
        ["PROHIBITED_CONTENT", "content_filter"],
        ["SPII", "content_filter"],
        ["BLOCKLIST", "content_filter"],
        ["MAX_TOKENS", "length"],
        ["OTHER", "unknown"],
        ["MALFORMED_FUNCTION_CALL", "unknown"]
      ]
      for (const [reason, mapped] of cases) {
        assert.strictEqual(
          ok((yield* call(gemini, { body: JSON.stringify(candidate(undefined, reason)) })).exit).finishReason,
          mapped,
          reason
        )
        const chunks = ok(
          (yield* streamed(gemini, { body: sse([candidate([{ text: "a" }]), candidate(undefined, reason)]) })).exit
        )
        assert.strictEqual(finishOf(chunks).finishReason, mapped, reason)
      }
      const call_ = ok(
        (yield* call(gemini, { body: JSON.stringify(candidate([{ functionCall: { name: "f", args: {} } }], "STOP")) }))
          .exit
      )
      assert.strictEqual(call_.finishReason, "tool_calls")
      // a blocked prompt: no candidates, promptFeedback.blockReason
      const blocked = {
        promptFeedback: { blockReason: "SAFETY", safetyRatings: [] },
        usageMetadata: { promptTokenCount: 7, totalTokenCount: 7 },
        modelVersion: "gemini-2.5-flash"
      }
      const r = ok((yield* call(gemini, { body: JSON.stringify(blocked) })).exit)
      assert.deepStrictEqual([r.text, r.finishReason, r.usage.inputTokens], ["", "content_filter", 7])
      assert.strictEqual(
        finishOf(ok((yield* streamed(gemini, { body: sse([blocked]) })).exit)).finishReason,
        "content_filter"
      )
    })
  )

  it.effect("a stream without a finish reason is cut; an error event mid-stream and 429 RetryInfo are classified", () =>
    Effect.gen(function* () {
      const cut = failure(
        (yield* streamed(gemini, {
          body: sse([candidate([{ text: "a" }]), candidate([{ text: "b" }], "FINISH_REASON_UNSPECIFIED")])
        })).exit
      )
      assert.deepStrictEqual([cut._tag, (cut as LlmError.StreamTruncated).receivedChunks], ["StreamTruncated", 2])
      const midStream = sse([
        candidate([{ text: "a" }]),
        { error: { code: 503, message: "The model is overloaded.", status: "UNAVAILABLE" } }
      ])
      const over = failure((yield* streamed(gemini, { body: midStream })).exit)
      assert.deepStrictEqual([over._tag, (over as LlmError.Overloaded).status], ["Overloaded", 200])
      const limited = {
        error: {
          code: 429,
          message: "You exceeded your current quota, please check your plan.",
          status: "RESOURCE_EXHAUSTED",
          details: [
            {
              "@type": "type.googleapis.com/google.rpc.QuotaFailure",
              violations: [{ quotaId: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier" }]
            },
            { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "34.4s" }
          ]
        }
      }
      for (const run of [call, streamed]) {
        const e = failure(
          (yield* run(gemini, { status: 429, body: JSON.stringify(limited) })).exit
        ) as LlmError.RateLimited
        assert.deepStrictEqual([e._tag, e.retryAfterMs, e.rateLimit?.retryAfterMs], ["RateLimited", 34_400, 34_400])
      }
    })
  )
})

// ---------------------------------------------------------------------------------------------------------
// configuration
// ---------------------------------------------------------------------------------------------------------

describe("configuration", () => {
  const env = (vars: Record<string, string>) =>
    Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown(vars))
  const client = replayClient({ body: JSON.stringify(candidate([{ text: "ok" }], "STOP")) }, [])
  const withClient = Effect.provideService(HttpClient.HttpClient, client)

  it.effect("keys and endpoints come from GEMINI_* / AZURE_OPENAI_* / OPENAI_* when not passed", () =>
    Effect.gen(function* () {
      const seen: Array<Seen> = []
      const recording = Effect.provideService(
        HttpClient.HttpClient,
        replayClient({ body: JSON.stringify(candidate([{ text: "ok" }], "STOP")) }, seen)
      )
      const vars = {
        GEMINI_API_KEY: secret,
        AZURE_OPENAI_API_KEY: secret,
        AZURE_OPENAI_ENDPOINT: "https://eu.openai.azure.com",
        OPENAI_API_KEY: secret
      }
      yield* Effect.exit((yield* GeminiProvider.make().pipe(env(vars), recording)).complete(request))
      yield* Effect.exit((yield* AzureOpenAiProvider.make().pipe(env(vars), recording)).complete(request))
      yield* Effect.exit((yield* OpenAiResponsesProvider.make().pipe(env(vars), recording)).complete(request))
      assert.deepStrictEqual(
        seen.map((r) => r.url),
        [
          "https://generativelanguage.googleapis.com/v1beta/models/m-1:generateContent",
          "https://eu.openai.azure.com/openai/deployments/m-1/chat/completions?api-version=2024-10-21",
          "https://api.openai.com/v1/responses"
        ]
      )
    })
  )

  it.effect("a missing key or Azure endpoint is a ConfigError; invalid options a SchemaError naming the field", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* Effect.flip(GeminiProvider.make().pipe(env({}), withClient)))._tag, "ConfigError")
      const noEndpoint = yield* Effect.flip(AzureOpenAiProvider.make({ apiKey }).pipe(env({}), withClient))
      assert.strictEqual(noEndpoint._tag, "ConfigError")
      const bad = yield* Effect.flip(AzureOpenAiProvider.make({ apiKey, endpoint: "not a url" }).pipe(withClient))
      assert.include(bad.message, "endpoint")
      const caps = yield* Effect.flip(GeminiProvider.make({ apiKey, maxEventBytes: 0 }).pipe(withClient))
      assert.include(caps.message, "maxEventBytes")
      const plain = yield* Effect.flip(
        OpenAiResponsesProvider.make({ apiKey: secret as unknown as Redacted.Redacted<string> }).pipe(withClient)
      )
      assert.notInclude(plain.message, secret)
    })
  )
})

// ---------------------------------------------------------------------------------------------------------
// fuzzing
// ---------------------------------------------------------------------------------------------------------

const absurd = fc.oneof(
  fc.constantFrom(-1, Number.MAX_VALUE, 1e308, 0, 2 ** 53 + 1, "12", "NaN", null, true, "", "STOP", "completed"),
  fc.double(),
  fc.string({ maxLength: 8 }),
  fc.constant([]),
  fc.constant({})
)
/** Replaces some leaves of a documented payload with absurd values. */
const mutate = (value: unknown, picks: ReadonlyArray<unknown>, at: { i: number }): unknown => {
  if (Array.isArray(value)) return value.map((v) => mutate(v, picks, at))
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mutate(v, picks, at)]))
  }
  const pick = picks[at.i++ % Math.max(1, picks.length)]
  return pick === undefined || at.i % 3 !== 0 ? value : pick
}
const garbageFrame = fc.constantFrom(
  'data: {"choices": [ }\n\n',
  "data: not json\n\n",
  ": keep-alive\n\n",
  "data: []\n\n",
  "data: 42\n\n"
)

const formats: ReadonlyArray<
  readonly [string, Maker, ReadonlyArray<unknown>, (frames: ReadonlyArray<unknown>) => string]
> = [
  [
    "responses",
    responses,
    [created, delta("Hi", 1), delta(" there", 2), completed()],
    (f) => named(f as ReadonlyArray<Event>)
  ],
  [
    "azure",
    azure(),
    [promptFilterChunk, azureChunk({ content: "Hi" }, null), azureChunk({}, "stop"), azureUsage, "[DONE]"],
    (f) => sse(f)
  ],
  ["gemini", gemini, [candidate([{ text: "Hi" }]), candidate([{ text: " there" }], "STOP")], (f) => sse(f, "\r\n\r\n")]
]

const isProviderError = Schema.is(Errors.ProviderError)

describe("fuzzed streams", () => {
  for (const [name, make, frames, render] of formats) {
    it(`${name}: absurd values and malformed events end in one Finish with sane usage, or a typed error`, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(absurd, { maxLength: 40 }),
          fc.array(fc.tuple(fc.nat(frames.length), garbageFrame), { maxLength: 4 }),
          fc.nat(frames.length),
          async (picks, garbage, keep) => {
            const mutated = frames
              .slice(0, keep + 1)
              .map((f) => (typeof f === "string" ? f : mutate(f, picks, { i: 0 })))
            let body = render(mutated)
            for (const [, g] of garbage) body = g + body
            const exit = await Effect.runPromise(Effect.map(streamed(make, { body }), (r) => r.exit))
            if (Exit.isSuccess(exit)) {
              const chunks = exit.value
              const last = chunks[chunks.length - 1]
              return (
                last?._tag === "Finish" &&
                chunks.filter((c) => c._tag === "Finish").length === 1 &&
                [last.usage.inputTokens, last.usage.outputTokens].every((n) => Number.isFinite(n) && n >= 0)
              )
            }
            const error = Exit.findErrorOption(exit)
            // every failure is a typed provider error, never a defect
            return error._tag === "Some" && isProviderError(error.value)
          }
        ),
        { numRuns: 150 }
      )
    })
  }
})

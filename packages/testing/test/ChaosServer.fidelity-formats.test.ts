/**
 * Fidelity of the newer wire formats: the official `openai` client (Responses API, and its `AzureOpenAI`
 * client) and Google's `@google/genai` client, retries off, against the chaos server. They must parse its
 * answers and streams, and raise the error classes, statuses and details the real APIs cause.
 */
import { assert, describe, layer } from "@effect/vitest"
import { ApiError, GoogleGenAI } from "@google/genai"
import { Effect } from "effect"
import OpenAI, { AzureOpenAI } from "openai"
import { ChaosServer } from "../src/index.ts"
import { ChaosLive, countRequests, type ErrorClass, key, rejection, text } from "./support/fidelity.ts"

const refusal = "I'm sorry, but I can't help with that request."

const input = [{ role: "user" as const, content: "Please answer with the sentence you always say." }]

/** Reads a stream to its end. */
const drain = async (stream: AsyncIterable<unknown>): Promise<void> => {
  for await (const _ of stream) {
    // drain
  }
}

const openai = (fault?: ChaosServer.Fault) =>
  Effect.map(
    ChaosServer.ChaosServer,
    (chaos) => new OpenAI({ apiKey: key, baseURL: chaos.openAiBaseUrl(fault), maxRetries: 0, timeout: 5_000 })
  )

const azure = (fault?: ChaosServer.Fault) =>
  Effect.map(
    ChaosServer.ChaosServer,
    (chaos) =>
      new AzureOpenAI({
        apiKey: key,
        endpoint: chaos.azureEndpoint(fault),
        apiVersion: "2024-10-21",
        deployment: "gpt-4o-eu",
        maxRetries: 0,
        timeout: 5_000
      })
  )

const gemini = (fault?: ChaosServer.Fault) =>
  Effect.map(
    ChaosServer.ChaosServer,
    (chaos) =>
      new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: chaos.geminiBaseUrl(fault, { version: false }) } })
  )

const geminiRequest = { model: "gemini-2.5-flash", contents: "Please answer with the sentence you always say." }

layer(ChaosLive, { excludeTestServices: true })("ChaosServer fidelity: Responses, Azure, Gemini", (it) => {
  describe("openai SDK, Responses API", () => {
    it.effect("parses a response: output_text, status, usage with cached tokens, request id", () =>
      Effect.gen(function* () {
        const client = yield* openai()
        const { data, response } = yield* Effect.promise(() =>
          client.responses.create({ model: "gpt-5.4-mini", input }).withResponse()
        )
        assert.strictEqual(data.object, "response")
        assert.strictEqual(data.status, "completed")
        assert.strictEqual(data.output_text, text)
        assert.strictEqual(data.usage?.input_tokens_details.cached_tokens, 2)
        assert.strictEqual(data.usage?.output_tokens, 6)
        assert.match(response.headers.get("x-request-id") ?? "", /^req_chaos_/)
      })
    )

    it.effect("streams named events from response.created to response.completed; the helper accumulates", () =>
      Effect.gen(function* () {
        const client = yield* openai()
        const types = yield* Effect.promise(async () => {
          const stream = await client.responses.create({ model: "gpt-5.4-mini", input, stream: true })
          const seen: Array<string> = []
          for await (const event of stream) seen.push(event.type)
          return seen
        })
        assert.strictEqual(types[0], "response.created")
        assert.strictEqual(types[types.length - 1], "response.completed")
        assert.strictEqual(types.filter((t) => t === "response.output_text.delta").length, 6)
        const final = yield* Effect.promise(() =>
          client.responses.stream({ model: "gpt-5.4-mini", input }).finalResponse()
        )
        assert.strictEqual(final.output_text, text)
        assert.strictEqual(final.usage?.output_tokens, 6)
      })
    )

    it.effect("max_output_tokens cuts the answer: status incomplete, reason max_output_tokens", () =>
      Effect.gen(function* () {
        const client = yield* openai()
        const data = yield* Effect.promise(() =>
          client.responses.create({ model: "gpt-5.4-mini", input, max_output_tokens: 3 })
        )
        assert.strictEqual(data.status, "incomplete")
        assert.strictEqual(data.incomplete_details?.reason, "max_output_tokens")
      })
    )

    it.effect("refusal: a refusal content part, whole and streamed", () =>
      Effect.gen(function* () {
        const client = yield* openai("refusal")
        const whole = yield* Effect.promise(() => client.responses.create({ model: "gpt-5.4-mini", input }))
        const message = whole.output[0]
        const part = message.type === "message" ? message.content[0] : undefined
        assert.deepStrictEqual(part, { type: "refusal", refusal })
        const final = yield* Effect.promise(() =>
          client.responses.stream({ model: "gpt-5.4-mini", input }).finalResponse()
        )
        assert.strictEqual(final.output_text, "")
      })
    )

    it.effect("an in-stream error: the SDK hands over `error` then `response.failed` events (no throw)", () =>
      Effect.gen(function* () {
        const client = yield* openai("stream-error")
        const events = yield* Effect.promise(async () => {
          const stream = await client.responses.create({ model: "gpt-5.4-mini", input, stream: true })
          const seen: Array<OpenAI.Responses.ResponseStreamEvent> = []
          for await (const event of stream) seen.push(event)
          return seen
        })
        const [error, failed] = events.slice(-2)
        assert.strictEqual(error.type, "error")
        assert.strictEqual(error.type === "error" ? error.code : undefined, "server_error")
        assert.strictEqual(failed.type === "response.failed" ? failed.response.error?.code : undefined, "server_error")
        assert.notInclude(
          events.map((e) => e.type),
          "response.completed"
        )
      })
    )

    const cases: ReadonlyArray<readonly [ChaosServer.Fault, ErrorClass, number]> = [
      ["rate-limit", OpenAI.RateLimitError, 429],
      ["insufficient-quota", OpenAI.RateLimitError, 429],
      ["authentication", OpenAI.AuthenticationError, 401],
      ["context-length", OpenAI.BadRequestError, 400]
    ]
    for (const [fault, errorClass, status] of cases) {
      it.effect(`${fault} -> ${errorClass.name} ${status}, one request`, () =>
        Effect.gen(function* () {
          const client = yield* openai(fault)
          const [error, requests] = yield* countRequests(
            rejection(() => client.responses.create({ model: "gpt-5.4-mini", input }))
          )
          assert.instanceOf(error, errorClass)
          assert.strictEqual((error as InstanceType<typeof OpenAI.APIError>).status, status)
          assert.strictEqual(requests, 1)
        })
      )
    }
  })

  describe("openai SDK, AzureOpenAI client", () => {
    it.effect("parses a completion: text, prompt filter results, apim-request-id", () =>
      Effect.gen(function* () {
        const client = yield* azure()
        const { data, response } = yield* Effect.promise(() =>
          client.chat.completions.create({ model: "gpt-4o-eu", messages: input }).withResponse()
        )
        assert.strictEqual(data.choices[0].message.content, text)
        assert.strictEqual(data.choices[0].finish_reason, "stop")
        assert.isArray((data as unknown as { prompt_filter_results: unknown }).prompt_filter_results)
        assert.strictEqual(data.usage?.completion_tokens, 6)
        assert.match(response.headers.get("apim-request-id") ?? "", /^req_chaos_/)
        const chaos = yield* ChaosServer.ChaosServer
        const last = (yield* chaos.requests).at(-1)
        assert.strictEqual(last?.wire, "azure-openai")
      })
    )

    it.effect("streams past the prompt-filter chunk to a finish reason and usage", () =>
      Effect.gen(function* () {
        const client = yield* azure()
        const final = yield* Effect.promise(() =>
          client.chat.completions
            .stream({ model: "gpt-4o-eu", messages: input, stream_options: { include_usage: true } })
            .finalChatCompletion()
        )
        assert.strictEqual(final.choices[0].message.content, text)
        assert.strictEqual(final.choices[0].finish_reason, "stop")
        assert.strictEqual(final.usage?.completion_tokens, 6)
      })
    )

    it.effect("refusal: filtered output ends with finish_reason content_filter and no text", () =>
      Effect.gen(function* () {
        const client = yield* azure("refusal")
        const whole = yield* Effect.promise(() =>
          client.chat.completions.create({ model: "gpt-4o-eu", messages: input })
        )
        assert.strictEqual(whole.choices[0].finish_reason, "content_filter")
        assert.strictEqual(whole.choices[0].message.content, null)
      })
    )

    it.effect("429s carry retry-after and retry-after-ms; the capacity 429 says high demand", () =>
      Effect.gen(function* () {
        const limitedClient = yield* azure("rate-limit")
        const busyClient = yield* azure("overloaded")
        const limited = (yield* rejection(() =>
          limitedClient.chat.completions.create({ model: "gpt-4o-eu", messages: input })
        )) as InstanceType<typeof OpenAI.RateLimitError>
        assert.instanceOf(limited, OpenAI.RateLimitError)
        assert.strictEqual(limited.headers?.get("retry-after-ms"), "2000")
        assert.strictEqual(limited.code, "429")
        const busy = (yield* rejection(() =>
          busyClient.chat.completions.create({ model: "gpt-4o-eu", messages: input })
        )) as InstanceType<typeof OpenAI.RateLimitError>
        assert.instanceOf(busy, OpenAI.RateLimitError)
        assert.match(busy.message, /high demand/)
      })
    )

    const cases: ReadonlyArray<readonly [ChaosServer.Fault, ErrorClass, number, string]> = [
      ["authentication", OpenAI.AuthenticationError, 401, "401"],
      ["model-not-found", OpenAI.NotFoundError, 404, "DeploymentNotFound"],
      ["context-length", OpenAI.BadRequestError, 400, "context_length_exceeded"]
    ]
    for (const [fault, errorClass, status, code] of cases) {
      it.effect(`${fault} -> ${errorClass.name} ${status} ${code}`, () =>
        Effect.gen(function* () {
          const client = yield* azure(fault)
          const error = yield* rejection(() => client.chat.completions.create({ model: "gpt-4o-eu", messages: input }))
          assert.instanceOf(error, errorClass)
          assert.strictEqual((error as InstanceType<typeof OpenAI.APIError>).status, status)
          assert.strictEqual((error as InstanceType<typeof OpenAI.APIError>).code, code)
        })
      )
    }
  })

  describe("@google/genai", () => {
    it.effect("parses generateContent: text, finish reason, usage with cached tokens", () =>
      Effect.gen(function* () {
        const ai = yield* gemini()
        const response = yield* Effect.promise(() => ai.models.generateContent(geminiRequest))
        assert.strictEqual(response.text, text)
        assert.strictEqual(response.candidates?.[0].finishReason, "STOP")
        assert.strictEqual(response.usageMetadata?.candidatesTokenCount, 6)
        assert.strictEqual(response.usageMetadata?.cachedContentTokenCount, 2)
        const chaos = yield* ChaosServer.ChaosServer
        const last = (yield* chaos.requests).at(-1)
        assert.deepStrictEqual([last?.wire, last?.model, last?.stream], ["gemini", "gemini-2.5-flash", false])
      })
    )

    it.effect("parses streamGenerateContent (SSE): deltas, then the finish reason and usage", () =>
      Effect.gen(function* () {
        const ai = yield* gemini()
        const result = yield* Effect.promise(async () => {
          let content = ""
          let finish: string | undefined
          let output: number | undefined
          for await (const chunk of await ai.models.generateContentStream(geminiRequest)) {
            content += chunk.text ?? ""
            finish = chunk.candidates?.[0].finishReason ?? finish
            output = chunk.usageMetadata?.candidatesTokenCount ?? output
          }
          return { content, finish, output }
        })
        assert.deepStrictEqual(result, { content: text, finish: "STOP", output: 6 })
      })
    )

    it.effect("refusal: a SAFETY finish with no text", () =>
      Effect.gen(function* () {
        const ai = yield* gemini("refusal")
        const response = yield* Effect.promise(() => ai.models.generateContent(geminiRequest))
        assert.strictEqual(response.candidates?.[0].finishReason, "SAFETY")
        assert.isUndefined(response.text)
      })
    )

    it.effect("an in-stream error event raises ApiError while iterating", () =>
      Effect.gen(function* () {
        const ai = yield* gemini("stream-error")
        const error = yield* rejection(async () => drain(await ai.models.generateContentStream(geminiRequest)))
        assert.instanceOf(error, ApiError)
        assert.strictEqual((error as ApiError).status, 503)
      })
    )

    for (const [fault, status, needle] of [
      ["rate-limit", 429, "google.rpc.RetryInfo"],
      ["insufficient-quota", 429, "PerDay"],
      ["overloaded", 503, "UNAVAILABLE"],
      ["authentication", 400, "API_KEY_INVALID"],
      ["model-not-found", 404, "NOT_FOUND"],
      ["context-length", 400, "input token count"]
    ] as const) {
      it.effect(`${fault} -> ApiError ${status}, one request (retries off by default)`, () =>
        Effect.gen(function* () {
          const ai = yield* gemini(fault)
          const [error, requests] = yield* countRequests(rejection(() => ai.models.generateContent(geminiRequest)))
          assert.instanceOf(error, ApiError)
          assert.strictEqual((error as ApiError).status, status)
          assert.include((error as ApiError).message, needle)
          assert.strictEqual(requests, 1)
        })
      )
    }
  })
})

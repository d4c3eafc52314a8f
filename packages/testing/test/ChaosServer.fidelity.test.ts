/**
 * Fidelity: the official `openai` and `@anthropic-ai/sdk` clients (retries off) against the chaos server.
 * They must parse its answers and streams, and raise the same error classes, with the same status and
 * headers, that the real APIs cause. This is the proof that the fake is faithful.
 */
import Anthropic from "@anthropic-ai/sdk"
import { assert, describe, layer } from "@effect/vitest"
import { Effect } from "effect"
import OpenAI from "openai"
import { ChaosServer } from "../src/index.ts"
import { ChaosLive, countRequests, type ErrorClass, key, rejection, text } from "./support/fidelity.ts"

const messages = [{ role: "user" as const, content: "Please answer with the sentence you always say." }]

const openai = (fault?: ChaosServer.Fault) =>
  Effect.map(
    ChaosServer.ChaosServer,
    (chaos) => new OpenAI({ apiKey: key, baseURL: chaos.openAiBaseUrl(fault), maxRetries: 0, timeout: 5_000 })
  )

const anthropic = (fault?: ChaosServer.Fault) =>
  Effect.map(
    ChaosServer.ChaosServer,
    (chaos) => new Anthropic({ apiKey: key, baseURL: chaos.anthropicBaseUrl(fault), maxRetries: 0, timeout: 5_000 })
  )

layer(ChaosLive, { excludeTestServices: true })("ChaosServer fidelity", (it) => {
  describe("openai SDK", () => {
    it.effect("parses a completion: text, usage with cached tokens, request id", () =>
      Effect.gen(function* () {
        const client = yield* openai()
        const { data, response } = yield* Effect.promise(() =>
          client.chat.completions.create({ model: "gpt-5.4-mini", messages }).withResponse()
        )
        assert.strictEqual(data.object, "chat.completion")
        assert.strictEqual(data.choices[0].message.content, text)
        assert.strictEqual(data.choices[0].finish_reason, "stop")
        assert.strictEqual(data.usage?.prompt_tokens_details?.cached_tokens, 2)
        assert.strictEqual(data.usage?.completion_tokens, 6)
        assert.match(response.headers.get("x-request-id") ?? "", /^req_chaos_/)
      })
    )

    it.effect("parses a stream with include_usage: deltas, a finish reason, then a usage chunk", () =>
      Effect.gen(function* () {
        const client = yield* openai()
        const result = yield* Effect.promise(async () => {
          const stream = await client.chat.completions.create({
            model: "gpt-5.4-mini",
            messages,
            stream: true,
            stream_options: { include_usage: true }
          })
          let content = ""
          let finish: string | null = null
          let usage: OpenAI.CompletionUsage | null | undefined
          for await (const chunk of stream) {
            content += chunk.choices[0]?.delta.content ?? ""
            finish = chunk.choices[0]?.finish_reason ?? finish
            if (chunk.usage) usage = chunk.usage
          }
          return { content, finish, usage }
        })
        assert.strictEqual(result.content, text)
        assert.strictEqual(result.finish, "stop")
        assert.strictEqual(result.usage?.completion_tokens, 6)
      })
    )

    it.effect("the stream helper accumulates the same final message", () =>
      Effect.gen(function* () {
        const client = yield* openai()
        const final = yield* Effect.promise(() =>
          client.chat.completions.stream({ model: "gpt-5.4-mini", messages }).finalChatCompletion()
        )
        assert.strictEqual(final.choices[0].message.content, text)
      })
    )

    const cases: ReadonlyArray<readonly [ChaosServer.Fault, ErrorClass, number, string | undefined]> = [
      ["rate-limit", OpenAI.RateLimitError, 429, "rate_limit_exceeded"],
      ["insufficient-quota", OpenAI.RateLimitError, 429, "insufficient_quota"],
      ["overloaded", OpenAI.InternalServerError, 503, undefined],
      ["server-error", OpenAI.InternalServerError, 500, undefined],
      ["bad-gateway", OpenAI.InternalServerError, 502, undefined],
      ["service-unavailable", OpenAI.InternalServerError, 503, undefined],
      ["authentication", OpenAI.AuthenticationError, 401, "invalid_api_key"],
      ["permission-denied", OpenAI.PermissionDeniedError, 403, undefined],
      ["model-not-found", OpenAI.NotFoundError, 404, "model_not_found"],
      ["bad-request", OpenAI.BadRequestError, 400, "invalid_value"],
      ["context-length", OpenAI.BadRequestError, 400, "context_length_exceeded"],
      ["content-filter", OpenAI.BadRequestError, 400, "invalid_prompt"],
      ["rate-limit-no-retry-after", OpenAI.RateLimitError, 429, "rate_limit_exceeded"]
    ]
    for (const [fault, errorClass, status, code] of cases) {
      it.effect(`${fault} -> ${errorClass.name} ${status}, one request (retries off)`, () =>
        Effect.gen(function* () {
          const client = yield* openai(fault)
          const [error, requests] = yield* countRequests(
            rejection(() => client.chat.completions.create({ model: "gpt-5.4-mini", messages }))
          )
          assert.instanceOf(error, errorClass)
          const e = error as InstanceType<typeof OpenAI.APIError>
          assert.strictEqual(e.status, status)
          if (code !== undefined) assert.strictEqual(e.code, code)
          assert.strictEqual(requests, 1)
        })
      )
    }

    it.effect("a 429 carries the rate-limit headers the SDK would honour", () =>
      Effect.gen(function* () {
        const client = yield* openai("rate-limit")
        const e = (yield* rejection(() =>
          client.chat.completions.create({ model: "gpt-5.4-mini", messages })
        )) as InstanceType<typeof OpenAI.RateLimitError>
        assert.strictEqual(e.headers?.get("retry-after"), "2")
        assert.strictEqual(e.headers?.get("x-ratelimit-remaining-requests"), "0")
        assert.strictEqual(e.headers?.get("x-ratelimit-reset-requests"), "2s")
        assert.match(e.requestID ?? "", /^req_chaos_/)
        assert.strictEqual(e.type, "requests")
      })
    )

    it.effect("an in-stream error chunk raises APIError while iterating", () =>
      Effect.gen(function* () {
        const client = yield* openai("stream-error")
        const error = yield* rejection(async () => {
          const stream = await client.chat.completions.create({ model: "gpt-5.4-mini", messages, stream: true })
          for await (const _ of stream) {
            // drain
          }
        })
        assert.instanceOf(error, OpenAI.APIError)
        assert.strictEqual((error as InstanceType<typeof OpenAI.APIError>).type, "server_error")
      })
    )

    it.effect("a reset connection, or one that never answers, raises APIConnectionError", () =>
      Effect.gen(function* () {
        for (const fault of ["connection-reset", "no-response"] as const) {
          const client = yield* openai(fault)
          const error = yield* rejection(() => client.chat.completions.create({ model: "gpt-5.4-mini", messages }))
          assert.instanceOf(error, OpenAI.APIConnectionError, fault)
        }
      })
    )

    it.effect("a truncated stream ends silently in the SDK (no [DONE] check): why our providers check it", () =>
      Effect.gen(function* () {
        const client = yield* openai("truncated-stream")
        const content = yield* Effect.promise(async () => {
          const stream = await client.chat.completions.create({ model: "gpt-5.4-mini", messages, stream: true })
          let content = ""
          for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? ""
          return content
        })
        assert.isAbove(content.length, 0)
        assert.isBelow(content.length, text.length)
      })
    )
  })

  describe("openai SDK: faults our providers survive", () => {
    const refusal = "I'm sorry, but I can't help with that request."

    it.effect("refusal: content null and message.refusal, whole and accumulated from delta.refusal", () =>
      Effect.gen(function* () {
        const client = yield* openai("refusal")
        const whole = yield* Effect.promise(() => client.chat.completions.create({ model: "gpt-5.4-mini", messages }))
        assert.strictEqual(whole.choices[0].message.content, null)
        assert.strictEqual(whole.choices[0].message.refusal, refusal)
        assert.strictEqual(whole.choices[0].finish_reason, "stop")
        const streamed = yield* Effect.promise(() =>
          client.chat.completions.stream({ model: "gpt-5.4-mini", messages }).finalChatCompletion()
        )
        assert.strictEqual(streamed.choices[0].message.refusal, refusal)
      })
    )

    it.effect("no-end-marker: the stream helper completes with the finish reason and usage", () =>
      Effect.gen(function* () {
        const client = yield* openai("no-end-marker")
        const final = yield* Effect.promise(() =>
          client.chat.completions
            .stream({ model: "gpt-5.4-mini", messages, stream_options: { include_usage: true } })
            .finalChatCompletion()
        )
        assert.strictEqual(final.choices[0].message.content, text)
        assert.strictEqual(final.choices[0].finish_reason, "stop")
        assert.strictEqual(final.usage?.completion_tokens, 6)
        const raw = yield* Effect.promise(() =>
          client.chat.completions
            .create({ model: "gpt-5.4-mini", messages, stream: true, stream_options: { include_usage: true } })
            .asResponse()
            .then((response) => response.text())
        )
        assert.include(raw, `"finish_reason":"stop"`)
        assert.notInclude(raw, "[DONE]")
      })
    )

    it.effect("malformed-json: one unparseable event makes the SDK throw a SyntaxError mid-stream", () =>
      Effect.gen(function* () {
        const chaos = yield* ChaosServer.ChaosServer
        const client = new OpenAI({
          apiKey: key,
          baseURL: chaos.openAiBaseUrl("malformed-json"),
          maxRetries: 0,
          logLevel: "off"
        })
        const error = yield* rejection(async () => {
          const stream = await client.chat.completions.create({ model: "gpt-5.4-mini", messages, stream: true })
          for await (const _ of stream) {
            // drain
          }
        })
        assert.instanceOf(error, SyntaxError)
      })
    )
  })

  describe("@anthropic-ai/sdk", () => {
    it.effect("parses a message: text, usage with cache reads, request id", () =>
      Effect.gen(function* () {
        const client = yield* anthropic()
        const { data, response } = yield* Effect.promise(() =>
          client.messages.create({ model: "claude-sonnet-4-6", max_tokens: 64, messages }).withResponse()
        )
        const block = data.content[0]
        assert.strictEqual(block.type === "text" ? block.text : "", text)
        assert.strictEqual(data.stop_reason, "end_turn")
        assert.strictEqual(data.usage.cache_read_input_tokens, 2)
        assert.strictEqual(data.usage.output_tokens, 6)
        assert.match(response.headers.get("request-id") ?? "", /^req_chaos_/)
      })
    )

    it.effect("parses a raw event stream from message_start to message_stop", () =>
      Effect.gen(function* () {
        const client = yield* anthropic()
        const events = yield* Effect.promise(async () => {
          const stream = await client.messages.create({
            model: "claude-sonnet-4-6",
            max_tokens: 64,
            messages,
            stream: true
          })
          const seen: Array<string> = []
          let content = ""
          for await (const event of stream) {
            seen.push(event.type)
            if (event.type === "content_block_delta" && event.delta.type === "text_delta") content += event.delta.text
          }
          return { seen, content }
        })
        assert.strictEqual(events.content, text)
        assert.strictEqual(events.seen[0], "message_start")
        assert.strictEqual(events.seen[events.seen.length - 1], "message_stop")
      })
    )

    it.effect("the MessageStream helper accumulates the final message", () =>
      Effect.gen(function* () {
        const client = yield* anthropic()
        const final = yield* Effect.promise(() =>
          client.messages.stream({ model: "claude-sonnet-4-6", max_tokens: 64, messages }).finalMessage()
        )
        const block = final.content[0]
        assert.strictEqual(block.type === "text" ? block.text : "", text)
        assert.strictEqual(final.usage.output_tokens, 6)
        assert.strictEqual(final.stop_reason, "end_turn")
      })
    )

    const cases: ReadonlyArray<readonly [ChaosServer.Fault, ErrorClass, number, string]> = [
      ["rate-limit", Anthropic.RateLimitError, 429, "rate_limit_error"],
      ["insufficient-quota", Anthropic.RateLimitError, 429, "rate_limit_error"],
      ["overloaded", Anthropic.OverloadedError, 529, "overloaded_error"],
      ["server-error", Anthropic.InternalServerError, 500, "api_error"],
      ["authentication", Anthropic.AuthenticationError, 401, "authentication_error"],
      ["permission-denied", Anthropic.PermissionDeniedError, 403, "permission_error"],
      ["model-not-found", Anthropic.NotFoundError, 404, "not_found_error"],
      ["bad-request", Anthropic.BadRequestError, 400, "invalid_request_error"],
      ["context-length", Anthropic.BadRequestError, 400, "invalid_request_error"],
      ["content-filter", Anthropic.BadRequestError, 400, "invalid_request_error"],
      ["rate-limit-no-retry-after", Anthropic.RateLimitError, 429, "rate_limit_error"]
    ]
    for (const [fault, errorClass, status, type] of cases) {
      it.effect(`${fault} -> ${errorClass.name} ${status}, one request (retries off)`, () =>
        Effect.gen(function* () {
          const client = yield* anthropic(fault)
          const [error, requests] = yield* countRequests(
            rejection(() => client.messages.create({ model: "claude-sonnet-4-6", max_tokens: 64, messages }))
          )
          assert.instanceOf(error, errorClass)
          const e = error as InstanceType<typeof Anthropic.APIError>
          assert.strictEqual(e.status, status)
          assert.strictEqual(e.type, type)
          assert.match(e.requestID ?? "", /^req_chaos_/)
          assert.strictEqual(requests, 1)
        })
      )
    }

    it.effect("HTML proxy pages raise the 5xx classes (502 InternalServerError, 503 ServiceUnavailableError)", () =>
      Effect.gen(function* () {
        const gateway = yield* anthropic("bad-gateway")
        const e502 = yield* rejection(() => gateway.messages.create({ model: "m", max_tokens: 8, messages }))
        assert.instanceOf(e502, Anthropic.InternalServerError)
        assert.strictEqual((e502 as InstanceType<typeof Anthropic.APIError>).status, 502)
        const unavailable = yield* anthropic("service-unavailable")
        const e503 = yield* rejection(() => unavailable.messages.create({ model: "m", max_tokens: 8, messages }))
        assert.instanceOf(e503, Anthropic.ServiceUnavailableError)
      })
    )

    it.effect("a 429 carries retry-after and the anthropic-ratelimit headers; quota exhaustion its error code", () =>
      Effect.gen(function* () {
        const client = yield* anthropic("rate-limit")
        const e = (yield* rejection(() =>
          client.messages.create({ model: "claude-sonnet-4-6", max_tokens: 64, messages })
        )) as InstanceType<typeof Anthropic.RateLimitError>
        assert.strictEqual(e.headers?.get("retry-after"), "2")
        assert.strictEqual(e.headers?.get("anthropic-ratelimit-requests-remaining"), "0")
        assert.isFalse(Number.isNaN(Date.parse(e.headers?.get("anthropic-ratelimit-requests-reset") ?? "")))
        const quota = yield* anthropic("insufficient-quota")
        const q = (yield* rejection(() =>
          quota.messages.create({ model: "claude-sonnet-4-6", max_tokens: 64, messages })
        )) as InstanceType<typeof Anthropic.RateLimitError>
        assert.strictEqual(q.errorCode, "enforced_spend_limit_reached")
        assert.strictEqual(q.headers?.get("x-should-retry"), "false")
      })
    )

    it.effect("an in-stream error event raises APIError(overloaded_error) inside an HTTP 200", () =>
      Effect.gen(function* () {
        const client = yield* anthropic("stream-error")
        const error = yield* rejection(async () => {
          const stream = await client.messages.create({ model: "m", max_tokens: 64, messages, stream: true })
          for await (const _ of stream) {
            // drain
          }
        })
        assert.instanceOf(error, Anthropic.APIError)
        assert.strictEqual((error as InstanceType<typeof Anthropic.APIError>).type, "overloaded_error")
      })
    )

    it.effect("refusal: stop_reason refusal, whole and from the MessageStream helper", () =>
      Effect.gen(function* () {
        const client = yield* anthropic("refusal")
        const whole = yield* Effect.promise(() => client.messages.create({ model: "m", max_tokens: 64, messages }))
        assert.strictEqual(whole.stop_reason, "refusal")
        const block = whole.content[0]
        assert.strictEqual(block.type === "text" ? block.text : "", "I'm sorry, but I can't help with that request.")
        const final = yield* Effect.promise(() =>
          client.messages.stream({ model: "m", max_tokens: 64, messages }).finalMessage()
        )
        assert.strictEqual(final.stop_reason, "refusal")
      })
    )

    it.effect("no-end-marker and malformed-json: the raw stream ends at message_delta / skips the bad event", () =>
      Effect.gen(function* () {
        const types = (fault: ChaosServer.Fault) =>
          Effect.flatMap(anthropic(fault), (client) =>
            Effect.promise(async () => {
              const stream = await client.messages.create({ model: "m", max_tokens: 64, messages, stream: true })
              const seen: Array<string> = []
              for await (const event of stream) seen.push(event.type)
              return seen
            })
          )
        const cut = yield* types("no-end-marker")
        assert.strictEqual(cut[cut.length - 1], "message_delta")
        const skipped = yield* types("malformed-json")
        assert.strictEqual(skipped[skipped.length - 1], "message_stop")
        assert.strictEqual(skipped.filter((t) => t === "content_block_delta").length, 6)
      })
    )

    it.effect("a reset connection raises APIConnectionError", () =>
      Effect.gen(function* () {
        const client = yield* anthropic("connection-reset")
        const error = yield* rejection(() => client.messages.create({ model: "m", max_tokens: 8, messages }))
        assert.instanceOf(error, Anthropic.APIConnectionError)
      })
    )
  })
})

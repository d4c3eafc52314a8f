import Anthropic from "@anthropic-ai/sdk"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import OpenAI from "openai"
import { baseConfig, clientKey, startGateway, text } from "./support/gateway.ts"

const openAiClient = (url: string, apiKey = clientKey) =>
  new OpenAI({ apiKey, baseURL: `${url}/v1`, maxRetries: 0, timeout: 10_000 })
const anthropicClient = (url: string, apiKey = clientKey) =>
  new Anthropic({ apiKey, baseURL: url, maxRetries: 0, timeout: 10_000 })

const user = [{ role: "user" as const, content: "Say hello" }]

/** What `call` rejects with (`undefined` if it resolves). */
const rejection = (call: () => Promise<unknown>) =>
  Effect.promise(() =>
    call().then(
      () => undefined,
      (e: unknown) => e
    )
  )

describe("Gateway with the official clients", () => {
  it.live("OpenAI: whole and streamed answers after a fallback name the model that answered", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway(baseConfig)
      const client = openAiClient(url)
      const { data, response } = yield* Effect.promise(() =>
        client.chat.completions.create({ model: "chat", messages: user }).withResponse()
      )
      assert.strictEqual(data.choices[0].message.content, text)
      assert.strictEqual(data.model, "gpt-small")
      // a field the gateway does not read, returned as the provider sent it
      assert.match(data.system_fingerprint ?? "", /^fp_/)
      assert.isAbove(data.usage!.completion_tokens, 0)
      assert.strictEqual(response.headers.get("x-llm-model"), "gpt-small")
      const report = JSON.parse(response.headers.get("x-llm-report")!)
      assert.deepStrictEqual(
        report.attempts.map((a: { step: string; next: string }) => [a.step, a.next]),
        [
          ["broken/gpt-large", "fallback"],
          ["chaos/gpt-small", "answered"]
        ]
      )

      const stream = yield* Effect.promise(() =>
        client.chat.completions.create({
          model: "chat",
          messages: user,
          stream: true,
          stream_options: { include_usage: true }
        })
      )
      const chunks = yield* Effect.promise(async () => {
        const all: Array<OpenAI.ChatCompletionChunk> = []
        for await (const chunk of stream) all.push(chunk)
        return all
      })
      assert.strictEqual(chunks.map((c) => c.choices[0]?.delta.content ?? "").join(""), text)
      assert.deepStrictEqual([...new Set(chunks.map((c) => c.model))], ["gpt-small"])
      assert.strictEqual(chunks.at(-2)?.choices[0].finish_reason, "stop")
      assert.isAbove(chunks.at(-1)!.usage!.completion_tokens, 0)
    })
  )

  it.live("Anthropic: whole and streamed answers", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway(baseConfig)
      const client = anthropicClient(url)
      const message = yield* Effect.promise(() =>
        client.messages.create({ model: "claude-haiku", max_tokens: 100, messages: user })
      )
      assert.deepStrictEqual(
        message.content.map((block) => (block.type === "text" ? block.text : block.type)),
        [text]
      )
      assert.strictEqual(message.stop_reason, "end_turn")
      assert.strictEqual(message.model, "claude-haiku")
      const final = yield* Effect.promise(() =>
        client.messages.stream({ model: "chat", max_tokens: 100, messages: user }).finalMessage()
      )
      assert.deepStrictEqual(
        final.content.map((block) => (block.type === "text" ? block.text : block.type)),
        [text]
      )
      assert.strictEqual(final.model, "gpt-small")
      assert.isAbove(final.usage.output_tokens, 0)
    })
  )

  it.live("errors have the provider's shape, status and Retry-After; 401 without a valid key", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway((chaos) => baseConfig(chaos, "rate-limit"))
      const error = yield* rejection(() => openAiClient(url).chat.completions.create({ model: "solo", messages: user }))
      assert.instanceOf(error, OpenAI.RateLimitError)
      assert.strictEqual((error as InstanceType<typeof OpenAI.RateLimitError>).code, "rate_limit_exceeded")
      assert.strictEqual((error as InstanceType<typeof OpenAI.RateLimitError>).headers.get("retry-after"), "2")

      const anthropicError = yield* rejection(() =>
        anthropicClient(url).messages.create({ model: "solo", max_tokens: 10, messages: user })
      )
      assert.instanceOf(anthropicError, Anthropic.RateLimitError)
      assert.strictEqual((anthropicError as InstanceType<typeof Anthropic.APIError>).type, "rate_limit_error")

      const unauthorized = yield* rejection(() =>
        openAiClient(url, "gw-wrong").chat.completions.create({ model: "chat", messages: user })
      )
      assert.instanceOf(unauthorized, OpenAI.AuthenticationError)
      const unknownModel = yield* rejection(() =>
        anthropicClient(url).messages.create({ model: "nope", max_tokens: 10, messages: user })
      )
      assert.instanceOf(unknownModel, Anthropic.NotFoundError)
      const noContent = yield* Effect.promise(() =>
        fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${clientKey}` },
          body: JSON.stringify({ model: "chat", messages: [{ role: "user" }] })
        }).then(async (r) => ({ status: r.status, body: (await r.json()) as { error: { param: string } } }))
      )
      assert.deepStrictEqual([noContent.status, noContent.body.error.param], [400, "messages[0].content"])
    })
  )

  it.live("a body over server.maxBodyBytes is a 413 in the wire's shape, by content-length or as it arrives", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway((chaos) => {
        const config = baseConfig(chaos)
        return { ...config, server: { ...config.server, maxBodyBytes: 4_096 } }
      })
      const big = [{ role: "user" as const, content: "x".repeat(5_000) }]
      const openAiError = yield* rejection(() =>
        openAiClient(url).chat.completions.create({ model: "gpt-small", messages: big })
      )
      assert.instanceOf(openAiError, OpenAI.APIError)
      assert.strictEqual((openAiError as InstanceType<typeof OpenAI.APIError>).status, 413)
      assert.match((openAiError as InstanceType<typeof OpenAI.APIError>).message, /larger than 4096 bytes/)
      const anthropicError = yield* rejection(() =>
        anthropicClient(url).messages.create({ model: "gpt-small", max_tokens: 10, messages: big })
      )
      assert.instanceOf(anthropicError, Anthropic.APIError)
      assert.strictEqual((anthropicError as InstanceType<typeof Anthropic.APIError>).status, 413)
      assert.strictEqual(
        ((anthropicError as InstanceType<typeof Anthropic.APIError>).error as { error: { type: string } }).error.type,
        "request_too_large"
      )
      // no content-length (chunked): the limit is counted as the body arrives
      const chunked = yield* Effect.promise(() =>
        fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${clientKey}` },
          body: new Blob([JSON.stringify({ model: "gpt-small", messages: big })]).stream(),
          duplex: "half"
        } as RequestInit).then((r) => r.status)
      )
      assert.strictEqual(chunked, 413)
      // a body within the limit is served
      const small = yield* Effect.promise(() =>
        openAiClient(url).chat.completions.create({ model: "gpt-small", messages: user })
      )
      assert.strictEqual(small.choices[0].message.content, text)
    })
  )

  it.live("an overloaded Anthropic answer is a 529 overloaded_error", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway((chaos) => baseConfig(chaos, "overloaded"))
      const error = yield* rejection(() =>
        anthropicClient(url).messages.create({ model: "solo", max_tokens: 10, messages: user })
      )
      assert.instanceOf(error, Anthropic.APIError)
      assert.strictEqual((error as InstanceType<typeof Anthropic.APIError>).status, 529)
      assert.strictEqual((error as InstanceType<typeof Anthropic.APIError>).type, "overloaded_error")
    })
  )

  it.live("a failure after the first chunk arrives as an in-band error event", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway((chaos) => baseConfig(chaos, "truncated-stream"))
      const openAiError = yield* Effect.promise(async () => {
        const stream = await openAiClient(url).chat.completions.create({ model: "solo", messages: user, stream: true })
        let received = ""
        try {
          for await (const chunk of stream) received += chunk.choices[0]?.delta.content ?? ""
        } catch (e) {
          return { e, received }
        }
        return { e: undefined, received }
      })
      assert.instanceOf(openAiError.e, OpenAI.APIError)
      assert.isAbove(openAiError.received.length, 0)
      assert.isBelow(openAiError.received.length, text.length)

      const anthropicError = yield* rejection(() =>
        anthropicClient(url).messages.stream({ model: "solo", max_tokens: 10, messages: user }).finalMessage()
      )
      assert.instanceOf(anthropicError, Anthropic.APIError)
    })
  )

  it.live("with midStream continue, the next step carries on the answer and its chunks name its model", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway((chaos) => {
        const config = baseConfig(chaos, "truncated-stream")
        return { ...config, routes: { ...config.routes, resume: { ...config.routes.chat, midStream: "continue" } } }
      })
      const chunks = yield* Effect.promise(async () => {
        const stream = await openAiClient(url).chat.completions.create({
          model: "resume",
          messages: user,
          stream: true
        })
        const all: Array<OpenAI.ChatCompletionChunk> = []
        for await (const chunk of stream) all.push(chunk)
        return all
      })
      assert.strictEqual(chunks.map((c) => c.choices[0]?.delta.content ?? "").join(""), text)
      const models = chunks.map((c) => c.model)
      assert.strictEqual(models[0], "gpt-large")
      assert.strictEqual(models.at(-1), "gpt-small")
      // once the second step carries on, every chunk names it: its text chunks, not only the last one
      const switched = models.indexOf("gpt-small")
      assert.isBelow(switched, models.length - 3)
      assert.deepStrictEqual([...new Set(models.slice(switched))], ["gpt-small"])
    })
  )

  it.live("models, metrics, health and readiness", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway(baseConfig)
      const models = yield* Effect.promise(async () => {
        const page = await openAiClient(url).models.list()
        return page.data.map((m) => m.id).sort()
      })
      assert.deepStrictEqual(models, [
        "broken/gpt-large",
        "chaos/gpt-small",
        "chat",
        "claude-haiku",
        "claude/claude-haiku",
        "gpt-large",
        "gpt-small",
        "solo"
      ])
      yield* Effect.promise(() => openAiClient(url).chat.completions.create({ model: "chat", messages: user }))
      const metrics = yield* Effect.promise(() => fetch(`${url}/metrics`).then((r) => r.text()))
      assert.match(metrics, /gateway_requests\{[^}]*route="chat"[^}]*status="200"[^}]*\} \d+/)
      assert.strictEqual(yield* Effect.promise(() => fetch(`${url}/healthz`).then((r) => r.status)), 200)
      assert.strictEqual(yield* Effect.promise(() => fetch(`${url}/readyz`).then((r) => r.status)), 200)
    })
  )
})

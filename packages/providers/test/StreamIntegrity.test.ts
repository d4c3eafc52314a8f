/**
 * When a stream is complete, which events are skipped, and how refusals look: both HTTP providers over real
 * sockets, against the chaos server and against a tiny SSE server that replays exact bytes.
 */
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, layer } from "@effect/vitest"
import type { LlmError, LlmRequest, LlmResponse } from "@llm-resilience/core"
import { ChaosServer } from "@llm-resilience/testing"
import { Effect, Layer, Metric, Option, Redacted, Stream } from "effect"
import type * as Sse from "effect/encoding/Sse"
import { AnthropicProvider, OpenAiProvider, ProviderTelemetry } from "../src/index.ts"
import { openAiCodec } from "../src/internal/openai.ts"
import { decodeEvents, makeDecoder } from "../src/internal/stream.ts"

const apiKey = Redacted.make("sk-stream-integrity-0123456789")
const text = "Alpha beta gamma delta epsilon."
const refusalText = "I'm sorry, but I can't help with that request."

const TestLayer = Layer.mergeAll(ChaosServer.layer({ text }), NodeHttpClient.layerUndici)

const request: LlmRequest.LlmRequest = { model: "chaos-model", messages: [{ role: "user", content: "Say it" }] }

const providersFor = (fault: ChaosServer.Fault) =>
  Effect.gen(function* () {
    const chaos = yield* ChaosServer.ChaosServer
    return [
      yield* OpenAiProvider.make({ apiKey, baseUrl: chaos.openAiBaseUrl(fault) }),
      yield* AnthropicProvider.make({ apiKey, baseUrl: chaos.anthropicBaseUrl(fault) })
    ] as const
  })

const textOf = (chunks: ReadonlyArray<LlmResponse.StreamChunk>) =>
  chunks.map((c) => (c._tag === "TextDelta" ? c.text : "")).join("")

const finishOf = (chunks: ReadonlyArray<LlmResponse.StreamChunk>) => {
  const last = chunks[chunks.length - 1]
  assert.strictEqual(last._tag, "Finish")
  assert.strictEqual(chunks.filter((c) => c._tag === "Finish").length, 1)
  return last as LlmResponse.StreamChunk & { readonly _tag: "Finish" }
}

const skippedEvents = (provider: string, model: string) =>
  Effect.map(
    Metric.value(Metric.withAttributes(ProviderTelemetry.malformedEvents, { provider, model })),
    (state) => state.count
  )

/**
 * An SSE server on an ephemeral loopback port that answers every request with `frames` (then a clean
 * close), closed with the scope.
 */
/** Serves `frames` as one SSE body; `keepOpen`: the body is never ended (a server that lingers after them). */
const sseServer = (frames: ReadonlyArray<string>, keepOpen = false) =>
  Effect.acquireRelease(
    Effect.callback<Http.Server>((resume) => {
      const server = Http.createServer((_req, res) => {
        res.writeHead(200, { "content-type": "text/event-stream" })
        for (const f of frames) res.write(f)
        if (!keepOpen) res.end()
      })
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`))

const data = (json: unknown) => `data: ${typeof json === "string" ? json : JSON.stringify(json)}\n\n`
const named = (event: string, json: object) => `event: ${event}\ndata: ${JSON.stringify({ type: event, ...json })}\n\n`
const openAiChunk = (delta: object, finish: string | null = null, extra: object = {}) =>
  data({ object: "chat.completion.chunk", model: "m", choices: [{ index: 0, delta, finish_reason: finish }], ...extra })
const garbage = `data: {"choices": [{"delta": {"content": "oops" ]\n\n`

const openAiOn = (frames: ReadonlyArray<string>, keepOpen = false) =>
  Effect.flatMap(sseServer(frames, keepOpen), (base) => OpenAiProvider.make({ apiKey, baseUrl: `${base}/v1` }))
const anthropicOn = (frames: ReadonlyArray<string>) =>
  Effect.flatMap(sseServer(frames), (base) => AnthropicProvider.make({ apiKey, baseUrl: base }))

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i} `)

layer(TestLayer, { excludeTestServices: true })("stream integrity", (it) => {
  describe("malformed events", () => {
    it.effect("one malformed event in a good stream is skipped, counted per provider and model", () =>
      Effect.gen(function* () {
        for (const p of yield* providersFor("malformed-json")) {
          const chunks = yield* Stream.runCollect(p.stream(request))
          assert.strictEqual(textOf(chunks), text, p.name)
          assert.strictEqual(finishOf(chunks).finishReason, "stop")
          assert.strictEqual(yield* skippedEvents(p.name, "chaos-model"), 1, p.name)
          assert.strictEqual(yield* skippedEvents(p.name, "other-model"), 0)
        }
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
    )

    it.effect("a stream that is mostly garbage fails with ServerError: the third malformed event before 10 good", () =>
      Effect.gen(function* () {
        const openai = yield* openAiOn([openAiChunk({ role: "assistant" }), garbage, garbage, garbage, data("[DONE]")])
        const e = yield* Effect.flip(Stream.runCollect(openai.stream(request)))
        assert.strictEqual(e._tag, "ServerError")
        assert.match((e as LlmError.ServerError).message, /mostly malformed \(3 malformed events, 1 good\)/)
        const anthropic = yield* anthropicOn([
          named("message_start", { message: { model: "m", usage: { input_tokens: 3 } } }),
          garbage,
          garbage,
          garbage,
          named("message_stop", {})
        ])
        const a = yield* Effect.flip(Stream.runCollect(anthropic.stream(request)))
        assert.strictEqual(a._tag, "ServerError")
        assert.match((a as LlmError.ServerError).message, /mostly malformed/)
      })
    )

    it.effect("every 10 good events allow one more malformed event (2 + good / 10)", () =>
      Effect.gen(function* () {
        // 10 good events (role + 9 words) allow 3 malformed events; the 4th fails
        const good = [openAiChunk({ role: "assistant" }), ...words(9).map((w) => openAiChunk({ content: w }))]
        const end = [openAiChunk({}, "stop"), data("[DONE]")]
        const tolerated = yield* openAiOn([...good, garbage, garbage, garbage, ...end])
        const chunks = yield* Stream.runCollect(tolerated.stream(request))
        assert.strictEqual(textOf(chunks), words(9).join(""))
        assert.strictEqual(yield* skippedEvents("openai", "chaos-model"), 3)
        const tooMany = yield* openAiOn([...good, garbage, garbage, garbage, garbage, ...end])
        const e = yield* Effect.flip(Stream.runCollect(tooMany.stream(request)))
        assert.strictEqual(e._tag, "ServerError")
      }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
    )
  })

  describe("the end marker", () => {
    it.effect("reads the events once more after it, so that a body whose end has arrived is read to it", () =>
      Effect.gen(function* () {
        // the events of one body read, then its end: what the HTTP client's stream gives once the last bytes came
        const codec = openAiCodec({ maxTokensField: "max_completion_tokens", includeUsage: true })
        const meta = { provider: "p", model: "m", requestId: undefined, rateLimit: undefined }
        const decoder = makeDecoder(codec, meta)
        const events: ReadonlyArray<Sse.Event> = [
          {
            _tag: "Event",
            event: "message",
            id: undefined,
            data: JSON.stringify({ choices: [{ delta: { content: "Hi" } }] })
          },
          { _tag: "Event", event: "message", id: undefined, data: "[DONE]" }
        ]
        let readToEnd = false
        const body = Stream.concat(
          Stream.make(events),
          Stream.fromEffectDrain(Effect.sync(() => void (readToEnd = true)))
        )
        const chunks = yield* Stream.runCollect(
          decodeEvents(body, decoder, {
            feed: (batch, out) => {
              for (const event of batch) decoder.feed(event, out)
              return undefined
            },
            failure: () => assert.fail("no problem expected"),
            lost: () => assert.fail("nothing lost"),
            truncated: () => assert.fail("not truncated"),
            provider: "p",
            model: "m"
          })
        )
        assert.strictEqual(textOf(chunks), "Hi")
        assert.strictEqual(finishOf(chunks).finishReason, "unknown")
        assert.isTrue(readToEnd, "the body was left unread past the end marker (the client then aborts it)")
      })
    )

    it.effect("ends the stream at once, though the server keeps the body open after it", () =>
      Effect.gen(function* () {
        const openai = yield* openAiOn(
          [openAiChunk({ role: "assistant" }), openAiChunk({ content: "Hi" }), openAiChunk({}, "stop"), data("[DONE]")],
          true
        )
        const chunks = yield* Stream.runCollect(openai.stream(request)).pipe(Effect.timeoutOption("2 seconds"))
        assert.isTrue(Option.isSome(chunks), "the stream waited for the body to end")
        if (Option.isNone(chunks)) return
        assert.strictEqual(textOf(chunks.value), "Hi")
        assert.strictEqual(finishOf(chunks.value).finishReason, "stop")
      })
    )
  })

  describe("a clean end without the end marker", () => {
    it.effect("completes after the finish reason, with its usage (usage chunk after the finish chunk)", () =>
      Effect.gen(function* () {
        for (const p of yield* providersFor("no-end-marker")) {
          const chunks = yield* Stream.runCollect(p.stream(request))
          assert.strictEqual(textOf(chunks), text, p.name)
          const finish = finishOf(chunks)
          assert.strictEqual(finish.finishReason, "stop", p.name)
          assert.strictEqual(finish.usage.outputTokens, 5, p.name)
          assert.isAbove(finish.usage.inputTokens, 0, p.name)
          assert.match(finish.requestId ?? "", /^req_chaos_/)
        }
      })
    )

    it.effect("completes with the usage carried by the finish chunk itself", () =>
      Effect.gen(function* () {
        const openai = yield* openAiOn([
          openAiChunk({ role: "assistant" }),
          openAiChunk({ content: "Hi" }),
          openAiChunk({}, "length", { usage: { prompt_tokens: 7, completion_tokens: 1 } })
        ])
        const finish = finishOf(yield* Stream.runCollect(openai.stream(request)))
        assert.strictEqual(finish.finishReason, "length")
        assert.deepStrictEqual(finish.usage, { inputTokens: 7, outputTokens: 1 })
      })
    )

    it.effect("a clean end before any finish reason stays StreamTruncated, with the chunks that arrived", () =>
      Effect.gen(function* () {
        const openai = yield* openAiOn([
          openAiChunk({ role: "assistant" }),
          openAiChunk({ content: "Hi" }, "", { usage: { prompt_tokens: 7, completion_tokens: 1 } })
        ])
        const e = yield* Effect.flip(Stream.runCollect(openai.stream(request)))
        assert.strictEqual(e._tag, "StreamTruncated")
        assert.strictEqual((e as LlmError.StreamTruncated).receivedChunks, 1)
        const anthropic = yield* anthropicOn([
          named("message_start", { message: { model: "m", usage: { input_tokens: 3 } } }),
          named("content_block_delta", { index: 0, delta: { type: "text_delta", text: "Hi" } }),
          named("message_delta", { delta: { stop_reason: null }, usage: { output_tokens: 1 } })
        ])
        const a = yield* Effect.flip(Stream.runCollect(anthropic.stream(request)))
        assert.strictEqual(a._tag, "StreamTruncated")
      })
    )
  })

  describe("refusals", () => {
    it.effect("OpenAI and Anthropic refusals end the same way: content_filter, the refusal as text", () =>
      Effect.gen(function* () {
        const outcomes: Array<unknown> = []
        for (const p of yield* providersFor("refusal")) {
          const whole = yield* p.complete(request)
          const chunks = yield* Stream.runCollect(p.stream(request))
          const finish = finishOf(chunks)
          outcomes.push({
            complete: [whole.text, whole.finishReason],
            stream: [textOf(chunks), finish.finishReason]
          })
        }
        const expected = { complete: [refusalText, "content_filter"], stream: [refusalText, "content_filter"] }
        assert.deepStrictEqual(outcomes, [expected, expected])
      })
    )
  })

  describe("tool calls", () => {
    const calls = (chunks: ReadonlyArray<LlmResponse.StreamChunk>) =>
      chunks.flatMap((c) => (c._tag === "ToolCallDelta" ? [[c.index, c.id ?? null, c.name ?? null, c.arguments]] : []))
    const first = [
      [0, "c0", "weather", ""],
      [0, null, null, '{"city":'],
      [0, null, null, '"Paris"}']
    ]

    it.effect("OpenAI delta.tool_calls and Anthropic tool_use blocks become the same ToolCallDelta chunks", () =>
      Effect.gen(function* () {
        // two parallel calls; the second one's key (3) is not its position, and its first piece has arguments
        const call = (tc: object) => openAiChunk({ tool_calls: [tc] })
        const openai = yield* openAiOn([
          openAiChunk({ role: "assistant", content: "Let me look. " }),
          call({ index: 0, id: "c0", type: "function", function: { name: "weather", arguments: "" } }),
          call({ index: 0, function: { arguments: '{"city":' } }),
          call({ index: 0, function: { arguments: '"Paris"}' } }),
          call({ index: 3, id: "c1", type: "function", function: { name: "time", arguments: '{"tz"' } }),
          call({ index: 3, function: { arguments: ':"CET"}' } }),
          openAiChunk({}, "tool_calls"),
          data("[DONE]")
        ])
        // a text block, then two tool_use blocks: a call's index counts calls, not blocks
        const block = (index: number, content_block: object) => named("content_block_start", { index, content_block })
        const json = (index: number, partial_json: string) =>
          named("content_block_delta", { index, delta: { type: "input_json_delta", partial_json } })
        const anthropic = yield* anthropicOn([
          named("message_start", { message: { model: "m", usage: { input_tokens: 3 } } }),
          block(0, { type: "text", text: "" }),
          named("content_block_delta", { index: 0, delta: { type: "text_delta", text: "Let me look. " } }),
          named("content_block_stop", { index: 0 }),
          block(1, { type: "tool_use", id: "c0", name: "weather", input: {} }),
          json(1, ""),
          json(1, '{"city":'),
          json(1, '"Paris"}'),
          named("content_block_stop", { index: 1 }),
          block(2, { type: "tool_use", id: "c1", name: "time", input: {} }),
          json(2, '{"tz"'),
          json(2, ':"CET"}'),
          named("content_block_stop", { index: 2 }),
          named("message_delta", { delta: { stop_reason: "tool_use" }, usage: { output_tokens: 9 } }),
          named("message_stop", {})
        ])
        for (const p of [openai, anthropic]) {
          const chunks = yield* Stream.runCollect(p.stream(request))
          assert.strictEqual(textOf(chunks), "Let me look. ", p.name)
          // an Anthropic call's first piece comes with its block, before any input
          const second =
            p === openai
              ? [[1, "c1", "time", '{"tz"']]
              : [
                  [1, "c1", "time", ""],
                  [1, null, null, '{"tz"']
                ]
          assert.deepStrictEqual(calls(chunks), [...first, ...second, [1, null, null, ':"CET"}']], p.name)
          assert.strictEqual(finishOf(chunks).finishReason, "tool_calls", p.name)
        }
      })
    )
  })
})

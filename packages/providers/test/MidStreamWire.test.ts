/**
 * Mid-stream recovery, silent routes and context-length routing through `Resilience` over the HTTP
 * providers (OpenAI and Anthropic wire), against a local SSE server scripted per request. Real sockets and
 * the live clock, with short timeouts; every wait is bounded and every server closed with its scope.
 */
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, layer } from "@effect/vitest"
import { type LlmError, type LlmProvider, type LlmResponse, Resilience } from "@llm-resilience/core"
import { Effect, Exit, Metric, Redacted, Stream } from "effect"
import { AnthropicProvider, OpenAiProvider } from "../src/index.ts"

const apiKey = Redacted.make("sk-mid-stream-0123456789")

/** Tokens `from` to `to` (excluded), 4 characters each. */
const words = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `w${String(from + i).padStart(2, "0")} `)
const full = words(0, 60).join("")

interface Received {
  readonly messages: ReadonlyArray<{ readonly role: string; readonly content: unknown }>
  readonly stream?: boolean
}

/**
 * What the server does with one request: write `tokens`, then finish the answer (`end: "finish"`), end the
 * body without a finish (`"cut"`), or go silent (`"stall"`); or answer an error (`status`, `body`); or say
 * nothing at all (`"silent"`: not even headers).
 */
type Reply =
  | { readonly tokens: ReadonlyArray<string>; readonly end: "finish" | "cut" | "stall" }
  | { readonly status: number; readonly body: object }
  | "silent"

type Wire = "openai" | "anthropic"

const sse = (wire: Wire, tokens: ReadonlyArray<string>, finish: boolean): Array<string> => {
  if (wire === "openai") {
    const chunk = (delta: object, finishReason: string | null = null, extra: object = {}) =>
      `data: ${JSON.stringify({ object: "chat.completion.chunk", model: "m", choices: [{ index: 0, delta, finish_reason: finishReason }], ...extra })}\n\n`
    return [
      chunk({ role: "assistant" }),
      ...tokens.map((t) => chunk({ content: t })),
      ...(finish
        ? [chunk({}, "stop", { usage: { prompt_tokens: 5, completion_tokens: tokens.length } }), "data: [DONE]\n\n"]
        : [])
    ]
  }
  const event = (type: string, json: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...json })}\n\n`
  return [
    event("message_start", { message: { model: "m", usage: { input_tokens: 5 } } }),
    event("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
    ...tokens.map((t) => event("content_block_delta", { index: 0, delta: { type: "text_delta", text: t } })),
    ...(finish
      ? [
          event("content_block_stop", { index: 0 }),
          event("message_delta", { delta: { stop_reason: "end_turn" }, usage: { output_tokens: tokens.length } }),
          event("message_stop", {})
        ]
      : [])
  ]
}

/** A whole (not streamed) answer. */
const completion = (wire: Wire, text: string): object =>
  wire === "openai"
    ? {
        id: "c1",
        object: "chat.completion",
        model: "m",
        choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" }],
        usage: { prompt_tokens: 5, completion_tokens: 60 }
      }
    : {
        id: "m1",
        type: "message",
        role: "assistant",
        model: "m",
        content: [{ type: "text", text }],
        stop_reason: "end_turn",
        usage: { input_tokens: 5, output_tokens: 60 }
      }

/**
 * A server on an ephemeral loopback port answering the n-th request with `script(body, n)`; the bodies it
 * received are in `received`. Closed (every connection dropped) with the scope.
 */
const scripted = (wire: Wire, script: (body: Received, n: number) => Reply) =>
  Effect.gen(function* () {
    const received: Array<Received> = []
    const server = yield* Effect.acquireRelease(
      Effect.callback<Http.Server>((resume) => {
        const server = Http.createServer((req, res) => {
          let raw = ""
          req.on("data", (b: Buffer) => (raw += b.toString()))
          req.on("end", () => {
            const body = JSON.parse(raw) as Received
            received.push(body)
            const reply = script(body, received.length - 1)
            if (reply === "silent") return
            if ("status" in reply) {
              res.writeHead(reply.status, { "content-type": "application/json" })
              res.end(JSON.stringify(reply.body))
              return
            }
            if (body.stream !== true && reply.end === "finish") {
              res.writeHead(200, { "content-type": "application/json" })
              res.end(JSON.stringify(completion(wire, reply.tokens.join(""))))
              return
            }
            res.writeHead(200, { "content-type": "text/event-stream" })
            for (const frame of sse(wire, reply.tokens, reply.end === "finish")) res.write(frame)
            if (reply.end !== "stall") res.end()
          })
        })
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.callback<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const provider: LlmProvider.LlmProvider["Service"] =
      wire === "openai"
        ? yield* OpenAiProvider.make({ apiKey, baseUrl: `${base}/v1`, name: "openai" })
        : yield* AnthropicProvider.make({ apiKey, baseUrl: base })
    return { provider, received }
  })

const request = (path: string) => ({
  model: "m",
  messages: [{ role: "user" as const, content: "count to 60" }],
  metadata: { path }
})

/** The stream collected, bounded by 10 s of real time. */
const collect = (self: Stream.Stream<LlmResponse.StreamChunk, LlmError.LlmError>) =>
  Effect.gen(function* () {
    const seen: Array<LlmResponse.StreamChunk> = []
    const exit = yield* Effect.exit(
      Stream.runForEach(self, (c) =>
        Effect.sync(() => {
          seen.push(c)
        })
      ).pipe(Effect.timeout("10 seconds"))
    )
    const text = seen.map((c) => (c._tag === "TextDelta" ? c.text : "")).join("")
    const finish = seen.find((c) => c._tag === "Finish")
    return { text, finish, exit }
  })

const plan = (first: string, second: string, path: NonNullable<Resilience.Config["paths"]>[string]) =>
  ({
    paths: { chat: path },
    fallback: [
      { provider: first, model: "primary-model" },
      { provider: second, model: "fallback-model" }
    ]
  }) satisfies Resilience.Config

const lastRole = (body: Received) => body.messages[body.messages.length - 1].role
const cutAt40 = () => ({ tokens: words(0, 40), end: "cut" as const })
const whole = () => ({ tokens: words(0, 60), end: "finish" as const })
const retryFast = { extends: "interactive" as const, jitter: "none" as const, baseMs: 10, capMs: 10 }

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.scoped(Effect.provideService(self, Metric.MetricRegistry, new Map()))

layer(NodeHttpClient.layerUndici, { excludeTestServices: true })("mid-stream recovery over HTTP", (it) => {
  describe("continue", () => {
    for (const wire of ["openai", "anthropic"] as const) {
      it.effect(`${wire}: a retry after a cut at 40 of 60 tokens restarts and delivers each token once`, () =>
        isolated(
          Effect.gen(function* () {
            const server = yield* scripted(wire, (_, n) => (n === 0 ? cutAt40() : whole()))
            const { provider } = yield* Resilience.make(
              { paths: { chat: { midStream: "continue", retry: retryFast } } },
              [server.provider]
            )
            const out = yield* collect(provider.stream(request("chat")))
            assert.isTrue(Exit.isSuccess(out.exit))
            assert.strictEqual(out.text, full)
            assert.strictEqual(server.received.length, 2)
          })
        )
      )
    }

    it.effect("anthropic fallback declared with prefill carries on from the delivered text", () =>
      isolated(
        Effect.gen(function* () {
          const primary = yield* scripted("openai", cutAt40)
          // like Anthropic: a prefill ending in whitespace is refused; this continuation repeats the space
          const fallback = yield* scripted("anthropic", (body) => {
            const last = body.messages[body.messages.length - 1]
            if (last.role !== "assistant") return whole()
            return /\s$/.test(String(last.content))
              ? {
                  status: 400,
                  body: { type: "error", error: { type: "invalid_request_error", message: "trailing whitespace" } }
                }
              : { tokens: [" ", ...words(40, 60)], end: "finish" }
          })
          const { provider } = yield* Resilience.make(
            {
              ...plan("openai", "anthropic", { midStream: "continue", retry: "none" }),
              models: { "anthropic/fallback-model": { prefill: true } }
            },
            [primary.provider, fallback.provider]
          )
          const out = yield* collect(provider.stream(request("chat")))
          assert.isTrue(Exit.isSuccess(out.exit))
          assert.strictEqual(out.text, full)
          assert.deepStrictEqual(fallback.received[0].messages[1], {
            role: "assistant",
            content: words(0, 40).join("").trimEnd()
          })
          assert.strictEqual(fallback.received.length, 1)
          assert.strictEqual(out.finish?._tag === "Finish" && out.finish.provider, "anthropic")
        })
      )
    )

    it.effect("a fallback that rejects prefill with a 400 is restarted without it; the answer is whole", () =>
      isolated(
        Effect.gen(function* () {
          const primary = yield* scripted("anthropic", cutAt40)
          const fallback = yield* scripted("openai", (body) =>
            lastRole(body) === "assistant"
              ? {
                  status: 400,
                  body: { error: { type: "invalid_request_error", message: "assistant prefill is not supported" } }
                }
              : whole()
          )
          const { provider } = yield* Resilience.make(
            {
              ...plan("anthropic", "openai", { midStream: "continue", retry: "none" }),
              models: { "openai/fallback-model": { prefill: true } }
            },
            [primary.provider, fallback.provider]
          )
          const out = yield* collect(provider.stream(request("chat")))
          assert.isTrue(Exit.isSuccess(out.exit))
          assert.strictEqual(out.text, full)
          assert.deepStrictEqual(fallback.received.map(lastRole), ["assistant", "user"])
          // and when the restart is not the same answer, the caller gets the typed divergence, not the 400
          const other = yield* scripted("openai", (body) =>
            lastRole(body) === "assistant"
              ? { status: 400, body: { error: { type: "invalid_request_error", message: "no prefill" } } }
              : { tokens: ["another ", "answer"], end: "finish" }
          )
          const cut = yield* scripted("anthropic", cutAt40)
          const second = yield* Resilience.make(
            {
              ...plan("anthropic", "openai", { midStream: "continue", retry: "none" }),
              models: { "openai/fallback-model": { prefill: true } }
            },
            [cut.provider, other.provider]
          )
          const diverged = yield* collect(second.provider.stream(request("chat")))
          assert.strictEqual(diverged.text, words(0, 40).join(""))
          const error = Exit.isFailure(diverged.exit) ? diverged.exit.cause.reasons[0] : undefined
          assert.strictEqual(error?._tag === "Fail" && (error.error as LlmError.LlmError)._tag, "StreamDiverged")
        })
      )
    )

    it.effect("a stall after 20 tokens ends at the idle timeout and the fallback finishes the answer", () =>
      isolated(
        Effect.gen(function* () {
          const primary = yield* scripted("openai", () => ({ tokens: words(0, 20), end: "stall" }))
          const fallback = yield* scripted("anthropic", whole)
          const { provider } = yield* Resilience.make(
            plan("openai", "anthropic", { midStream: "continue", retry: "none", timeouts: { idleMs: 300 } }),
            [primary.provider, fallback.provider]
          )
          const out = yield* collect(provider.stream(request("chat")))
          assert.isTrue(Exit.isSuccess(out.exit))
          assert.strictEqual(out.text, full)
        })
      )
    )
  })

  it.effect("buffer: a cut answer never reaches the caller; the retry's answer does, whole", () =>
    isolated(
      Effect.gen(function* () {
        const server = yield* scripted("anthropic", (_, n) =>
          n === 0 ? cutAt40() : { tokens: ["a ", "new ", "answer"], end: "finish" }
        )
        const { provider } = yield* Resilience.make({ paths: { chat: { midStream: "buffer", retry: retryFast } } }, [
          server.provider
        ])
        const out = yield* collect(provider.stream(request("chat")))
        assert.isTrue(Exit.isSuccess(out.exit))
        assert.strictEqual(out.text, "a new answer")
      })
    )
  )

  it.effect("fail: a cut after 40 tokens ends the stream with StreamTruncated, nothing retried", () =>
    isolated(
      Effect.gen(function* () {
        const server = yield* scripted("openai", (_, n) => (n === 0 ? cutAt40() : whole()))
        const { provider } = yield* Resilience.make({ paths: { chat: { retry: retryFast } } }, [server.provider])
        const out = yield* collect(provider.stream(request("chat")))
        assert.strictEqual(out.text, words(0, 40).join(""))
        const error = Exit.isFailure(out.exit) ? out.exit.cause.reasons[0] : undefined
        assert.strictEqual(error?._tag === "Fail" && (error.error as LlmError.LlmError)._tag, "StreamTruncated")
        assert.strictEqual(server.received.length, 1)
      })
    )
  )

  it.effect("a route that never sends a byte moves on to the next step at the first-token timeout", () =>
    isolated(
      Effect.gen(function* () {
        const silent = yield* scripted("openai", () => "silent")
        const fallback = yield* scripted("anthropic", whole)
        const { provider } = yield* Resilience.make(
          plan("openai", "anthropic", { retry: retryFast, timeouts: { firstTokenMs: 300 } }),
          [silent.provider, fallback.provider]
        )
        const out = yield* collect(provider.stream(request("chat")))
        assert.isTrue(Exit.isSuccess(out.exit))
        assert.strictEqual(out.text, full)
        assert.strictEqual(silent.received.length, 1) // not retried
      })
    )
  )

  it.effect("a context-length 400 moves on to a step whose window is unknown", () =>
    isolated(
      Effect.gen(function* () {
        const small = yield* scripted("openai", () => ({
          status: 400,
          body: { error: { code: "context_length_exceeded", message: "maximum context length is 8192 tokens" } }
        }))
        const large = yield* scripted("anthropic", whole)
        const { provider } = yield* Resilience.make(
          { ...plan("openai", "anthropic", {}), models: { "openai/primary-model": { contextWindow: 8_192 } } },
          [small.provider, large.provider]
        )
        const answer = yield* provider.complete(request("chat"))
        assert.strictEqual(answer.text, full)
        assert.strictEqual(answer.provider, "anthropic")
        const out = yield* collect(provider.stream(request("chat")))
        assert.strictEqual(out.text, full)
      })
    )
  )
})

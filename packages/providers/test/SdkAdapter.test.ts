/**
 * The SDK adapter: official SDK calls (retries off) run inside Effect, their errors classified into the
 * toolkit's taxonomy. Real SDKs against the chaos server over real sockets.
 */
import Anthropic from "@anthropic-ai/sdk"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it, layer } from "@effect/vitest"
import { FallbackPlan, type LlmError, type LlmRequest, type LlmResponse } from "@llm-resilience/core"
import { ChaosServer } from "@llm-resilience/testing"
import { Cause, Duration, Effect, Exit, Layer, Redacted, References, Stream } from "effect"
import OpenAI from "openai"
import { OpenAiProvider, SdkAdapter } from "../src/index.ts"

const key = "sk-adapter-key-123456"
const messages = [{ role: "user" as const, content: "hello" }]

const openai = (fault?: ChaosServer.Fault) =>
  Effect.map(
    ChaosServer.ChaosServer,
    (chaos) => new OpenAI({ apiKey: key, baseURL: chaos.openAiBaseUrl(fault), maxRetries: 0 })
  )
const anthropic = (fault?: ChaosServer.Fault) =>
  Effect.map(
    ChaosServer.ChaosServer,
    (chaos) => new Anthropic({ apiKey: key, baseURL: chaos.anthropicBaseUrl(fault), maxRetries: 0 })
  )

const complete = (client: OpenAI, model = "gpt-5.4-mini") =>
  SdkAdapter.tryPromise({ provider: "openai", model }, (signal) =>
    client.chat.completions.create({ model, messages }, { signal })
  )

const message = (client: Anthropic, model = "claude-sonnet-4-6") =>
  SdkAdapter.tryPromise({ provider: "anthropic", model }, (signal) =>
    client.messages.create({ model, max_tokens: 64, messages }, { signal })
  )

layer(ChaosServer.layer({ apiKey: key, stallMs: 2_000 }), { excludeTestServices: true })("SdkAdapter", (it) => {
  it.effect("a successful call returns the SDK's own result", () =>
    Effect.gen(function* () {
      const r = yield* complete(yield* openai())
      assert.strictEqual(r.object, "chat.completion")
      const m = yield* message(yield* anthropic())
      assert.strictEqual(m.type, "message")
    })
  )

  it.effect("SDK errors are classified from status, headers and body", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [ChaosServer.Fault, string, string]> = [
        ["rate-limit", "RateLimited", "RateLimited"],
        ["insufficient-quota", "QuotaExhausted", "QuotaExhausted"],
        ["overloaded", "Overloaded", "Overloaded"],
        ["server-error", "ServerError", "ServerError"],
        ["bad-gateway", "ServerError", "ServerError"],
        ["authentication", "Authentication", "Authentication"],
        ["bad-request", "BadRequest", "BadRequest"],
        ["context-length", "ContextLengthExceeded", "ContextLengthExceeded"],
        ["connection-reset", "ConnectionError", "ConnectionError"]
      ]
      for (const [fault, openaiTag, anthropicTag] of cases) {
        const a = yield* Effect.flip(complete(yield* openai(fault)))
        assert.strictEqual(a._tag, openaiTag, `openai ${fault}: ${a.message}`)
        assert.strictEqual(a.provider, "openai")
        const b = yield* Effect.flip(message(yield* anthropic(fault)))
        assert.strictEqual(b._tag, anthropicTag, `anthropic ${fault}: ${b.message}`)
      }
    })
  )

  it.effect("a 429 keeps retry-after, the request id and the rate-limit snapshot", () =>
    Effect.gen(function* () {
      const e = (yield* Effect.flip(message(yield* anthropic("rate-limit")))) as LlmError.RateLimited
      assert.strictEqual(e._tag, "RateLimited")
      assert.strictEqual(e.retryAfterMs, 2000)
      assert.strictEqual(e.status, 429)
      assert.strictEqual(e.model, "claude-sonnet-4-6")
      assert.match(e.requestId ?? "", /^req_chaos_/)
      assert.strictEqual(e.rateLimit?.requests?.remaining, 0)
    })
  )

  it.effect("SDK streams become Streams; an in-stream error event is classified", () =>
    Effect.gen(function* () {
      const client = yield* anthropic()
      const events = yield* Stream.runCollect(
        SdkAdapter.stream({ provider: "anthropic" }, (signal) =>
          client.messages.create({ model: "m", max_tokens: 64, messages, stream: true }, { signal })
        )
      )
      assert.strictEqual(events[events.length - 1].type, "message_stop")
      const failing = yield* anthropic("stream-error")
      const e = yield* Effect.flip(
        Stream.runDrain(
          SdkAdapter.stream({ provider: "anthropic" }, (signal) =>
            failing.messages.create({ model: "m", max_tokens: 64, messages, stream: true }, { signal })
          )
        )
      )
      assert.strictEqual(e._tag, "Overloaded")
      const oai = yield* openai("stream-error")
      const o = yield* Effect.flip(
        Stream.runDrain(
          SdkAdapter.stream({ provider: "openai" }, (signal) =>
            oai.chat.completions.create({ model: "m", messages, stream: true }, { signal })
          )
        )
      )
      assert.strictEqual(o._tag, "ServerError")
    })
  )

  it.effect("interruption aborts the SDK request instead of waiting for it", () =>
    Effect.gen(function* () {
      const client = yield* openai("stall-first-byte")
      let aborted = false
      const call = SdkAdapter.tryPromise({ provider: "openai" }, (signal) => {
        signal.addEventListener("abort", () => {
          aborted = true
        })
        return client.chat.completions.create({ model: "m", messages }, { signal })
      })
      const exit = yield* Effect.exit(Effect.timeout(call, Duration.millis(100)))
      assert.isTrue(Exit.isFailure(exit))
      assert.isTrue(aborted)
    })
  )
})

const request: LlmRequest.LlmRequest = { model: "sdk-model", messages: [{ role: "user", content: "hello" }] }

const sdkProviders = (fault?: ChaosServer.Fault) =>
  Effect.gen(function* () {
    const chaos = yield* ChaosServer.ChaosServer
    // `logLevel: "off"`: the openai SDK logs an event it cannot parse before it throws
    const quiet = new OpenAI({ apiKey: key, baseURL: chaos.openAiBaseUrl(fault), maxRetries: 0, logLevel: "off" })
    return [SdkAdapter.fromOpenAi(quiet), SdkAdapter.fromAnthropic(yield* anthropic(fault))] as const
  })

const textOf = (chunks: ReadonlyArray<LlmResponse.StreamChunk>) =>
  chunks.map((c) => (c._tag === "TextDelta" ? c.text : "")).join("")

const sdkLayer = Layer.mergeAll(
  ChaosServer.layer({ apiKey: key, stallMs: 100, text: "One two three four." }),
  NodeHttpClient.layerUndici
)

layer(sdkLayer, { excludeTestServices: true })("SdkAdapter transport failures and providers", (it) => {
  it.effect("a connection cut mid-body (TypeError: terminated) is a ConnectionError, mid-stream StreamTruncated", () =>
    Effect.gen(function* () {
      for (const fault of ["stall-mid-stream", "truncated-stream", "stall-first-byte"] as const) {
        const a = yield* Effect.flip(complete(yield* openai(fault)))
        assert.strictEqual(a._tag, "ConnectionError", `openai ${fault}`)
        assert.match(a.message, /terminated: other side closed \(UND_ERR_SOCKET\)/)
        const b = yield* Effect.flip(message(yield* anthropic(fault), "chaos-model"))
        assert.strictEqual(b._tag, "ConnectionError", `anthropic ${fault}`)
      }
      const client = yield* openai("stall-mid-stream")
      const e = yield* Effect.flip(
        Stream.runDrain(
          SdkAdapter.stream({ provider: "openai" }, (signal) =>
            client.chat.completions.create({ model: "m", messages, stream: true }, { signal })
          )
        )
      )
      assert.strictEqual(e._tag, "StreamTruncated")
      assert.isAbove((e as LlmError.StreamTruncated).receivedChunks, 0)
    })
  )

  it.effect("an SDK client as an LlmProvider maps answers and streams like the HTTP providers", () =>
    Effect.gen(function* () {
      for (const p of yield* sdkProviders()) {
        const r = yield* p.complete(request)
        assert.strictEqual(r.text, "One two three four.", p.name)
        assert.strictEqual(r.finishReason, "stop")
        assert.strictEqual(r.usage.outputTokens, 4)
        assert.strictEqual(r.provider, p.name)
        assert.strictEqual(r.model, "sdk-model")
        assert.match(r.requestId ?? "", /^req_chaos_/)
        assert.isAbove(r.rateLimit?.requests?.remaining ?? 0, 0)
        const chunks = yield* Stream.runCollect(p.stream(request))
        assert.strictEqual(textOf(chunks), "One two three four.")
        const finish = chunks[chunks.length - 1]
        assert.strictEqual(finish._tag, "Finish")
        if (finish._tag === "Finish") {
          assert.strictEqual(finish.usage.outputTokens, 4)
          assert.match(finish.requestId ?? "", /^req_chaos_/)
        }
      }
    })
  )

  it.effect("an SDK-backed provider ends streams and refusals like the HTTP providers", () =>
    Effect.gen(function* () {
      const expectations = [
        ["truncated-stream", "StreamTruncated", "StreamTruncated"],
        ["stall-mid-stream", "StreamTruncated", "StreamTruncated"],
        ["rate-limit", "RateLimited", "RateLimited"],
        ["no-end-marker", "Finish", "Finish"],
        // the openai SDK throws on an event it cannot parse; the Anthropic SDK skips an unnamed event
        ["malformed-json", "ServerError", "Finish"]
      ] as const
      for (const [fault, ...outcomes] of expectations) {
        const providers = yield* sdkProviders(fault)
        for (let i = 0; i < providers.length; i++) {
          const exit = yield* Effect.exit(Stream.runCollect(providers[i].stream(request)))
          const tag = Exit.isSuccess(exit)
            ? exit.value[exit.value.length - 1]._tag
            : Cause.hasDies(exit.cause)
              ? "defect"
              : (Cause.squash(exit.cause) as LlmError.LlmError)._tag
          assert.strictEqual(tag, outcomes[i], `${providers[i].name} ${fault}`)
        }
      }
      for (const p of yield* sdkProviders("refusal")) {
        const r = yield* p.complete(request)
        assert.strictEqual(r.finishReason, "content_filter", p.name)
        assert.strictEqual(r.text, "I'm sorry, but I can't help with that request.")
      }
    })
  )

  it.effect("interrupting an SDK-backed call or stream aborts the SDK request", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const client = new OpenAI({
        apiKey: key,
        baseURL: chaos.openAiBaseUrl("stall-first-byte"),
        maxRetries: 0,
        defaultHeaders: { "x-chaos-delay-ms": "10000" }
      })
      const signals: Array<AbortSignal> = []
      const provider = SdkAdapter.fromOpenAi({
        chat: {
          completions: {
            create: (body, options) => {
              signals.push(options.signal)
              return client.chat.completions.create(body, options)
            }
          }
        }
      })
      for (const call of [provider.complete(request), Stream.runDrain(provider.stream(request))]) {
        const exit = yield* Effect.exit(Effect.timeout(call, Duration.millis(50)))
        assert.isTrue(Exit.isFailure(exit))
      }
      assert.strictEqual(signals.length, 2)
      assert.isTrue(signals.every((signal) => signal.aborted))
    })
  )

  it.effect("an SDK-backed model is a fallback step: the HTTP primary is overloaded, the SDK answers", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const primary = yield* OpenAiProvider.make({
        apiKey: Redacted.make(key),
        baseUrl: chaos.openAiBaseUrl("overloaded")
      })
      const plan = yield* FallbackPlan.make([
        FallbackPlan.step(primary, { model: "gpt-primary" }),
        FallbackPlan.step(SdkAdapter.fromAnthropic(yield* anthropic()), { model: "claude-fallback" })
      ])
      const r = yield* plan.complete(request)
      assert.strictEqual(r.provider, "anthropic")
      assert.strictEqual(r.model, "claude-fallback")
      assert.strictEqual(r.usage.outputTokens, 4)
      const chunks = yield* Stream.runCollect(plan.stream(request))
      const finish = chunks[chunks.length - 1]
      assert.strictEqual(textOf(chunks), "One two three four.")
      assert.strictEqual(finish._tag === "Finish" ? finish.model : "", "claude-fallback")
      const seen = (yield* chaos.requests).slice(-4).map((r) => `${r.wire}:${r.step}`)
      assert.deepStrictEqual(seen, ["openai:overloaded", "anthropic:ok", "openai:overloaded", "anthropic:ok"])
    }).pipe(Effect.provideService(References.MinimumLogLevel, "None"))
  )
})

describe("SdkAdapter.classifyError", () => {
  it("every transport failure is a ConnectionError, however it is wrapped; a bug is not", () => {
    const target = { provider: "openai" }
    const socket = Object.assign(new Error("other side closed"), { name: "SocketError", code: "UND_ERR_SOCKET" })
    const abort = new DOMException("This operation was aborted", "AbortError")
    const transport: ReadonlyArray<unknown> = [
      new TypeError("terminated", { cause: socket }),
      new TypeError("terminated"),
      new TypeError("fetch failed", {
        cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })
      }),
      Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }),
      socket,
      abort,
      // node-fetch's abort, and a socket error without a code: recognised by name alone
      Object.assign(new Error("The user aborted a request."), { name: "AbortError" }),
      Object.assign(new Error("closed"), { name: "SocketError" }),
      new OpenAI.APIUserAbortError(),
      new Anthropic.APIUserAbortError(),
      new OpenAI.APIConnectionError({ message: "Connection error.", cause: new TypeError("terminated") }),
      new Anthropic.APIConnectionError({ message: "Connection error.", cause: new TypeError("fetch failed") }),
      new Error("request failed", { cause: new Error("wrapped", { cause: socket }) })
    ]
    for (const error of transport) {
      const e = SdkAdapter.classifyError(error, target, 0)
      assert.strictEqual(e?._tag, "ConnectionError", String(error))
    }
    for (const bug of [
      new TypeError("Cannot read properties of undefined (reading 'choices')"),
      new SyntaxError("Unexpected token"),
      new Error("terminated early by the caller's own logic")
    ]) {
      assert.isUndefined(SdkAdapter.classifyError(bug, target, 0), String(bug))
    }
  })

  it("classifies SDK-shaped errors and leaves everything else alone", () => {
    const anthropicBody = { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }
    const overloaded = SdkAdapter.classifyError(
      { status: 529, headers: new Headers({ "request-id": "req_1" }), error: anthropicBody },
      { provider: "anthropic" },
      0
    )
    assert.strictEqual(overloaded?._tag, "Overloaded")
    assert.strictEqual(overloaded?.requestId, "req_1")
    // the openai SDK keeps only the inner object: {message, type, code, param}
    const quota = SdkAdapter.classifyError(
      { status: 429, headers: {}, error: { message: "quota", type: "insufficient_quota", code: "insufficient_quota" } },
      { provider: "openai" },
      0
    )
    assert.strictEqual(quota?._tag, "QuotaExhausted")
    const timeout = SdkAdapter.classifyError(new OpenAI.APIConnectionTimeoutError(), { provider: "openai" }, 0)
    assert.strictEqual(timeout?._tag, "Timeout")
    const connection = SdkAdapter.classifyError(
      new OpenAI.APIConnectionError({ message: "boom" }),
      { provider: "openai" },
      0
    )
    assert.strictEqual(connection?._tag, "ConnectionError")
    assert.isUndefined(SdkAdapter.classifyError(new TypeError("x is not a function"), { provider: "openai" }, 0))
    assert.isUndefined(SdkAdapter.classifyError("nope", { provider: "openai" }, 0))
  })

  it.effect("a bug in the calling code stays a defect, not a retryable error", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        SdkAdapter.tryPromise({ provider: "openai" }, () =>
          Promise.reject(new TypeError("undefined is not a function"))
        )
      )
      assert.isTrue(Exit.isFailure(exit) && Cause.hasDies(exit.cause))
    })
  )
})

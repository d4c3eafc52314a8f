/**
 * The providers over real sockets against the chaos server: request/response/usage/stream mapping,
 * configuration, secrets, and socket hygiene.
 */
import { inspect } from "node:util"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it, layer } from "@effect/vitest"
import type { LlmProvider, LlmRequest } from "@llm-resilience/core"
import { ChaosServer } from "@llm-resilience/testing"
import {
  Cause,
  ConfigProvider,
  Duration,
  Effect,
  Exit,
  Layer,
  Logger,
  Redacted,
  References,
  Schema,
  Stream,
  Tracer
} from "effect"
import { HttpClient } from "effect/http"
import { AnthropicProvider, OpenAiProvider } from "../src/index.ts"
import { capturingTracer } from "./support/tracer.ts"

const secret = "sk-live-SECRET-4f2b9c7d1e0a"
const apiKey = Redacted.make(secret)
const text = "One two three four five."

const ChaosLive = ChaosServer.layer({ apiKey: secret, cachedInputTokens: 4, text, stallMs: 300 })
const TestLayer = Layer.mergeAll(ChaosLive, NodeHttpClient.layerUndici)

const request: LlmRequest.LlmRequest = {
  model: "chaos-model",
  messages: [
    { role: "system", content: "You are terse and precise in every answer you give." },
    { role: "user", content: "Count to five, please, in words, and stop there." }
  ]
}

const both = Effect.gen(function* () {
  const chaos = yield* ChaosServer.ChaosServer
  const openai = yield* OpenAiProvider.make({ apiKey, baseUrl: chaos.openAiBaseUrl() })
  const anthropic = yield* AnthropicProvider.make({ apiKey, baseUrl: chaos.anthropicBaseUrl() })
  return [openai, anthropic] as const
})

layer(TestLayer, { excludeTestServices: true })("mapping", (it) => {
  it.effect("complete maps text, finish reason, usage with cached tokens, model, request id and snapshot", () =>
    Effect.gen(function* () {
      for (const p of yield* both) {
        const r = yield* p.complete(request)
        assert.strictEqual(r.text, text)
        assert.strictEqual(r.finishReason, "stop")
        assert.strictEqual(r.provider, p.name)
        assert.strictEqual(r.model, "chaos-model")
        assert.match(r.requestId ?? "", /^req_chaos_\d+$/)
        assert.strictEqual(r.usage.outputTokens, 5)
        assert.strictEqual(r.usage.cachedInputTokens, 4)
        // the server counts ceil(chars / 4) over system + user text; Anthropic reports it split
        assert.strictEqual(
          r.usage.inputTokens,
          Math.ceil((request.messages[0].content.length + request.messages[1].content.length) / 4)
        )
        assert.isDefined(r.rateLimit?.requests?.remaining)
        assert.isAbove(r.rateLimit?.requests?.remaining ?? 0, 0)
      }
    })
  )

  it.effect("stream emits the text as deltas, then exactly one Finish with usage and metadata", () =>
    Effect.gen(function* () {
      for (const p of yield* both) {
        const chunks = yield* Stream.runCollect(p.stream(request))
        const deltas = chunks.filter((c) => c._tag === "TextDelta")
        const finishes = chunks.filter((c) => c._tag === "Finish")
        assert.strictEqual(deltas.map((d) => d.text).join(""), text)
        assert.strictEqual(deltas.length, 5)
        assert.strictEqual(finishes.length, 1)
        const finish = chunks[chunks.length - 1]
        assert.strictEqual(finish._tag, "Finish")
        if (finish._tag !== "Finish") return
        assert.strictEqual(finish.finishReason, "stop")
        assert.strictEqual(finish.usage.outputTokens, 5)
        assert.strictEqual(finish.usage.cachedInputTokens, 4)
        assert.isAbove(finish.usage.inputTokens, 4)
        assert.match(finish.requestId ?? "", /^req_chaos_\d+$/)
        assert.isDefined(finish.rateLimit)
      }
    })
  )

  it.effect("maxOutputTokens reaches the wire: a capped answer ends with finishReason length", () =>
    Effect.gen(function* () {
      for (const p of yield* both) {
        const r = yield* p.complete({ ...request, maxOutputTokens: 2 })
        assert.strictEqual(r.text, "One two ")
        assert.strictEqual(r.finishReason, "length")
        const chunks = yield* Stream.runCollect(p.stream({ ...request, maxOutputTokens: 2 }))
        const finish = chunks[chunks.length - 1]
        assert.strictEqual(finish._tag === "Finish" ? finish.finishReason : "none", "length")
      }
    })
  )

  it.effect("the server saw one request per call, in the right wire format, streaming when asked", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const [openai, anthropic] = yield* both
      const before = (yield* chaos.requests).length
      yield* openai.complete(request)
      yield* Stream.runDrain(anthropic.stream(request))
      const seen = (yield* chaos.requests).slice(before)
      assert.deepStrictEqual(seen, [
        { wire: "openai", step: "ok", model: "chaos-model", stream: false },
        { wire: "anthropic", step: "ok", model: "chaos-model", stream: true }
      ])
    })
  )

  it.effect("a failure carries no retry: one request reaches the server per failed call", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const [openai] = yield* both
      const before = (yield* chaos.requests).length
      yield* chaos.setScenario(["overloaded", "overloaded"])
      const e = yield* Effect.flip(openai.complete(request))
      assert.strictEqual(e._tag, "Overloaded")
      assert.strictEqual((yield* chaos.requests).length - before, 1)
      yield* chaos.setScenario([])
    })
  )

  it.effect("Azure-style api-key auth and query parameters", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const azure = yield* OpenAiProvider.make({
        name: "azure",
        apiKey,
        baseUrl: chaos.openAiBaseUrl(),
        authHeader: "api-key",
        urlParams: { "api-version": "2024-10-21" }
      })
      const r = yield* azure.complete(request)
      assert.strictEqual(r.provider, "azure")
      assert.strictEqual(r.text, text)
    })
  )

  it.effect("a wrong key is an Authentication error (the key is checked by the server)", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const p = yield* AnthropicProvider.make({ apiKey: Redacted.make("sk-wrong"), baseUrl: chaos.anthropicBaseUrl() })
      const e = yield* Effect.flip(p.complete(request))
      assert.strictEqual(e._tag, "Authentication")
    })
  )
})

describe("configuration", () => {
  const provideEnv = (env: Record<string, string>) =>
    Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown(env))

  it.live("keys (and base URLs) come from OPENAI_API_KEY / ANTHROPIC_API_KEY when not passed", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const env = { OPENAI_API_KEY: secret, ANTHROPIC_API_KEY: secret, ANTHROPIC_BASE_URL: chaos.anthropicBaseUrl() }
      const openai = yield* OpenAiProvider.make({ baseUrl: chaos.openAiBaseUrl() }).pipe(provideEnv(env))
      const anthropic = yield* AnthropicProvider.make().pipe(provideEnv(env))
      assert.strictEqual((yield* openai.complete(request)).text, text)
      assert.strictEqual((yield* anthropic.complete(request)).text, text)
    }).pipe(Effect.provide(TestLayer))
  )

  it.effect("a missing key fails at construction with a ConfigError", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(OpenAiProvider.make().pipe(provideEnv({})))
      assert.strictEqual(e._tag, "ConfigError")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.effect("invalid options fail at construction with a SchemaError naming the field", () =>
    Effect.gen(function* () {
      const bad = yield* Effect.flip(OpenAiProvider.make({ apiKey, baseUrl: "not a url" }))
      assert.instanceOf(bad, Schema.SchemaError)
      assert.include(bad.message, "baseUrl")
      const caps = yield* Effect.flip(AnthropicProvider.make({ apiKey, maxResponseBytes: 0 }))
      assert.include(caps.message, "maxResponseBytes")
      const env = yield* Effect.flip(
        AnthropicProvider.make({ apiKey }).pipe(provideEnv({ ANTHROPIC_BASE_URL: "ftp://x" }))
      )
      assert.include(env.message, "baseUrl")
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.effect("a plain-string key is refused without printing it", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(
        OpenAiProvider.make({ apiKey: secret as unknown as Redacted.Redacted<string>, baseUrl: "http://localhost" })
      )
      assert.include(e.message, "apiKey")
      assert.notInclude(e.message, secret)
      assert.notInclude(inspect(e, { depth: 10 }), secret)
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )
})

describe("secrets", () => {
  it.live("logs, error messages and span attributes of a failing authenticated call never show the key", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const { spans, tracer } = capturingTracer()
      const logs: Array<string> = []
      const capture = Logger.make((o) => {
        logs.push(inspect(o.message, { depth: 10 }), Cause.pretty(o.cause))
      })
      const texts: Array<string> = []
      const providers: ReadonlyArray<LlmProvider.LlmProvider["Service"]> = [
        yield* OpenAiProvider.make({ apiKey, baseUrl: chaos.openAiBaseUrl("authentication") }),
        yield* OpenAiProvider.make({ apiKey, baseUrl: chaos.openAiBaseUrl("server-error"), authHeader: "api-key" }),
        yield* AnthropicProvider.make({ apiKey, baseUrl: chaos.anthropicBaseUrl("authentication") }),
        yield* AnthropicProvider.make({ apiKey, baseUrl: chaos.anthropicBaseUrl("connection-reset") })
      ]
      const observed = <A, E, R>(self: Effect.Effect<A, E, R>) =>
        self.pipe(
          Effect.provideService(Tracer.Tracer, tracer),
          Effect.provideService(Logger.CurrentLoggers, new Set([capture]))
        )
      yield* observed(
        Effect.gen(function* () {
          for (const p of providers) {
            for (const call of [Effect.asVoid(p.complete(request)), Stream.runDrain(p.stream(request))]) {
              const exit = yield* Effect.exit(call)
              assert.isTrue(Exit.isFailure(exit))
              if (Exit.isFailure(exit)) {
                const error = Exit.findErrorOption(exit)
                texts.push(
                  Cause.pretty(exit.cause),
                  inspect(error, { depth: 10 }),
                  JSON.stringify(error),
                  String(error)
                )
                yield* Effect.logError("provider call failed", exit.cause)
                yield* Effect.logDebug({ exit })
              }
            }
          }
        })
      )
      const spanText = spans.map((s) =>
        inspect({ name: s.name, attributes: [...s.attributes], events: s.events }, { depth: 10 })
      )
      // header capture was on: the auth headers were recorded, redacted
      const recorded = spans.flatMap((s) => [...s.attributes.keys()])
      assert.include(recorded, "http.request.header.authorization")
      assert.include(recorded, "http.request.header.x-api-key")
      assert.include(recorded, "http.request.header.api-key")
      assert.isAbove(logs.length, 0)
      for (const t of [...texts, ...logs, ...spanText]) {
        assert.notInclude(t, secret)
        assert.notInclude(t, "SECRET-4f2b")
      }
    }).pipe(
      Effect.provideService(HttpClient.TracerHeaderFilter, () => true),
      Effect.provideService(References.MinimumLogLevel, "All"),
      Effect.provide(TestLayer)
    )
  )
})

describe("sockets", () => {
  const tcpHandles = () =>
    process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap" || r === "TCPServerWrap").length

  it.live("closing the layers leaves no open sockets, even after interrupted and stalled calls", () =>
    Effect.gen(function* () {
      // let sockets of earlier tests finish closing, so that the baseline is exact
      let before = tcpHandles()
      for (let i = 0; i < 50 && before > 0; i++) {
        yield* Effect.sleep(Duration.millis(20))
        before = tcpHandles()
      }
      yield* Effect.scoped(
        Effect.gen(function* () {
          const context = yield* Layer.build(TestLayer)
          yield* Effect.gen(function* () {
            const chaos = yield* ChaosServer.ChaosServer
            const [openai, anthropic] = yield* both
            assert.isAbove(tcpHandles(), before)
            yield* openai.complete(request)
            // a stream abandoned after its first chunk
            yield* Stream.runCollect(Stream.take(anthropic.stream(request), 1))
            // a stalled stream interrupted by a timeout
            const stalled = yield* OpenAiProvider.make({ apiKey, baseUrl: chaos.openAiBaseUrl("stall-mid-stream") })
            yield* Effect.ignore(Effect.timeout(Stream.runDrain(stalled.stream(request)), Duration.millis(50)))
            // a stall still in progress when the scope closes
            yield* Effect.forkChild(Stream.runDrain(stalled.stream(request)))
            yield* Effect.sleep(Duration.millis(20))
          }).pipe(Effect.provide(context))
        })
      )
      let after = tcpHandles()
      for (let i = 0; i < 50 && after > before; i++) {
        yield* Effect.sleep(Duration.millis(20))
        after = tcpHandles()
      }
      assert.strictEqual(after, before)
    })
  )
})

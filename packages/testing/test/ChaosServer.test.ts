/**
 * The chaos server itself: how a request picks its fault, request validation, options, and shutdown.
 */
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it, layer } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Schema } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { ChaosServer } from "../src/index.ts"

const chatBody = { model: "gpt-5.4-mini", messages: [{ role: "user", content: "hi" }] }

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(
      HttpClientRequest.post(url, { headers }).pipe(
        HttpClientRequest.bodyText(typeof body === "string" ? body : JSON.stringify(body), "application/json")
      )
    )
    const text = yield* response.text
    return { status: response.status, headers: response.headers, text }
  })

const TestLayer = Layer.mergeAll(ChaosServer.layer({ stallMs: 100 }), NodeHttpClient.layerUndici)

layer(TestLayer, { excludeTestServices: true })("ChaosServer", (it) => {
  it.effect("a request picks its fault by header first, then by path prefix, then by scenario", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      yield* chaos.setScenario(["server-error", "rate-limit"])
      const byHeader = yield* post(`${chaos.url}/fault/overloaded/v1/chat/completions`, chatBody, {
        "x-chaos-fault": "authentication"
      })
      assert.strictEqual(byHeader.status, 401)
      const byPath = yield* post(`${chaos.url}/fault/overloaded/v1/messages`, { ...chatBody, max_tokens: 5 })
      assert.strictEqual(byPath.status, 529)
      // neither: the scenario, in order, then normal answers
      const first = yield* post(`${chaos.url}/v1/chat/completions`, chatBody)
      const second = yield* post(`${chaos.url}/v1/chat/completions`, chatBody)
      const third = yield* post(`${chaos.url}/v1/chat/completions`, chatBody)
      assert.deepStrictEqual([first.status, second.status, third.status], [500, 429, 200])
      const steps = (yield* chaos.requests).slice(-5).map((r) => r.step)
      assert.deepStrictEqual(steps, ["authentication", "overloaded", "server-error", "rate-limit", "ok"])
    })
  )

  it.effect("Responses, Azure and Gemini routes: the wire is told by the path, the model and streaming too", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const responses = yield* post(`${chaos.url}/v1/responses`, { model: "gpt-5.4-mini", input: "hi" })
      assert.strictEqual(JSON.parse(responses.text).object, "response")
      const azure = yield* post(
        `${chaos.azureEndpoint()}/openai/deployments/eu-4o/chat/completions?api-version=2024-10-21`,
        {
          messages: chatBody.messages
        }
      )
      assert.deepStrictEqual([azure.status, typeof azure.headers["apim-request-id"]], [200, "string"])
      // Azure wants its api-version
      const noVersion = yield* post(`${chaos.url}/openai/deployments/eu-4o/chat/completions`, chatBody)
      assert.strictEqual(noVersion.status, 400)
      const gemini = yield* post(
        `${chaos.geminiBaseUrl("rate-limit")}/models/gemini-2.5-flash:streamGenerateContent?alt=sse`,
        {
          contents: [{ role: "user", parts: [{ text: "hi" }] }]
        }
      )
      assert.strictEqual(JSON.parse(gemini.text).error.status, "RESOURCE_EXHAUSTED")
      const unknownMethod = yield* post(`${chaos.geminiBaseUrl()}/models/gemini-2.5-flash:countTokens`, {})
      assert.strictEqual(unknownMethod.status, 404)
      // only POST is answered; other paths and methods are not requests to a model (nor recorded)
      const client = yield* HttpClient.HttpClient
      const get = yield* client.execute(HttpClientRequest.get(`${chaos.url}/v1/chat/completions`))
      const elsewhere = yield* post(`${chaos.url}/fault/rate-limit/v2/chat/completions`, chatBody)
      assert.deepStrictEqual([get.status, elsewhere.status], [404, 404])
      const seen = (yield* chaos.requests).slice(-4).map((r) => [r.wire, r.model, r.stream])
      assert.deepStrictEqual(seen, [
        ["openai-responses", "gpt-5.4-mini", false],
        ["azure-openai", "eu-4o", false],
        ["azure-openai", undefined, false],
        ["gemini", "gemini-2.5-flash", true]
      ])
    })
  )

  it.effect("a looping scenario repeats", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      yield* chaos.setScenario(["overloaded", "ok"], { loop: true })
      const statuses: Array<number> = []
      for (let i = 0; i < 4; i++) statuses.push((yield* post(`${chaos.url}/v1/chat/completions`, chatBody)).status)
      assert.deepStrictEqual(statuses, [503, 200, 503, 200])
      yield* chaos.setScenario([])
    })
  )

  it.effect("unknown faults and unreadable requests get the wire's own 400", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const unknown = yield* post(`${chaos.url}/fault/meteor-strike/v1/messages`, { ...chatBody, max_tokens: 5 })
      assert.strictEqual(unknown.status, 400)
      const body = JSON.parse(unknown.text)
      assert.strictEqual(body.type, "error")
      assert.strictEqual(body.error.type, "invalid_request_error")
      assert.include(body.error.message, "meteor-strike")
      const invalid = yield* post(`${chaos.url}/v1/chat/completions`, "{not json")
      assert.strictEqual(invalid.status, 400)
      assert.strictEqual(JSON.parse(invalid.text).error.type, "invalid_request_error")
      const noMaxTokens = yield* post(`${chaos.url}/v1/messages`, chatBody)
      assert.strictEqual(noMaxTokens.status, 400)
      assert.include(JSON.parse(noMaxTokens.text).error.message, "max_tokens")
    })
  )

  it.effect("x-chaos-delay-ms overrides the delay of one request", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const r = yield* post(`${chaos.url}/fault/slow-headers/v1/chat/completions`, chatBody, {
        "x-chaos-delay-ms": "0"
      })
      assert.strictEqual(r.status, 200)
      assert.strictEqual(JSON.parse(r.text).object, "chat.completion")
    })
  )

  it.effect("success answers carry realistic rate-limit headers and request ids", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const o = yield* post(`${chaos.url}/v1/chat/completions`, chatBody)
      assert.match(o.headers["x-request-id"] ?? "", /^req_chaos_/)
      assert.strictEqual(o.headers["x-ratelimit-limit-requests"], "10000")
      const a = yield* post(`${chaos.url}/v1/messages`, { ...chatBody, max_tokens: 5 })
      assert.match(a.headers["request-id"] ?? "", /^req_chaos_/)
      assert.isFalse(Number.isNaN(Date.parse(a.headers["anthropic-ratelimit-tokens-reset"] ?? "")))
    })
  )
})

describe("ChaosServer lifecycle", () => {
  it.effect("invalid options fail at construction, naming the field", () =>
    Effect.gen(function* () {
      const e = yield* Effect.flip(Effect.scoped(ChaosServer.make({ stallMs: -1 })))
      assert.instanceOf(e, Schema.SchemaError)
      assert.include(e.message, "stallMs")
      const s = yield* Effect.flip(
        Effect.scoped(ChaosServer.make({ scenario: ["ok", "lightning"] as unknown as Array<ChaosServer.Step> }))
      )
      assert.include(s.message, "scenario")
    })
  )

  it.live("the request and rate-limit logs keep only the latest historyLimit entries, oldest first", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const models = Array.from({ length: 10 }, (_, i) => `model-${i}`)
        const chaos = yield* ChaosServer.make({
          historyLimit: 3,
          rateLimits: Object.fromEntries(models.map((model) => [model, { requestsPerMinute: 100 }]))
        })
        const logged = Effect.gen(function* () {
          const requests = yield* chaos.requests
          const limits = yield* chaos.limitLog
          return [requests.map((r) => r.model), limits.map((e) => e.model)]
        })
        for (const model of models.slice(0, 2)) yield* post(`${chaos.url}/v1/chat/completions`, { ...chatBody, model })
        assert.deepStrictEqual(yield* logged, [models.slice(0, 2), models.slice(0, 2)])
        // a long run: the logs stay bounded, holding the latest calls
        for (const model of models.slice(2)) yield* post(`${chaos.url}/v1/chat/completions`, { ...chatBody, model })
        assert.deepStrictEqual(yield* logged, [models.slice(-3), models.slice(-3)])
      })
    ).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it.live("closing the server drops connections that are stalled mid-response", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.scoped(
        Effect.gen(function* () {
          const chaos = yield* ChaosServer.make({ stallMs: 60_000 })
          const fiber = yield* Effect.forkChild(
            post(`${chaos.url}/fault/stall-mid-stream/v1/chat/completions`, chatBody)
          )
          yield* Effect.sleep("50 millis")
          return fiber
        })
      ).pipe(Effect.flatMap(Fiber.await))
      // the client saw the connection drop instead of waiting a minute
      assert.isTrue(Exit.isFailure(exit) && Cause.hasFails(exit.cause) && !Cause.hasInterrupts(exit.cause))
    }).pipe(Effect.provide(NodeHttpClient.layerUndici))
  )

  it("a program whose sibling layer fails while the server starts exits with that error", () => {
    const fixture = fileURLToPath(new URL("fixtures/sibling-fails.ts", import.meta.url))
    const child = spawnSync(process.execPath, ["--conditions=@llm-resilience/source", fixture], {
      encoding: "utf8",
      timeout: 15_000,
      killSignal: "SIGKILL"
    })
    // killed by the timeout: the half-started server kept the process alive
    assert.strictEqual(child.signal, null, `the process did not exit by itself:\n${child.stderr}`)
    assert.strictEqual(child.status, 1)
    assert.include(child.stderr, "the sibling layer failed")
  }, 30_000)
})

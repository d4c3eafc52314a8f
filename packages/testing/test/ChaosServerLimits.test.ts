/**
 * The chaos server's rate limits: per model, counted at arrival over a sliding window, a real 429 with the
 * provider's headers over them.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import { Classification } from "@llm-resilience/core"
import { ChaosServer } from "../src/index.ts"

const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    const response = yield* client.execute(
      HttpClientRequest.post(url, { headers }).pipe(
        HttpClientRequest.bodyText(JSON.stringify(body), "application/json")
      )
    )
    const text = yield* response.text
    return { status: response.status, headers: response.headers as Record<string, string>, text }
  })

// "hi" is 1 input token; the default answer is 11 words, one output token each: 12 tokens a call
const chat = (model: string) => ({ model, messages: [{ role: "user", content: "hi" }] })
const WINDOW = 600

const TestLayer = Layer.mergeAll(
  ChaosServer.layer({
    rateLimits: { "gpt-limited": { requestsPerMinute: 3 }, "claude-limited": { tokensPerMinute: 30 } },
    rateLimitWindowMs: WINDOW
  }),
  NodeHttpClient.layerUndici
)

describe("ChaosServer rate limits", () => {
  it.live("OpenAI: requests over the limit get a 429 with x-ratelimit headers; the window slides", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const url = `${chaos.url}/v1/chat/completions`
      const ok = []
      for (let i = 0; i < 3; i++) ok.push(yield* post(url, chat("gpt-limited")))
      assert.deepStrictEqual(
        ok.map((r) => [r.status, r.headers["x-ratelimit-limit-requests"], r.headers["x-ratelimit-remaining-requests"]]),
        [
          [200, "3", "2"],
          [200, "3", "1"],
          [200, "3", "0"]
        ]
      )
      const refused = yield* post(url, chat("gpt-limited"))
      assert.strictEqual(refused.status, 429)
      assert.strictEqual(refused.headers["x-ratelimit-remaining-requests"], "0")
      assert.match(refused.headers["x-ratelimit-reset-requests"], /^\d+ms$/)
      assert.strictEqual(refused.headers["retry-after"], "1")
      assert.isAtMost(Number(refused.headers["retry-after-ms"]), WINDOW)
      // the library reads it as a transient request-rate limit with its wait
      const error = Classification.classify({
        status: 429,
        headers: refused.headers,
        body: refused.text,
        provider: "openai",
        model: "gpt-limited",
        nowMillis: 0
      })
      assert.strictEqual(error._tag, "RateLimited")
      assert.strictEqual(error._tag === "RateLimited" ? error.limit : undefined, "requests")
      // an unlimited model is not affected; a refused call is not counted
      assert.strictEqual((yield* post(url, chat("gpt-free"))).status, 200)
      yield* Effect.sleep(WINDOW + 50)
      assert.strictEqual((yield* post(url, chat("gpt-limited"))).status, 200)
      const log = yield* chaos.limitLog
      assert.deepStrictEqual(
        log.filter((e) => e.model === "gpt-limited").map((e) => e.limited),
        [false, false, false, true, false]
      )
    }).pipe(Effect.provide(TestLayer))
  )

  it.live("Anthropic: tokens over the limit get a 429 with anthropic-ratelimit headers naming tokens", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.ChaosServer
      const url = `${chaos.url}/v1/messages`
      const body = { ...chat("claude-limited"), max_tokens: 100 }
      const first = yield* post(url, body)
      assert.strictEqual(first.status, 200)
      assert.strictEqual(first.headers["anthropic-ratelimit-tokens-limit"], "30")
      assert.strictEqual(first.headers["anthropic-ratelimit-tokens-remaining"], "18")
      assert.strictEqual((yield* post(url, body)).status, 200) // 24 of 30
      const refused = yield* post(url, body) // 36 > 30
      assert.strictEqual(refused.status, 429)
      assert.strictEqual(refused.headers["anthropic-ratelimit-tokens-remaining"], "6")
      assert.isFalse(Number.isNaN(Date.parse(refused.headers["anthropic-ratelimit-tokens-reset"])))
      assert.strictEqual(refused.headers["retry-after"], "1")
      const error = Classification.classify({
        status: 429,
        headers: refused.headers,
        body: refused.text,
        provider: "anthropic",
        model: "claude-limited",
        nowMillis: 0
      })
      assert.strictEqual(error._tag === "RateLimited" ? error.limit : undefined, "tokens")
    }).pipe(Effect.provide(TestLayer))
  )
})

/**
 * The SDK adapter: official SDK calls (retries off) run inside Effect, their errors classified into the
 * toolkit's taxonomy. Real SDKs against the chaos server over real sockets.
 */
import Anthropic from "@anthropic-ai/sdk"
import { assert, describe, it, layer } from "@effect/vitest"
import type { LlmError } from "@llm-resilience/core"
import { ChaosServer } from "@llm-resilience/testing"
import { Cause, Duration, Effect, Exit, Stream } from "effect"
import OpenAI from "openai"
import { SdkAdapter } from "../src/index.ts"

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

describe("SdkAdapter.classifyError", () => {
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

import { assert, describe, it } from "@effect/vitest"
import { DateTime, Duration, Effect, Exit, Layer, Redacted, Stream } from "effect"
import { AiError, LanguageModel, Model, type Prompt, type Response } from "effect/ai"
import { TestClock } from "effect/testing"
import { LanguageModelAdapter, LlmError, LlmProvider } from "@llm-resilience/core"

// ---------------------------------------------------------------------------------------------------------
// a scripted LanguageModel
// ---------------------------------------------------------------------------------------------------------

interface Script {
  readonly generate?: () => Effect.Effect<Array<Response.PartEncoded>, AiError.AiError>
  readonly stream?: () => Stream.Stream<Response.StreamPartEncoded, AiError.AiError>
}

interface Scripted {
  readonly model: LanguageModel.LanguageModel
  /** Prompts the model received, in order. */
  readonly prompts: Array<Prompt.Prompt>
}

const scripted = (script: Script): Effect.Effect<Scripted> =>
  Effect.gen(function* () {
    const prompts: Array<Prompt.Prompt> = []
    const model = yield* LanguageModel.make({
      generateText: (options) => {
        prompts.push(options.prompt)
        return script.generate === undefined ? Effect.succeed([]) : script.generate()
      },
      streamText: (options) => {
        prompts.push(options.prompt)
        return script.stream === undefined ? Stream.empty : script.stream()
      }
    })
    return { model, prompts }
  })

const adapter = (
  script: Script,
  options: LanguageModelAdapter.Options = { provider: "openai", model: "gpt-5.4-mini" }
) =>
  Effect.gen(function* () {
    const s = yield* scripted(script)
    const llm = yield* LanguageModelAdapter.fromLanguageModel(s.model, options)
    return { llm, prompts: s.prompts }
  })

const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }

const fail = (reason: AiError.AiErrorReason): AiError.AiError =>
  AiError.make({ module: "TestClient", method: "createResponse", reason })

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit), "expected a failure")
  const found = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  assert.isDefined(found, "expected a typed failure, not a defect")
  return (found as { readonly error: E }).error
}

const now = Date.parse("2025-06-01T12:00:00.000Z")

const finishPart = (
  reason: Response.FinishReason,
  usage: typeof Response.Usage.Encoded,
  response?: typeof Response.HttpResponseDetails.Encoded
): Response.PartEncoded =>
  response === undefined ? { type: "finish", reason, usage } : { type: "finish", reason, usage, response }

/** The subset of `fields` that `error` carries, for a readable deep comparison. */
const pick = (error: object, fields: Record<string, unknown>): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(fields)) out[key] = (error as Record<string, unknown>)[key]
  return out
}

// ---------------------------------------------------------------------------------------------------------
// complete
// ---------------------------------------------------------------------------------------------------------

describe("LanguageModelAdapter.complete", () => {
  it.effect("maps messages, text, finish reason, usage, model, request id and the rate-limit snapshot", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(now)
      const { llm, prompts } = yield* adapter({
        generate: () =>
          Effect.succeed([
            { type: "response-metadata", id: "chatcmpl-1", modelId: "gpt-5.4-mini-2026-03-17" },
            { type: "text", text: "Hello" },
            { type: "text", text: ", world" },
            finishPart(
              "length",
              { inputTokens: { total: 120, uncached: 20, cacheRead: 100 }, outputTokens: { total: 7 } },
              {
                status: 200,
                headers: {
                  "x-request-id": "req_abc",
                  "x-ratelimit-limit-requests": "500",
                  "x-ratelimit-remaining-requests": "499",
                  "x-ratelimit-reset-requests": "1m30.5s",
                  "anthropic-ratelimit-output-tokens-reset": "2025-06-01T12:00:10Z"
                }
              }
            )
          ])
      })
      const response = yield* llm.complete({
        model: "gpt-5.4-mini",
        messages: [
          { role: "system", content: "Be brief" },
          { role: "user", content: "Hi" },
          { role: "assistant", content: "Hello?" },
          { role: "tool", content: '{"temp":21}' }
        ]
      })
      assert.deepStrictEqual(response, {
        text: "Hello, world",
        finishReason: "length",
        usage: { inputTokens: 120, outputTokens: 7, cachedInputTokens: 100 },
        provider: "openai",
        model: "gpt-5.4-mini-2026-03-17",
        requestId: "req_abc",
        rateLimit: {
          requests: { limit: 500, remaining: 499, resetAfterMs: 90_500 },
          outputTokens: { resetAfterMs: 10_000 }
        }
      })
      const sent = prompts[0].content.map((m) => ({
        role: m.role,
        text:
          typeof m.content === "string"
            ? m.content
            : m.content.map((p) => (p.type === "text" ? p.text : `<${p.type}>`)).join("")
      }))
      assert.deepStrictEqual(sent, [
        { role: "system", text: "Be brief" },
        { role: "user", text: "Hi" },
        { role: "assistant", text: "Hello?" },
        { role: "user", text: '{"temp":21}' }
      ])
    })
  )

  it.effect("maps every finish reason", () =>
    Effect.gen(function* () {
      const table: Array<[Response.FinishReason, string]> = [
        ["stop", "stop"],
        ["length", "length"],
        ["content-filter", "content_filter"],
        ["tool-calls", "tool_calls"],
        ["error", "unknown"],
        ["pause", "unknown"],
        ["other", "unknown"],
        ["unknown", "unknown"]
      ]
      for (const [reason, expected] of table) {
        const { llm } = yield* adapter({
          generate: () => Effect.succeed([finishPart(reason, { inputTokens: {}, outputTokens: {} })])
        })
        const response = yield* llm.complete(request)
        assert.strictEqual(response.finishReason, expected, reason)
      }
    })
  )

  it.effect("usage falls back to the parts when totals are missing; no finish part gives unknown and zeros", () =>
    Effect.gen(function* () {
      const { llm } = yield* adapter({
        generate: () =>
          Effect.succeed([
            finishPart("stop", {
              inputTokens: { uncached: 10, cacheRead: 30, cacheWrite: 5 },
              outputTokens: { text: 4, reasoning: 6 }
            })
          ])
      })
      const r = yield* llm.complete(request)
      assert.deepStrictEqual(r.usage, { inputTokens: 45, outputTokens: 10, cachedInputTokens: 30 })
      // no response-metadata: the bound model is reported; no headers: no request id, no snapshot
      assert.strictEqual(r.model, "gpt-5.4-mini")
      assert.isUndefined(r.requestId)
      assert.isUndefined(r.rateLimit)

      const bare = yield* adapter({ generate: () => Effect.succeed([{ type: "text", text: "x" }]) })
      const r2 = yield* bare.llm.complete(request)
      assert.deepStrictEqual(
        [r2.text, r2.finishReason, r2.usage],
        ["x", "unknown", { inputTokens: 0, outputTokens: 0 }]
      )
    })
  )

  it.effect("Redacted header values are unwrapped for rate-limit headers only, and never used as request id", () =>
    Effect.gen(function* () {
      const { llm } = yield* adapter({
        generate: () =>
          Effect.succeed([
            { type: "response-metadata", id: "resp_1" },
            finishPart(
              "stop",
              { inputTokens: { total: 1 }, outputTokens: { total: 1 } },
              {
                status: 200,
                headers: {
                  "X-Request-Id": Redacted.make("req_secret"),
                  "X-RateLimit-Remaining-Tokens": Redacted.make("0"),
                  "set-cookie": Redacted.make("session=abc")
                }
              }
            )
          ])
      })
      const r = yield* llm.complete(request)
      assert.strictEqual(r.requestId, "resp_1") // the response id, not the redacted header
      assert.deepStrictEqual(r.rateLimit, { tokens: { remaining: 0 } })
      assert.notInclude(JSON.stringify(r), "req_secret")
      assert.notInclude(JSON.stringify(r), "session=abc")
    })
  )

  it.effect("a request for another model than the bound one fails with ModelNotFound before any call", () =>
    Effect.gen(function* () {
      const { llm, prompts } = yield* adapter({ generate: () => Effect.succeed([{ type: "text", text: "x" }]) })
      const error = failureOf(yield* Effect.exit(llm.complete({ ...request, model: "gpt-5.4" })))
      assert.instanceOf(error, LlmError.ModelNotFound)
      assert.deepStrictEqual(pick(error, { provider: 0, model: 0 }), { provider: "openai", model: "gpt-5.4" })
      assert.strictEqual(prompts.length, 0)
      const streamError = failureOf(yield* Effect.exit(Stream.runCollect(llm.stream({ ...request, model: "gpt-5.4" }))))
      assert.instanceOf(streamError, LlmError.ModelNotFound)
      assert.strictEqual(prompts.length, 0)
    })
  )
})

// ---------------------------------------------------------------------------------------------------------
// construction
// ---------------------------------------------------------------------------------------------------------

describe("LanguageModelAdapter construction", () => {
  it.effect("layer: provider and model default to Model.ProviderName / Model.ModelName from context", () =>
    Effect.gen(function* () {
      const lm = Layer.effect(
        LanguageModel.LanguageModel,
        LanguageModel.make({
          generateText: () => Effect.succeed([{ type: "text", text: "ok" }]),
          streamText: () => Stream.empty
        })
      )
      const program = Effect.gen(function* () {
        const llm = yield* LlmProvider.LlmProvider
        const r = yield* llm.complete({ ...request, model: "claude-haiku-4-5" })
        return [llm.name, r.provider, r.model]
      })
      const out = yield* program.pipe(
        Effect.provide(
          LanguageModelAdapter.layer().pipe(Layer.provide(Model.make("anthropic", "claude-haiku-4-5", lm)))
        )
      )
      assert.deepStrictEqual(out, ["anthropic", "anthropic", "claude-haiku-4-5"])
      // explicit options win over the context
      const named = yield* program.pipe(
        Effect.provide(
          LanguageModelAdapter.layer({ provider: "bedrock" }).pipe(
            Layer.provide(Model.make("anthropic", "claude-haiku-4-5", lm))
          )
        )
      )
      assert.deepStrictEqual(named, ["bedrock", "bedrock", "claude-haiku-4-5"])
    })
  )

  it.effect("without a bound model every request is accepted and reported under its own model", () =>
    Effect.gen(function* () {
      const { llm } = yield* adapter(
        { generate: () => Effect.succeed([{ type: "text", text: "x" }]) },
        { provider: "p" }
      )
      const r = yield* llm.complete({ ...request, model: "any-model" })
      assert.deepStrictEqual([r.provider, r.model], ["p", "any-model"])
    })
  )

  it.effect("invalid options fail at construction with a SchemaError naming the field", () =>
    Effect.gen(function* () {
      const s = yield* scripted({})
      const missing = failureOf(yield* Effect.exit(LanguageModelAdapter.fromLanguageModel(s.model, {})))
      assert.strictEqual((missing as { readonly _tag: string })._tag, "SchemaError")
      assert.include(String(missing), "provider")
      const empty = failureOf(
        yield* Effect.exit(LanguageModelAdapter.fromLanguageModel(s.model, { provider: "p", model: "" }))
      )
      assert.strictEqual((empty as { readonly _tag: string })._tag, "SchemaError")
      assert.include(String(empty), "model")
    })
  )
})

// ---------------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------------

interface ErrorRow {
  readonly name: string
  readonly reason: AiError.AiErrorReason
  readonly tag: LlmError.ProviderError["_tag"]
  readonly fields?: Record<string, unknown>
}

const openaiBody = (type: string | null, code: string | null, message = "m"): string =>
  JSON.stringify({ error: { message, type, param: null, code } })

const http = (status: number, body: string, headers: Record<string, string | Redacted.Redacted<string>> = {}) => ({
  response: { status, headers },
  body
})

const withoutHttp: Array<ErrorRow> = [
  {
    name: "RateLimitError with retryAfter",
    reason: new AiError.RateLimitError({ retryAfter: Duration.seconds(2) }),
    tag: "RateLimited",
    fields: { limit: "unknown", retryAfterMs: 2000, status: undefined, provider: "openai", model: "gpt-5.4-mini" }
  },
  {
    name: "RateLimitError without retryAfter",
    reason: new AiError.RateLimitError({}),
    tag: "RateLimited",
    fields: { limit: "unknown", retryAfterMs: undefined }
  },
  {
    name: "RateLimitError with an infinite retryAfter (dropped)",
    reason: new AiError.RateLimitError({ retryAfter: Duration.infinity }),
    tag: "RateLimited",
    fields: { retryAfterMs: undefined }
  },
  {
    name: "RateLimitError whose provider metadata says insufficient_quota",
    reason: new AiError.RateLimitError({ metadata: { openai: { errorCode: "insufficient_quota" } } }),
    tag: "QuotaExhausted"
  },
  {
    name: "QuotaExhaustedError with resetAt",
    reason: new AiError.QuotaExhaustedError({ resetAt: DateTime.makeUnsafe(now + 3_600_000) }),
    tag: "QuotaExhausted",
    fields: { resetAt: now + 3_600_000 }
  },
  {
    name: "AuthenticationError InvalidKey",
    reason: new AiError.AuthenticationError({ kind: "InvalidKey" }),
    tag: "Authentication"
  },
  {
    name: "AuthenticationError InsufficientPermissions",
    reason: new AiError.AuthenticationError({ kind: "InsufficientPermissions" }),
    tag: "PermissionDenied"
  },
  {
    name: "ContentPolicyError",
    reason: new AiError.ContentPolicyError({ description: "flagged" }),
    tag: "ContentFiltered"
  },
  {
    name: "InvalidRequestError",
    reason: new AiError.InvalidRequestError({ description: "messages: must not be empty" }),
    tag: "BadRequest"
  },
  {
    name: "InvalidRequestError about the context window",
    reason: new AiError.InvalidRequestError({
      description: "This model's maximum context length is 128000 tokens. However, you requested 130000 tokens."
    }),
    tag: "ContextLengthExceeded"
  },
  {
    name: "InvalidRequestError with a context_length_exceeded code in metadata, and its request id",
    reason: new AiError.InvalidRequestError({
      metadata: { openai: { errorCode: "context_length_exceeded", errorType: null, requestId: "req_meta" } }
    }),
    tag: "ContextLengthExceeded",
    fields: { requestId: "req_meta" }
  },
  {
    name: "InternalProviderError",
    reason: new AiError.InternalProviderError({ description: "Server error" }),
    tag: "ServerError"
  },
  {
    name: "NetworkError TransportError",
    reason: new AiError.NetworkError({
      reason: "TransportError",
      method: "POST",
      url: "https://api.example.com/v1/chat?key=sk-secret-123",
      description: "ECONNRESET"
    }),
    tag: "ConnectionError"
  },
  {
    name: "NetworkError InvalidUrlError",
    reason: new AiError.NetworkError({ reason: "InvalidUrlError", method: "POST", url: "::" }),
    tag: "BadRequest"
  },
  {
    name: "InvalidResponseError",
    reason: new AiError.InvalidResponseError({ description: "unexpected shape" }),
    tag: "ServerError"
  },
  { name: "UnknownError", reason: new AiError.UnknownError({}), tag: "ServerError" },
  {
    name: "InvalidUserInputError",
    reason: new AiError.InvalidUserInputError({ description: "bad input" }),
    tag: "BadRequest"
  }
]

const withHttp: Array<ErrorRow> = [
  {
    name: "RateLimitError 429 on tokens: which limit, Retry-After, snapshot and request id from the response",
    reason: new AiError.RateLimitError({
      http: http(429, openaiBody("tokens", "rate_limit_exceeded", "Rate limit reached on tokens per min (TPM)"), {
        "retry-after": "2",
        "x-request-id": "req_1",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "6m0s"
      })
    }),
    tag: "RateLimited",
    fields: {
      limit: "tokens",
      retryAfterMs: 2000,
      status: 429,
      requestId: "req_1",
      rateLimit: { retryAfterMs: 2000, tokens: { remaining: 0, resetAfterMs: 360_000 } }
    }
  },
  {
    name: "RateLimitError whose 429 body says insufficient_quota (the body wins)",
    reason: new AiError.RateLimitError({
      http: http(429, openaiBody("insufficient_quota", "insufficient_quota", "You exceeded your current quota"))
    }),
    tag: "QuotaExhausted",
    fields: { status: 429 }
  },
  {
    name: "RateLimitError with retryAfter but no Retry-After header keeps the reason's wait",
    reason: new AiError.RateLimitError({
      retryAfter: Duration.millis(1500),
      http: http(429, openaiBody("requests", "rate_limit_exceeded"), { "x-ratelimit-remaining-requests": "0" })
    }),
    tag: "RateLimited",
    fields: { limit: "requests", retryAfterMs: 1500, rateLimit: { requests: { remaining: 0 } } }
  },
  {
    name: "QuotaExhaustedError on a 429 whose body names no code (the reason refines RateLimited)",
    reason: new AiError.QuotaExhaustedError({ http: http(429, "", { "retry-after": "60" }) }),
    tag: "QuotaExhausted",
    fields: { status: 429, resetAt: now + 60_000 }
  },
  {
    name: "AuthenticationError 401",
    reason: new AiError.AuthenticationError({
      kind: "InvalidKey",
      http: http(401, openaiBody("invalid_request_error", "invalid_api_key", "Incorrect API key provided"))
    }),
    tag: "Authentication",
    fields: { status: 401, message: "Incorrect API key provided" }
  },
  {
    name: "AuthenticationError 403",
    reason: new AiError.AuthenticationError({
      kind: "InsufficientPermissions",
      http: http(403, JSON.stringify({ type: "error", error: { type: "permission_error", message: "no" } }))
    }),
    tag: "PermissionDenied",
    fields: { status: 403 }
  },
  {
    name: "ContentPolicyError on a plain 400 (the reason refines BadRequest)",
    reason: new AiError.ContentPolicyError({
      description: "flagged",
      http: http(400, openaiBody("invalid_request_error", null))
    }),
    tag: "ContentFiltered",
    fields: { status: 400 }
  },
  {
    name: "InvalidRequestError 400 context_length_exceeded",
    reason: new AiError.InvalidRequestError({
      http: http(400, openaiBody("invalid_request_error", "context_length_exceeded"))
    }),
    tag: "ContextLengthExceeded",
    fields: { status: 400 }
  },
  {
    name: "InvalidRequestError 404 (the classifier knows it is a missing model)",
    reason: new AiError.InvalidRequestError({
      description: "Resource not found",
      http: http(404, openaiBody("invalid_request_error", "model_not_found"))
    }),
    tag: "ModelNotFound",
    fields: { status: 404 }
  },
  {
    name: "InvalidRequestError 400 with x-should-retry: true becomes retryable",
    reason: new AiError.InvalidRequestError({
      http: http(400, openaiBody("invalid_request_error", null), { "x-should-retry": "true" })
    }),
    tag: "ServerError",
    fields: { status: 400 }
  },
  {
    name: "InternalProviderError 529 overloaded (Anthropic)",
    reason: new AiError.InternalProviderError({
      description: "Server error",
      http: http(529, JSON.stringify({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } }), {
        "request-id": "req_ant"
      })
    }),
    tag: "Overloaded",
    fields: { status: 529, requestId: "req_ant" }
  },
  {
    name: "InternalProviderError 500 with x-should-retry: false becomes fatal",
    reason: new AiError.InternalProviderError({
      description: "Server error",
      http: http(500, openaiBody("server_error", null), { "x-should-retry": "false" })
    }),
    tag: "BadRequest",
    fields: { status: 500 }
  },
  {
    name: "InvalidResponseError on an HTML 502 from a proxy",
    reason: new AiError.InvalidResponseError({
      description: "not JSON",
      http: http(502, "<html><head><title>502 Bad Gateway</title></head></html>")
    }),
    tag: "ServerError",
    fields: { status: 502 }
  },
  {
    name: "UnknownError 418 without body",
    reason: new AiError.UnknownError({ http: http(418, "") }),
    tag: "BadRequest",
    fields: { status: 418 }
  },
  {
    name: "a Redacted Retry-After is parsed; a request id in metadata fills a missing header",
    reason: new AiError.RateLimitError({
      metadata: { openai: { requestId: "req_meta" } },
      http: http(429, "", { "Retry-After": Redacted.make("3") })
    }),
    tag: "RateLimited",
    fields: { retryAfterMs: 3000, requestId: "req_meta" }
  }
]

describe("LanguageModelAdapter errors", () => {
  for (const [group, rows] of [
    ["without http context", withoutHttp],
    ["with http context", withHttp]
  ] as const) {
    for (const row of rows) {
      it.effect(`${group}: ${row.name} -> ${row.tag}`, () =>
        Effect.gen(function* () {
          yield* TestClock.setTime(now)
          const { llm } = yield* adapter({ generate: () => Effect.fail(fail(row.reason)) })
          const error = failureOf(yield* Effect.exit(llm.complete(request)))
          assert.strictEqual(error._tag, row.tag)
          assert.isTrue(LlmError.isProviderError(error))
          assert.deepStrictEqual(pick(error, { provider: 0, model: 0 }), { provider: "openai", model: "gpt-5.4-mini" })
          if (row.fields !== undefined) assert.deepStrictEqual(pick(error, row.fields), row.fields)
          // the mapping is the same through the pure function
          const direct = LanguageModelAdapter.fromAiError(fail(row.reason), {
            provider: "openai",
            model: "gpt-5.4-mini",
            nowMillis: now
          })
          assert.strictEqual(direct._tag, row.tag)
          assert.notInclude(error.message, "sk-secret-123")
        })
      )
    }
  }

  it("Redacted header values and URL query strings never reach the error", () => {
    const secretHeaders = new AiError.InternalProviderError({
      description: "Server error",
      http: http(500, "", {
        "x-api-key": Redacted.make("sk-secret-123"),
        "x-request-id": Redacted.make("req-hidden")
      })
    })
    const e1 = LanguageModelAdapter.fromAiError(fail(secretHeaders), { nowMillis: 0 })
    assert.strictEqual(e1._tag, "ServerError")
    assert.isUndefined(e1.requestId)
    assert.notInclude(JSON.stringify(e1), "sk-secret-123")
    assert.notInclude(e1.message, "req-hidden")

    const e2 = LanguageModelAdapter.fromAiError(
      fail(
        new AiError.NetworkError({
          reason: "TransportError",
          method: "POST",
          url: "https://api.example.com/v1/chat?key=sk-secret-123#frag"
        })
      ),
      { nowMillis: 0 }
    )
    assert.include(e2.message, "https://api.example.com/v1/chat")
    assert.notInclude(e2.message, "sk-secret-123")
  })

  it("anything that is not an AiError maps to ServerError instead of throwing", () => {
    const e = LanguageModelAdapter.fromAiError({} as AiError.AiError, { provider: "p", nowMillis: 0 })
    assert.strictEqual(e._tag, "ServerError")
    assert.strictEqual(e.provider, "p")
  })
})

// ---------------------------------------------------------------------------------------------------------
// streams
// ---------------------------------------------------------------------------------------------------------

const delta = (text: string): Response.StreamPartEncoded => ({ type: "text-delta", id: "t", delta: text })

describe("LanguageModelAdapter.stream", () => {
  it.effect("text deltas become TextDelta chunks and the finish part becomes Finish, with usage and snapshot", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(now)
      const { llm } = yield* adapter({
        stream: () =>
          Stream.make<Array<Response.StreamPartEncoded>>(
            { type: "response-metadata", id: "resp_9", modelId: "gpt-5.4-mini-2026-03-17" },
            { type: "text-start", id: "t" },
            delta("Hel"),
            delta(""),
            delta("lo"),
            { type: "text-end", id: "t" },
            {
              type: "finish",
              reason: "stop",
              usage: { inputTokens: { total: 9, cacheRead: 4 }, outputTokens: { total: 2 } },
              response: { status: 200, headers: { "retry-after-ms": "250", "x-ratelimit-remaining-requests": "7" } }
            },
            delta("after the finish is ignored")
          )
      })
      const chunks = yield* Stream.runCollect(llm.stream(request))
      assert.deepStrictEqual(chunks, [
        { _tag: "TextDelta", text: "Hel" },
        { _tag: "TextDelta", text: "lo" },
        {
          _tag: "Finish",
          finishReason: "stop",
          usage: { inputTokens: 9, outputTokens: 2, cachedInputTokens: 4 },
          provider: "openai",
          model: "gpt-5.4-mini-2026-03-17",
          requestId: "resp_9",
          rateLimit: { retryAfterMs: 250, requests: { remaining: 7 } }
        }
      ])
    })
  )

  it.effect(
    "tool-params parts become ToolCallDelta chunks: the start names the call, the deltas carry its arguments",
    () =>
      Effect.gen(function* () {
        const start = (id: string, name: string, providerExecuted = false): Response.StreamPartEncoded => ({
          type: "tool-params-start",
          id,
          name,
          providerExecuted
        })
        const params = (id: string, d: string): Response.StreamPartEncoded => ({
          type: "tool-params-delta",
          id,
          delta: d
        })
        const end = (id: string): Response.StreamPartEncoded => ({ type: "tool-params-end", id })
        const { llm } = yield* adapter({
          stream: () =>
            Stream.make<Array<Response.StreamPartEncoded>>(
              delta("Let me look. "),
              start("c0", "weather"),
              params("c0", '{"city":'),
              // a search the provider runs itself is not the caller's to run
              start("ws", "web_search", true),
              params("ws", '{"q":"x"}'),
              end("ws"),
              start("c1", "time"),
              params("c0", '"Paris"}'),
              params("c1", ""),
              params("c1", '{"tz":"CET"}'),
              end("c0"),
              end("c1"),
              { type: "finish", reason: "tool-calls", usage: { inputTokens: { total: 5 }, outputTokens: { total: 9 } } }
            )
        })
        const chunks = yield* Stream.runCollect(llm.stream(request))
        assert.deepStrictEqual(
          chunks.filter((c) => c._tag !== "Finish"),
          [
            { _tag: "TextDelta", text: "Let me look. " },
            { _tag: "ToolCallDelta", index: 0, id: "c0", name: "weather", arguments: "" },
            { _tag: "ToolCallDelta", index: 0, arguments: '{"city":' },
            { _tag: "ToolCallDelta", index: 1, id: "c1", name: "time", arguments: "" },
            { _tag: "ToolCallDelta", index: 0, arguments: '"Paris"}' },
            { _tag: "ToolCallDelta", index: 1, arguments: '{"tz":"CET"}' }
          ]
        )
        const last = chunks[chunks.length - 1]
        assert.strictEqual(last._tag === "Finish" ? last.finishReason : last._tag, "tool_calls")
        // the pieces count as received chunks when the stream is cut
        const cut = yield* adapter({ stream: () => Stream.make(start("c0", "weather"), params("c0", "{")) })
        const error = failureOf(yield* Effect.exit(Stream.runCollect(cut.llm.stream(request))))
        assert.strictEqual((error as LlmError.StreamTruncated).receivedChunks, 2)
      })
  )

  it.effect("a stream that ends without a finish part fails with StreamTruncated after its chunks", () =>
    Effect.gen(function* () {
      const { llm } = yield* adapter({ stream: () => Stream.make(delta("a"), delta("b")) })
      const seen: Array<string> = []
      const exit = yield* Effect.exit(
        Stream.runForEach(llm.stream(request), (c) => Effect.sync(() => seen.push(c._tag)))
      )
      const error = failureOf(exit)
      assert.instanceOf(error, LlmError.StreamTruncated)
      assert.strictEqual((error as LlmError.StreamTruncated).receivedChunks, 2)
      assert.deepStrictEqual(seen, ["TextDelta", "TextDelta"])
      assert.isTrue(LlmError.isRetryable(error))
    })
  )

  it.effect("an empty stream is truncated too", () =>
    Effect.gen(function* () {
      const { llm } = yield* adapter({ stream: () => Stream.empty })
      const error = failureOf(yield* Effect.exit(Stream.runCollect(llm.stream(request))))
      assert.instanceOf(error, LlmError.StreamTruncated)
      assert.strictEqual((error as LlmError.StreamTruncated).receivedChunks, 0)
    })
  )

  it.effect("a transport failure after the first part is StreamTruncated; before any part, ConnectionError", () =>
    Effect.gen(function* () {
      const reset = fail(
        new AiError.NetworkError({
          reason: "TransportError",
          method: "POST",
          url: "https://x/v1",
          description: "ECONNRESET"
        })
      )
      const mid = yield* adapter({ stream: () => Stream.concat(Stream.make(delta("a")), Stream.fail(reset)) })
      const e1 = failureOf(yield* Effect.exit(Stream.runCollect(mid.llm.stream(request))))
      assert.instanceOf(e1, LlmError.StreamTruncated)
      assert.strictEqual((e1 as LlmError.StreamTruncated).receivedChunks, 1)

      const early = yield* adapter({ stream: () => Stream.fail(reset) })
      const e2 = failureOf(yield* Effect.exit(Stream.runCollect(early.llm.stream(request))))
      assert.instanceOf(e2, LlmError.ConnectionError)
    })
  )

  it.effect("a failure before the stream starts is classified (429 with http context)", () =>
    Effect.gen(function* () {
      const { llm } = yield* adapter({
        stream: () =>
          Stream.fail(
            fail(
              new AiError.RateLimitError({
                http: http(429, openaiBody("requests", "rate_limit_exceeded"), { "retry-after": "1" })
              })
            )
          )
      })
      const error = failureOf(yield* Effect.exit(Stream.runCollect(llm.stream(request))))
      assert.instanceOf(error, LlmError.RateLimited)
      assert.deepStrictEqual(pick(error, { limit: 0, retryAfterMs: 0, status: 0 }), {
        limit: "requests",
        retryAfterMs: 1000,
        status: 429
      })
    })
  )

  it.effect("an in-stream error part fails the stream: an AiError is mapped, anything else is StreamTruncated", () =>
    Effect.gen(function* () {
      const overloaded = fail(
        new AiError.InternalProviderError({
          description: "Overloaded",
          http: http(200, JSON.stringify({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } }))
        })
      )
      const a = yield* adapter({ stream: () => Stream.make(delta("a"), { type: "error", error: overloaded }) })
      const e1 = failureOf(yield* Effect.exit(Stream.runCollect(a.llm.stream(request))))
      assert.instanceOf(e1, LlmError.Overloaded)

      const b = yield* adapter({ stream: () => Stream.make(delta("a"), { type: "error", error: "boom" }) })
      const e2 = failureOf(yield* Effect.exit(Stream.runCollect(b.llm.stream(request))))
      assert.instanceOf(e2, LlmError.StreamTruncated)
      assert.strictEqual((e2 as LlmError.StreamTruncated).receivedChunks, 1)
    })
  )
})

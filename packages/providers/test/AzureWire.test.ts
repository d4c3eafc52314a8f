/**
 * The Azure OpenAI provider on replayed payloads: deployment URLs and the api-key header, streams with
 * content-filter results, filtered output, Azure error bodies and retry headers; the new providers
 * configuration from the environment; then fuzzed streams.
 */
import { assert, describe, it } from "@effect/vitest"
import type { LlmError } from "@llm-resilience/core"
import { ConfigProvider, Effect, Redacted } from "effect"
import { HttpClient } from "effect/http"
import { AzureOpenAiProvider, GeminiProvider, OpenAiResponsesProvider } from "../src/index.ts"
import {
  apiKey,
  secret,
  type Seen,
  replayClient,
  azure,
  request,
  call,
  streamed,
  ok,
  failure,
  textOf,
  finishOf,
  sse,
  fuzzStreams
} from "./support/replay.ts"

const filters = { hate: { filtered: false, severity: "safe" }, violence: { filtered: false, severity: "safe" } }
const azureChunk = (delta: object, finish: string | null, extra: object = {}) => ({
  id: "chatcmpl-1",
  object: "chat.completion.chunk",
  created: 1,
  model: "gpt-4o-2024-11-20",
  choices: [{ index: 0, delta, finish_reason: finish, content_filter_results: finish === null ? filters : {} }],
  ...extra
})
const promptFilterChunk = {
  id: "",
  object: "",
  created: 0,
  model: "",
  choices: [],
  prompt_filter_results: [{ prompt_index: 0, content_filter_results: filters }]
}
const azureUsage = {
  id: "chatcmpl-1",
  object: "chat.completion.chunk",
  model: "gpt-4o-2024-11-20",
  choices: [],
  usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 }
}

describe("Azure OpenAI", () => {
  it.effect("the deployment and api-version in the URL, the key in api-key (redacted), not Authorization", () =>
    Effect.gen(function* () {
      const reply = { body: sse([promptFilterChunk, azureChunk({ content: "ok" }, "stop"), "[DONE]"]) }
      const byModel = (yield* streamed(azure(), reply)).seen[0]
      assert.strictEqual(
        byModel.url,
        "https://res.openai.azure.com/openai/deployments/m-1/chat/completions?api-version=2024-10-21"
      )
      assert.strictEqual(byModel.headers["api-key"], secret)
      assert.isUndefined(byModel.headers.authorization)
      assert.include(byModel.redacted, "api-key")
      const fixed = (yield* streamed(azure({ deployment: "eu deploy", apiVersion: "2025-04-01-preview" }), reply))
        .seen[0]
      assert.strictEqual(
        fixed.url,
        "https://res.openai.azure.com/openai/deployments/eu%20deploy/chat/completions?api-version=2025-04-01-preview"
      )
      const entra = (yield* streamed(azure({ authHeader: "bearer" }), reply)).seen[0]
      assert.deepStrictEqual([entra.headers.authorization, entra.headers["api-key"]], [`Bearer ${secret}`, undefined])
    })
  )

  it.effect("a documented stream: the prompt-filter chunk is skipped, usage from the last chunk, then [DONE]", () =>
    Effect.gen(function* () {
      const body = sse([
        promptFilterChunk,
        azureChunk({ role: "assistant", content: "" }, null),
        azureChunk({ content: "Hello" }, null),
        azureChunk({ content: "!" }, null),
        azureChunk({}, "stop"),
        azureUsage,
        "[DONE]"
      ])
      const chunks = ok((yield* streamed(azure(), { body, headers: { "apim-request-id": "apim-1" } })).exit)
      const finish = finishOf(chunks)
      assert.deepStrictEqual(
        [textOf(chunks), finish.finishReason, finish.model, finish.requestId],
        ["Hello!", "stop", "gpt-4o-2024-11-20", "apim-1"]
      )
      assert.deepStrictEqual(finish.usage, { inputTokens: 9, outputTokens: 3 })
    })
  )

  it.effect("filtered output: finish_reason content_filter, whole and streamed", () =>
    Effect.gen(function* () {
      const body = sse([
        promptFilterChunk,
        azureChunk({ content: "Some" }, null),
        azureChunk({}, "content_filter", {
          choices: [
            {
              index: 0,
              delta: {},
              finish_reason: "content_filter",
              content_filter_results: { violence: { filtered: true, severity: "high" } }
            }
          ]
        }),
        "[DONE]"
      ])
      assert.strictEqual(finishOf(ok((yield* streamed(azure(), { body })).exit)).finishReason, "content_filter")
      const whole = {
        id: "c",
        object: "chat.completion",
        model: "gpt-4o",
        prompt_filter_results: [],
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: null },
            finish_reason: "content_filter",
            content_filter_results: { violence: { filtered: true, severity: "high" } }
          }
        ],
        usage: { prompt_tokens: 5, completion_tokens: 0 }
      }
      const r = ok((yield* call(azure(), { body: JSON.stringify(whole) })).exit)
      assert.deepStrictEqual([r.text, r.finishReason], ["", "content_filter"])
    })
  )

  it.effect("errors: a filtered prompt, the rate limit with Azure's retry headers, the key never in the error", () =>
    Effect.gen(function* () {
      const filtered = {
        error: {
          message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
          type: null,
          param: "prompt",
          code: "content_filter",
          status: 400,
          innererror: {
            code: "ResponsibleAIPolicyViolation",
            content_filter_result: { hate: { filtered: true, severity: "high" } }
          }
        }
      }
      assert.strictEqual(
        failure((yield* call(azure(), { status: 400, body: JSON.stringify(filtered) })).exit)._tag,
        "ContentFiltered"
      )
      const limited = {
        error: {
          code: "429",
          message: `Requests to the ChatCompletions_Create Operation have exceeded token rate limit. Please retry after 30 seconds. (key ${secret})`
        }
      }
      const e = failure(
        (yield* call(azure(), {
          status: 429,
          body: JSON.stringify(limited),
          headers: { "x-ms-retry-after-ms": "1250", "x-ratelimit-remaining-tokens": "0" }
        })).exit
      ) as LlmError.RateLimited
      assert.deepStrictEqual(
        [e._tag, e.retryAfterMs, e.limit, e.rateLimit?.tokens?.remaining],
        ["RateLimited", 1250, "tokens", 0]
      )
      assert.notInclude(JSON.stringify(e), secret)
    })
  )
})

describe("configuration", () => {
  const env = (vars: Record<string, string>) =>
    Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromUnknown(vars))
  const client = replayClient({ body: "{}" }, [])
  const withClient = Effect.provideService(HttpClient.HttpClient, client)

  it.effect("keys and endpoints come from GEMINI_* / AZURE_OPENAI_* / OPENAI_* when not passed", () =>
    Effect.gen(function* () {
      const seen: Array<Seen> = []
      const recording = Effect.provideService(HttpClient.HttpClient, replayClient({ body: "{}" }, seen))
      const vars = {
        GEMINI_API_KEY: secret,
        AZURE_OPENAI_API_KEY: secret,
        AZURE_OPENAI_ENDPOINT: "https://eu.openai.azure.com",
        OPENAI_API_KEY: secret
      }
      yield* Effect.exit((yield* GeminiProvider.make().pipe(env(vars), recording)).complete(request))
      yield* Effect.exit((yield* AzureOpenAiProvider.make().pipe(env(vars), recording)).complete(request))
      yield* Effect.exit((yield* OpenAiResponsesProvider.make().pipe(env(vars), recording)).complete(request))
      assert.deepStrictEqual(
        seen.map((r) => r.url),
        [
          "https://generativelanguage.googleapis.com/v1beta/models/m-1:generateContent",
          "https://eu.openai.azure.com/openai/deployments/m-1/chat/completions?api-version=2024-10-21",
          "https://api.openai.com/v1/responses"
        ]
      )
    })
  )

  it.effect("a missing key or Azure endpoint is a ConfigError; invalid options a SchemaError naming the field", () =>
    Effect.gen(function* () {
      assert.strictEqual((yield* Effect.flip(GeminiProvider.make().pipe(env({}), withClient)))._tag, "ConfigError")
      const noEndpoint = yield* Effect.flip(AzureOpenAiProvider.make({ apiKey }).pipe(env({}), withClient))
      assert.strictEqual(noEndpoint._tag, "ConfigError")
      const bad = yield* Effect.flip(AzureOpenAiProvider.make({ apiKey, endpoint: "not a url" }).pipe(withClient))
      assert.include(bad.message, "endpoint")
      const caps = yield* Effect.flip(GeminiProvider.make({ apiKey, maxEventBytes: 0 }).pipe(withClient))
      assert.include(caps.message, "maxEventBytes")
      const plain = yield* Effect.flip(
        OpenAiResponsesProvider.make({ apiKey: secret as unknown as Redacted.Redacted<string> }).pipe(withClient)
      )
      assert.notInclude(plain.message, secret)
    })
  )
})

describe("fuzzed", () => {
  fuzzStreams(
    "azure",
    azure(),
    [promptFilterChunk, azureChunk({ content: "Hi" }, null), azureChunk({}, "stop"), azureUsage, "[DONE]"],
    (f) => sse(f)
  )
})

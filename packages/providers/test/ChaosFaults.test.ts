/**
 * Integration over real sockets: every provider (OpenAI Chat Completions and Responses, Azure OpenAI,
 * Anthropic, Gemini), non-streaming and streaming, against every fault of the chaos server, each ending in
 * the expected typed error.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, layer } from "@effect/vitest"
import { type LlmError, type LlmProvider, type LlmRequest, type LlmResponse, Timeouts } from "@llm-resilience/core"
import { ChaosServer } from "@llm-resilience/testing"
import { Clock, Effect, Exit, Layer, Redacted, Result, Stream } from "effect"
import {
  AnthropicProvider,
  AzureOpenAiProvider,
  GeminiProvider,
  OpenAiProvider,
  OpenAiResponsesProvider
} from "../src/index.ts"

const apiKey = Redacted.make("sk-chaos-test-0123456789abcdef")

const TestLayer = Layer.mergeAll(
  ChaosServer.layer({
    apiKey: Redacted.value(apiKey),
    stallMs: 300,
    slowHeadersMs: 100,
    keepAliveIntervalMs: 50,
    retryAfterSeconds: 2
  }),
  NodeHttpClient.layerUndici
)

const request: LlmRequest.LlmRequest = {
  model: "chaos-model",
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Say hello" }
  ]
}

type Service = LlmProvider.LlmProvider["Service"]
type Outcome =
  | { readonly ok: true; readonly chunks: ReadonlyArray<LlmResponse.StreamChunk> | undefined }
  | { readonly ok: false; readonly error: LlmError.LlmError }

const providersFor = (fault: ChaosServer.Fault) =>
  Effect.gen(function* () {
    const chaos = yield* ChaosServer.ChaosServer
    const openai = yield* OpenAiProvider.make({ apiKey, baseUrl: chaos.openAiBaseUrl(fault) })
    const anthropic = yield* AnthropicProvider.make({ apiKey, baseUrl: chaos.anthropicBaseUrl(fault) })
    const responses = yield* OpenAiResponsesProvider.make({ apiKey, baseUrl: chaos.openAiBaseUrl(fault) })
    const azure = yield* AzureOpenAiProvider.make({ apiKey, endpoint: chaos.azureEndpoint(fault) })
    const gemini = yield* GeminiProvider.make({ apiKey, baseUrl: chaos.geminiBaseUrl(fault) })
    return { openai, anthropic, responses, azure, gemini }
  })

type Name = "openai" | "anthropic" | "responses" | "azure" | "gemini"
const names: ReadonlyArray<Name> = ["openai", "anthropic", "responses", "azure", "gemini"]

const toOutcome = <A>(
  result: Result.Result<A, LlmError.LlmError>,
  chunks: (a: A) => ReadonlyArray<LlmResponse.StreamChunk> | undefined
): Outcome =>
  Result.isSuccess(result) ? { ok: true, chunks: chunks(result.success) } : { ok: false, error: result.failure }

const viaComplete = (p: Service): Effect.Effect<Outcome> =>
  Effect.map(Effect.result(p.complete(request)), (r) => toOutcome(r, () => undefined))

const viaStream = (p: Service): Effect.Effect<Outcome> =>
  Effect.map(Effect.result(Stream.runCollect(p.stream(request))), (r) => toOutcome(r, (chunks) => chunks))

interface Expected {
  /** An error tag, or `success`. */
  readonly tag: string
  readonly status?: number
}

const success: Expected = { tag: "success" }

const expectOutcome = (outcome: Outcome, expected: Expected, label: string): void => {
  if (expected.tag === "success") {
    if (!outcome.ok) assert.fail(`${label}: expected success, got ${outcome.error._tag}`)
    const chunks = outcome.chunks
    if (chunks !== undefined) assert.strictEqual(chunks[chunks.length - 1]._tag, "Finish", label)
    return
  }
  if (outcome.ok) assert.fail(`${label}: expected ${expected.tag}, got success`)
  const error = outcome.error
  assert.strictEqual(error._tag, expected.tag, `${label}: ${error._tag}: ${"message" in error ? error.message : ""}`)
  if (expected.status !== undefined) assert.strictEqual((error as { status?: number }).status, expected.status, label)
  if ("provider" in error) {
    assert.include(["openai", "anthropic", "azure-openai", "gemini"], error.provider as string, label)
  }
}

type PerProvider = Readonly<Record<Name, Expected>>

interface Row {
  readonly complete: PerProvider
  readonly stream: PerProvider
}

/** The same expectation for every provider, but for `overrides`. */
const both = (e: Expected, overrides: Partial<PerProvider> = {}): PerProvider => ({
  openai: e,
  anthropic: e,
  responses: e,
  azure: e,
  gemini: e,
  ...overrides
})
const all = (e: Expected, overrides: Partial<PerProvider> = {}): Row => ({
  complete: both(e, overrides),
  stream: both(e, overrides)
})

const table: Partial<Record<ChaosServer.Fault, Row>> = {
  "rate-limit": all({ tag: "RateLimited", status: 429 }),
  "rate-limit-no-retry-after": all({ tag: "RateLimited", status: 429 }),
  "insufficient-quota": all({ tag: "QuotaExhausted", status: 429 }),
  // Azure's capacity 429 says "experiencing high demand"
  overloaded: all(
    { tag: "Overloaded", status: 503 },
    { anthropic: { tag: "Overloaded", status: 529 }, azure: { tag: "Overloaded", status: 429 } }
  ),
  "server-error": all({ tag: "ServerError", status: 500 }),
  "bad-gateway": all({ tag: "ServerError", status: 502 }),
  "service-unavailable": all({ tag: "Overloaded", status: 503 }),
  // Gemini answers a bad key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID
  authentication: all({ tag: "Authentication", status: 401 }, { gemini: { tag: "Authentication", status: 400 } }),
  "permission-denied": all({ tag: "PermissionDenied", status: 403 }),
  "model-not-found": all({ tag: "ModelNotFound", status: 404 }),
  "bad-request": all({ tag: "BadRequest", status: 400 }),
  "context-length": all({ tag: "ContextLengthExceeded", status: 400 }),
  // Gemini answers a blocked prompt: no text, finish reason content_filter
  "content-filter": all({ tag: "ContentFiltered", status: 400 }, { gemini: success }),
  // these requests end with the user's turn: a normal answer
  "prefill-rejected": all(success),
  "connection-reset": all({ tag: "ConnectionError" }),
  // not a byte for stallMs, then the connection drops
  "no-response": all({ tag: "ConnectionError" }),
  "slow-first-token": all(success),
  // headers come at once, then silence, then the connection drops: mid-body for `complete`, before the
  // first event for `stream`
  "stall-first-byte": {
    complete: both({ tag: "ConnectionError", status: 200 }),
    stream: both({ tag: "StreamTruncated", status: 200 })
  },
  "stall-mid-stream": {
    complete: both({ tag: "ConnectionError", status: 200 }),
    stream: both({ tag: "StreamTruncated", status: 200 })
  },
  "truncated-stream": {
    complete: both({ tag: "ConnectionError", status: 200 }),
    stream: both({ tag: "StreamTruncated", status: 200 })
  },
  "stream-error": {
    complete: both(
      { tag: "ServerError", status: 500 },
      { anthropic: { tag: "Overloaded", status: 529 }, gemini: { tag: "Overloaded", status: 503 } }
    ),
    // the error event arrives inside an HTTP 200 stream
    stream: both(
      { tag: "ServerError", status: 200 },
      { anthropic: { tag: "Overloaded", status: 200 }, gemini: { tag: "Overloaded", status: 200 } }
    )
  },
  // a whole body that is not JSON fails; one malformed event in a good stream is skipped
  "malformed-json": { complete: both({ tag: "ServerError", status: 200 }), stream: both(success) },
  // the finish reason (and usage) arrived, then a clean close: complete without the marker
  "no-end-marker": all(success),
  refusal: all(success),
  "keep-alive-only": {
    complete: both({ tag: "ServerError", status: 200 }),
    stream: both({ tag: "StreamTruncated", status: 200 })
  },
  "wrong-content-type": all({ tag: "ServerError", status: 200 }),
  "huge-body": all({ tag: "ServerError", status: 200 }),
  "garbage-headers": all({ tag: "RateLimited", status: 429 })
}

const runRow = (fault: ChaosServer.Fault, row: Row) =>
  Effect.gen(function* () {
    const providers = yield* providersFor(fault)
    for (const name of names) {
      expectOutcome(yield* viaComplete(providers[name]), row.complete[name], `${fault} ${name} complete`)
      expectOutcome(yield* viaStream(providers[name]), row.stream[name], `${fault} ${name} stream`)
    }
  })

layer(TestLayer, { excludeTestServices: true })("providers against every chaos fault", (it) => {
  it.effect("the table covers every fault", () =>
    Effect.sync(() => {
      const covered = new Set([...Object.keys(table), "slow-headers"])
      for (const fault of ChaosServer.faults) assert.isTrue(covered.has(fault), `no integration test for ${fault}`)
    })
  )

  for (const [fault, row] of Object.entries(table) as Array<[ChaosServer.Fault, Row]>) {
    it.effect(`${fault} -> ${row.complete.openai.tag} / ${row.stream.openai.tag}`, () => runRow(fault, row))
  }

  describe("fault details", () => {
    it.effect("rate-limit keeps retry-after, the limit, the request id and the snapshot", () =>
      Effect.gen(function* () {
        const providers = yield* providersFor("rate-limit")
        // Azure's 429 names the token rate limit; Gemini's QuotaFailure a requests-per-minute quota, its wait
        // is RetryInfo's and it sends no request id or rate-limit headers
        const limits = {
          openai: "requests",
          anthropic: "requests",
          responses: "requests",
          azure: "tokens",
          gemini: "requests"
        }
        for (const name of names) {
          const e = (yield* Effect.flip(providers[name].complete(request))) as LlmError.RateLimited
          assert.strictEqual(e._tag, "RateLimited", name)
          assert.strictEqual(e.retryAfterMs, 2000, name)
          assert.strictEqual(e.limit, limits[name], name)
          assert.strictEqual(e.model, "chaos-model", name)
          if (name === "gemini") {
            assert.isUndefined(e.requestId)
            assert.deepStrictEqual(e.rateLimit, { retryAfterMs: 2000 })
          } else {
            assert.match(e.requestId ?? "", /^req_chaos_\d+$/, name)
            assert.strictEqual(e.rateLimit?.requests?.remaining, 0, name)
          }
        }
      })
    )

    it.effect("insufficient-quota: a per-day Gemini quota is QuotaExhausted with its reset", () =>
      Effect.gen(function* () {
        const { gemini } = yield* providersFor("insufficient-quota")
        const before = yield* Clock.currentTimeMillis
        const e = (yield* Effect.flip(gemini.complete(request))) as LlmError.QuotaExhausted
        const after = yield* Clock.currentTimeMillis
        assert.strictEqual(e._tag, "QuotaExhausted")
        // RetryInfo's 43200s, from when the answer came
        assert.isAtLeast(e.resetAt ?? 0, before + 43_200_000)
        assert.isAtMost(e.resetAt ?? 0, after + 43_200_000)
      })
    )

    it.effect("refusals and safety blocks finish with content_filter, whole and streamed", () =>
      Effect.gen(function* () {
        const providers = yield* providersFor("refusal")
        // OpenAI, Responses and Anthropic refuse in words; Azure's filter and Gemini's SAFETY stop with no text
        const refuses = { openai: true, anthropic: true, responses: true, azure: false, gemini: false }
        for (const name of names) {
          const r = yield* providers[name].complete(request)
          assert.strictEqual(r.finishReason, "content_filter", name)
          assert.strictEqual(r.text.length > 0, refuses[name], name)
          const chunks = yield* Stream.runCollect(providers[name].stream(request))
          const last = chunks[chunks.length - 1]
          assert.strictEqual(last._tag === "Finish" ? last.finishReason : last._tag, "content_filter", name)
          const text = chunks.map((c) => (c._tag === "TextDelta" ? c.text : "")).join("")
          assert.strictEqual(text, r.text, name)
        }
      })
    )

    it.effect("usage and the answer agree between complete and stream for every provider", () =>
      Effect.gen(function* () {
        const providers = yield* providersFor("no-end-marker")
        for (const name of names) {
          const r = yield* providers[name].complete(request)
          assert.strictEqual(r.text, "Hello from the chaos server. Every byte of this answer arrived.", name)
          assert.isAbove(r.usage.inputTokens, 0, name)
          assert.strictEqual(r.usage.outputTokens, 11, name)
          const chunks = yield* Stream.runCollect(providers[name].stream(request))
          const last = chunks[chunks.length - 1]
          assert.strictEqual(last._tag, "Finish", name)
          if (last._tag === "Finish") {
            assert.deepStrictEqual(last.usage, r.usage, name)
            assert.strictEqual(last.finishReason, "stop", name)
          }
        }
      })
    )

    it.effect("stall-mid-stream and truncated-stream report the chunks that did arrive", () =>
      Effect.gen(function* () {
        for (const fault of ["stall-mid-stream", "truncated-stream"] as const) {
          const providers = yield* providersFor(fault)
          for (const name of names) {
            const p = providers[name]
            const e = (yield* Effect.flip(Stream.runCollect(p.stream(request)))) as LlmError.StreamTruncated
            assert.strictEqual(e._tag, "StreamTruncated")
            assert.isAbove(e.receivedChunks, 0)
          }
        }
      })
    )

    it.effect("a truncated stream delivers its text deltas but never a Finish", () =>
      Effect.gen(function* () {
        const { openai } = yield* providersFor("truncated-stream")
        const seen: Array<string> = []
        const exit = yield* Effect.exit(
          Stream.runForEach(openai.stream(request), (c) => Effect.sync(() => seen.push(c._tag)))
        )
        assert.isTrue(Exit.isFailure(exit))
        assert.isAbove(seen.length, 0)
        assert.notInclude(seen, "Finish")
      })
    )

    it.effect("garbage rate-limit headers never become NaN or crash the classifier", () =>
      Effect.gen(function* () {
        const providers = yield* providersFor("garbage-headers")
        for (const name of names) {
          const e = (yield* Effect.flip(providers[name].complete(request))) as LlmError.RateLimited
          assert.strictEqual(e._tag, "RateLimited")
          // Azure's body says "Please retry after 2 seconds", Gemini's RetryInfo says 2s: those still count
          if (name === "azure" || name === "gemini") assert.strictEqual(e.retryAfterMs, 2000, name)
          else assert.isUndefined(e.retryAfterMs, name)
          const numbers = JSON.stringify(e.rateLimit ?? {}).match(/-?\d+(\.\d+)?/g) ?? []
          assert.notInclude(JSON.stringify(e.rateLimit ?? {}), "null")
          for (const n of numbers) assert.isTrue(Number.isFinite(Number(n)))
        }
      })
    )

    it.effect("huge-body is capped: the error names the cap", () =>
      Effect.gen(function* () {
        const { openai } = yield* providersFor("huge-body")
        const e = yield* Effect.flip(openai.complete(request))
        assert.match((e as LlmError.ServerError).message, /exceeds 8388608 bytes/)
        const s = yield* Effect.flip(Stream.runCollect(openai.stream(request)))
        assert.match((s as LlmError.ServerError).message, /exceeds 1048576 bytes/)
      })
    )

    it.effect("rate-limit-no-retry-after gives no wait to follow", () =>
      Effect.gen(function* () {
        const providers = yield* providersFor("rate-limit-no-retry-after")
        for (const name of ["openai", "anthropic", "responses"] as const) {
          const e = (yield* Effect.flip(providers[name].complete(request))) as LlmError.RateLimited
          assert.strictEqual(e._tag, "RateLimited", name)
          assert.isUndefined(e.retryAfterMs, name)
          assert.isUndefined(e.rateLimit?.requests, name)
        }
      })
    )

    it.effect("prefill-rejected refuses only a conversation that ends with the assistant's turn", () =>
      Effect.gen(function* () {
        const providers = yield* providersFor("prefill-rejected")
        const prefilled = { ...request, messages: [...request.messages, { role: "assistant" as const, content: "He" }] }
        for (const name of names) {
          const e = yield* Effect.flip(Stream.runCollect(providers[name].stream(prefilled)))
          assert.strictEqual(e._tag, "BadRequest", name)
          assert.match((e as LlmError.BadRequest).message, /prefill/, name)
          const r = yield* providers[name].complete(request)
          assert.strictEqual(r.finishReason, "stop", name)
        }
      })
    )

    it.effect("partialChunks sets how much of the answer a partial stream sends", () =>
      Effect.gen(function* () {
        const chaos = yield* ChaosServer.make({ apiKey: Redacted.value(apiKey), partialChunks: 3 })
        const openai = yield* OpenAiProvider.make({ apiKey, baseUrl: chaos.openAiBaseUrl("truncated-stream") })
        const seen: Array<string> = []
        const e = yield* Effect.flip(
          Stream.runForEach(openai.stream(request), (c) => Effect.sync(() => seen.push(c._tag)))
        )
        assert.strictEqual(e._tag, "StreamTruncated")
        assert.deepStrictEqual(seen, ["TextDelta", "TextDelta", "TextDelta"])
      }).pipe(Effect.scoped)
    )

    it.effect("slow-headers still answers, whole and streamed", () =>
      Effect.gen(function* () {
        const providers = yield* providersFor("slow-headers")
        const slowToken = yield* providersFor("slow-first-token")
        for (const p of names.flatMap((name) => [providers[name], slowToken[name]])) {
          const r = yield* p.complete(request)
          assert.strictEqual(r.finishReason, "stop")
          const chunks = yield* Stream.runCollect(p.stream(request))
          assert.strictEqual(chunks[chunks.length - 1]._tag, "Finish")
        }
      })
    )

    it.effect("with the core timeout stage, stalls end in Timeout of the right phase", () =>
      Effect.gen(function* () {
        // the idle case waits as long as it takes for the first chunk: on a loaded machine it can come later
        // than 100 ms, which would be a first-token timeout instead
        const byPhase = {
          "first-token": yield* Timeouts.make({ totalMs: 5_000, firstTokenMs: 100, idleMs: 100 }),
          idle: yield* Timeouts.make({ totalMs: 5_000, firstTokenMs: 5_000, idleMs: 100 })
        }
        const expectations = [
          ["stall-first-byte", "first-token"],
          ["keep-alive-only", "first-token"],
          ["no-response", "first-token"],
          ["slow-first-token", "first-token"],
          ["stall-mid-stream", "idle"]
        ] as const
        for (const [fault, phase] of expectations) {
          const providers = yield* providersFor(fault)
          for (const p of names.map((name) => providers[name])) {
            const e = yield* Effect.flip(Stream.runCollect(byPhase[phase].wrap(p).stream(request)))
            assert.strictEqual(e._tag, "Timeout", `${fault} ${p.name}`)
            assert.strictEqual((e as LlmError.Timeout).phase, phase, `${fault} ${p.name}`)
          }
        }
      })
    )
  })
})

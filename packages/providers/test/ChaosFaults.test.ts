/**
 * Integration over real sockets: both providers, non-streaming and streaming, against every fault of the
 * chaos server, each ending in the expected typed error.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, layer } from "@effect/vitest"
import { type LlmError, type LlmProvider, type LlmRequest, type LlmResponse, Timeouts } from "@llm-resilience/core"
import { ChaosServer } from "@llm-resilience/testing"
import { Effect, Exit, Layer, Redacted, Result, Stream } from "effect"
import { AnthropicProvider, OpenAiProvider } from "../src/index.ts"

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
    return { openai, anthropic }
  })

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
  if ("provider" in error) assert.include(["openai", "anthropic"], error.provider as string, label)
}

interface Row {
  readonly complete: { readonly openai: Expected; readonly anthropic: Expected }
  readonly stream: { readonly openai: Expected; readonly anthropic: Expected }
}

const both = (e: Expected) => ({ openai: e, anthropic: e })
const all = (e: Expected): Row => ({ complete: both(e), stream: both(e) })

const table: Partial<Record<ChaosServer.Fault, Row>> = {
  "rate-limit": all({ tag: "RateLimited", status: 429 }),
  "insufficient-quota": all({ tag: "QuotaExhausted", status: 429 }),
  overloaded: {
    complete: { openai: { tag: "Overloaded", status: 503 }, anthropic: { tag: "Overloaded", status: 529 } },
    stream: { openai: { tag: "Overloaded", status: 503 }, anthropic: { tag: "Overloaded", status: 529 } }
  },
  "server-error": all({ tag: "ServerError", status: 500 }),
  "bad-gateway": all({ tag: "ServerError", status: 502 }),
  "service-unavailable": all({ tag: "Overloaded", status: 503 }),
  authentication: all({ tag: "Authentication", status: 401 }),
  "permission-denied": all({ tag: "PermissionDenied", status: 403 }),
  "model-not-found": all({ tag: "ModelNotFound", status: 404 }),
  "bad-request": all({ tag: "BadRequest", status: 400 }),
  "context-length": all({ tag: "ContextLengthExceeded", status: 400 }),
  "connection-reset": all({ tag: "ConnectionError" }),
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
    complete: { openai: { tag: "ServerError", status: 500 }, anthropic: { tag: "Overloaded", status: 529 } },
    // the error event arrives inside an HTTP 200 stream
    stream: { openai: { tag: "ServerError", status: 200 }, anthropic: { tag: "Overloaded", status: 200 } }
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
    const { anthropic, openai } = yield* providersFor(fault)
    expectOutcome(yield* viaComplete(openai), row.complete.openai, `${fault} openai complete`)
    expectOutcome(yield* viaComplete(anthropic), row.complete.anthropic, `${fault} anthropic complete`)
    expectOutcome(yield* viaStream(openai), row.stream.openai, `${fault} openai stream`)
    expectOutcome(yield* viaStream(anthropic), row.stream.anthropic, `${fault} anthropic stream`)
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
        const { anthropic, openai } = yield* providersFor("rate-limit")
        for (const p of [openai, anthropic]) {
          const e = (yield* Effect.flip(p.complete(request))) as LlmError.RateLimited
          assert.strictEqual(e._tag, "RateLimited")
          assert.strictEqual(e.retryAfterMs, 2000)
          assert.strictEqual(e.limit, "requests")
          assert.match(e.requestId ?? "", /^req_chaos_\d+$/)
          assert.strictEqual(e.rateLimit?.requests?.remaining, 0)
          assert.strictEqual(e.model, "chaos-model")
        }
      })
    )

    it.effect("stall-mid-stream and truncated-stream report the chunks that did arrive", () =>
      Effect.gen(function* () {
        for (const fault of ["stall-mid-stream", "truncated-stream"] as const) {
          const { anthropic, openai } = yield* providersFor(fault)
          for (const p of [openai, anthropic]) {
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
        const { anthropic, openai } = yield* providersFor("garbage-headers")
        for (const p of [openai, anthropic]) {
          const e = (yield* Effect.flip(p.complete(request))) as LlmError.RateLimited
          assert.strictEqual(e._tag, "RateLimited")
          assert.isUndefined(e.retryAfterMs)
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

    it.effect("slow-headers still answers, whole and streamed", () =>
      Effect.gen(function* () {
        const { anthropic, openai } = yield* providersFor("slow-headers")
        for (const p of [openai, anthropic]) {
          const r = yield* p.complete(request)
          assert.strictEqual(r.finishReason, "stop")
          const chunks = yield* Stream.runCollect(p.stream(request))
          assert.strictEqual(chunks[chunks.length - 1]._tag, "Finish")
        }
      })
    )

    it.effect("with the core timeout stage, stalls end in Timeout of the right phase", () =>
      Effect.gen(function* () {
        const timeouts = yield* Timeouts.make({ totalMs: 5_000, firstTokenMs: 100, idleMs: 100 })
        const expectations = [
          ["stall-first-byte", "first-token"],
          ["keep-alive-only", "first-token"],
          ["stall-mid-stream", "idle"]
        ] as const
        for (const [fault, phase] of expectations) {
          const { anthropic, openai } = yield* providersFor(fault)
          for (const p of [openai, anthropic]) {
            const e = yield* Effect.flip(Stream.runCollect(timeouts.wrap(p).stream(request)))
            assert.strictEqual(e._tag, "Timeout", `${fault} ${p.name}`)
            assert.strictEqual((e as LlmError.Timeout).phase, phase, `${fault} ${p.name}`)
          }
        }
      })
    )
  })
})

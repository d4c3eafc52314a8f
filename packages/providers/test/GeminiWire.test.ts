/**
 * The Gemini provider on replayed payloads: generateContent and streamGenerateContent URLs, the
 * x-goog-api-key header, documented bodies and SSE streams, safety blocks, cuts, mid-stream errors and
 * RetryInfo; then fuzzed streams.
 */
import { assert, describe, it } from "@effect/vitest"
import type { LlmError, LlmResponse } from "@llm-resilience/core"
import { Effect } from "effect"
import {
  secret,
  gemini,
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

const geminiUsage = { promptTokenCount: 9, candidatesTokenCount: 23, totalTokenCount: 217, thoughtsTokenCount: 185 }
const candidate = (parts: ReadonlyArray<object> | undefined, finishReason?: string) => ({
  candidates: [
    {
      ...(parts === undefined ? {} : { content: { parts, role: "model" } }),
      ...(finishReason === undefined ? {} : { finishReason }),
      index: 0
    }
  ],
  usageMetadata: geminiUsage,
  modelVersion: "gemini-3-pro-preview",
  responseId: "r1"
})

describe("Gemini", () => {
  it.effect(
    "generateContent and streamGenerateContent?alt=sse URLs, the key in x-goog-api-key, the documented body",
    () =>
      Effect.gen(function* () {
        const whole = yield* call(gemini, {
          body: JSON.stringify(candidate([{ text: "thinking...", thought: true }, { text: "Three." }], "STOP"))
        })
        const r = ok(whole.exit)
        assert.deepStrictEqual([r.text, r.finishReason, r.model], ["Three.", "stop", "gemini-3-pro-preview"])
        assert.deepStrictEqual(r.usage, { inputTokens: 9, outputTokens: 208 })
        const seen = whole.seen[0]
        assert.strictEqual(seen.url, "https://gl.test/v1beta/models/m-1:generateContent")
        assert.strictEqual(seen.headers["x-goog-api-key"], secret)
        assert.include(seen.redacted, "x-goog-api-key")
        assert.deepStrictEqual(seen.body, {
          contents: [
            { role: "user", parts: [{ text: "Hi" }] },
            { role: "model", parts: [{ text: "Hello." }] },
            { role: "user", parts: [{ text: "Again" }] }
          ],
          systemInstruction: { parts: [{ text: "Be brief." }] },
          generationConfig: { maxOutputTokens: 64, temperature: 0.5 }
        })
        const tuned = yield* streamed(
          gemini,
          { body: sse([candidate([{ text: "x" }], "STOP")]) },
          { ...request, model: "tunedModels/my model" }
        )
        assert.strictEqual(
          tuned.seen[0].url,
          "https://gl.test/v1beta/tunedModels/my%20model:streamGenerateContent?alt=sse"
        )
      })
  )

  it.effect("a documented stream (CRLF separators): text deltas, the finish on the last chunk, its usage", () =>
    Effect.gen(function* () {
      const body = sse(
        [
          candidate([{ text: "There are **3**" }]),
          candidate([{ text: ' "r"s in strawberry.' }]),
          candidate([{ text: "", thoughtSignature: "EqsF" }], "STOP")
        ],
        "\r\n\r\n"
      )
      const chunks = ok((yield* streamed(gemini, { body })).exit)
      const finish = finishOf(chunks)
      assert.deepStrictEqual(
        [textOf(chunks), finish.finishReason, finish.usage.outputTokens],
        ['There are **3** "r"s in strawberry.', "stop", 208]
      )
    })
  )

  it.effect(
    "functionCall parts stream as whole ToolCallDelta chunks, in part order; the stream finishes with tool_calls",
    () =>
      Effect.gen(function* () {
        const body = sse([
          candidate([
            { text: "Let me look. " },
            { functionCall: { id: "c0", name: "weather", args: { city: "Paris" } }, thoughtSignature: "EqsF" },
            { text: "And the time." }
          ]),
          // a call without id or args (a tool without parameters), and a thought that is not text
          candidate([{ text: "hmm", thought: true }, { functionCall: { name: "time" } }]),
          // the finish comes on its own event, after the calls
          candidate([{ text: "" }], "STOP")
        ])
        const chunks = ok((yield* streamed(gemini, { body })).exit)
        assert.deepStrictEqual(
          chunks.filter((c) => c._tag !== "Finish"),
          [
            { _tag: "TextDelta", text: "Let me look. " },
            { _tag: "ToolCallDelta", index: 0, id: "c0", name: "weather", arguments: '{"city":"Paris"}' },
            { _tag: "TextDelta", text: "And the time." },
            { _tag: "ToolCallDelta", index: 1, name: "time", arguments: "{}" }
          ]
        )
        assert.strictEqual(finishOf(chunks).finishReason, "tool_calls")
        // without a call the same finish is a plain stop
        const plain = ok(
          (yield* streamed(gemini, { body: sse([candidate([{ text: "a" }]), candidate([], "STOP")]) })).exit
        )
        assert.strictEqual(finishOf(plain).finishReason, "stop")
      })
  )

  it.effect("safety blocks and other finish reasons, whole and streamed", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [string, LlmResponse.FinishReason]> = [
        ["SAFETY", "content_filter"],
        ["RECITATION", "content_filter"],
        ["PROHIBITED_CONTENT", "content_filter"],
        ["SPII", "content_filter"],
        ["BLOCKLIST", "content_filter"],
        ["MAX_TOKENS", "length"],
        ["OTHER", "unknown"],
        ["MALFORMED_FUNCTION_CALL", "unknown"]
      ]
      for (const [reason, mapped] of cases) {
        assert.strictEqual(
          ok((yield* call(gemini, { body: JSON.stringify(candidate(undefined, reason)) })).exit).finishReason,
          mapped,
          reason
        )
        const chunks = ok(
          (yield* streamed(gemini, { body: sse([candidate([{ text: "a" }]), candidate(undefined, reason)]) })).exit
        )
        assert.strictEqual(finishOf(chunks).finishReason, mapped, reason)
      }
      const call_ = ok(
        (yield* call(gemini, { body: JSON.stringify(candidate([{ functionCall: { name: "f", args: {} } }], "STOP")) }))
          .exit
      )
      assert.strictEqual(call_.finishReason, "tool_calls")
      // a blocked prompt: no candidates, promptFeedback.blockReason
      const blocked = {
        promptFeedback: { blockReason: "SAFETY", safetyRatings: [] },
        usageMetadata: { promptTokenCount: 7, totalTokenCount: 7 },
        modelVersion: "gemini-2.5-flash"
      }
      const r = ok((yield* call(gemini, { body: JSON.stringify(blocked) })).exit)
      assert.deepStrictEqual([r.text, r.finishReason, r.usage.inputTokens], ["", "content_filter", 7])
      assert.strictEqual(
        finishOf(ok((yield* streamed(gemini, { body: sse([blocked]) })).exit)).finishReason,
        "content_filter"
      )
    })
  )

  it.effect("a stream without a finish reason is cut; an error event mid-stream and 429 RetryInfo are classified", () =>
    Effect.gen(function* () {
      const cut = failure(
        (yield* streamed(gemini, {
          body: sse([candidate([{ text: "a" }]), candidate([{ text: "b" }], "FINISH_REASON_UNSPECIFIED")])
        })).exit
      )
      assert.deepStrictEqual([cut._tag, (cut as LlmError.StreamTruncated).receivedChunks], ["StreamTruncated", 2])
      const midStream = sse([
        candidate([{ text: "a" }]),
        { error: { code: 503, message: "The model is overloaded.", status: "UNAVAILABLE" } }
      ])
      const over = failure((yield* streamed(gemini, { body: midStream })).exit)
      assert.deepStrictEqual([over._tag, (over as LlmError.Overloaded).status], ["Overloaded", 200])
      const limited = {
        error: {
          code: 429,
          message: "You exceeded your current quota, please check your plan.",
          status: "RESOURCE_EXHAUSTED",
          details: [
            {
              "@type": "type.googleapis.com/google.rpc.QuotaFailure",
              violations: [{ quotaId: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier" }]
            },
            { "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "34.4s" }
          ]
        }
      }
      for (const run of [call, streamed]) {
        const e = failure(
          (yield* run(gemini, { status: 429, body: JSON.stringify(limited) })).exit
        ) as LlmError.RateLimited
        assert.deepStrictEqual([e._tag, e.retryAfterMs, e.rateLimit?.retryAfterMs], ["RateLimited", 34_400, 34_400])
      }
    })
  )
})

describe("fuzzed", () => {
  fuzzStreams("gemini", gemini, [candidate([{ text: "Hi" }]), candidate([{ text: " there" }], "STOP")], (f) =>
    sse(f, "\r\n\r\n")
  )
})

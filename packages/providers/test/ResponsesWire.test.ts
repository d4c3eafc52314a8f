/**
 * The OpenAI Responses provider on replayed payloads: the request as the API documents it, response bodies,
 * named SSE events to the terminal event, in-stream errors (flat and nested), cuts; then fuzzed streams.
 */
import { assert, describe, it } from "@effect/vitest"
import type { LlmError } from "@llm-resilience/core"
import { Effect } from "effect"
import {
  secret,
  responses,
  request,
  call,
  streamed,
  ok,
  failure,
  textOf,
  finishOf,
  named,
  type Event,
  fuzzStreams
} from "./support/replay.ts"

const usage = {
  input_tokens: 36,
  input_tokens_details: { cached_tokens: 12 },
  output_tokens: 87,
  output_tokens_details: { reasoning_tokens: 64 },
  total_tokens: 123
}
const message = (content: ReadonlyArray<object>) => ({
  id: "msg_1",
  type: "message",
  status: "completed",
  role: "assistant",
  content
})
const responseBody = (over: object) => ({
  id: "resp_1",
  object: "response",
  created_at: 1741290958,
  status: "completed",
  error: null,
  incomplete_details: null,
  model: "gpt-5.4-mini-2026-03-01",
  output: [
    { id: "rs_1", type: "reasoning", summary: [] },
    message([{ type: "output_text", text: "Hi there!", annotations: [], logprobs: [] }])
  ],
  usage,
  ...over
})
const created = {
  type: "response.created",
  sequence_number: 0,
  response: { ...responseBody({}), status: "in_progress", output: [], usage: null }
}
const delta = (d: string, n: number) => ({
  type: "response.output_text.delta",
  sequence_number: n,
  item_id: "msg_1",
  output_index: 1,
  content_index: 0,
  delta: d
})
const completed = (over: object = {}) => ({
  type: "response.completed",
  sequence_number: 9,
  response: responseBody(over)
})

describe("OpenAI Responses", () => {
  it.effect("posts input items to /responses with the bearer key, and maps a documented response", () =>
    Effect.gen(function* () {
      const { exit, seen } = yield* call(responses, {
        body: JSON.stringify(responseBody({})),
        headers: { "x-request-id": "req_9", "x-ratelimit-remaining-requests": "99" }
      })
      const r = ok(exit)
      assert.deepStrictEqual(
        [r.text, r.finishReason, r.model, r.requestId, r.rateLimit?.requests?.remaining],
        ["Hi there!", "stop", "gpt-5.4-mini-2026-03-01", "req_9", 99]
      )
      assert.deepStrictEqual(r.usage, { inputTokens: 36, outputTokens: 87, cachedInputTokens: 12 })
      assert.strictEqual(seen[0].url, "https://api.test/v1/responses")
      assert.strictEqual(seen[0].headers.authorization, `Bearer ${secret}`)
      assert.deepStrictEqual(seen[0].body, {
        model: "m-1",
        input: request.messages.map((m) => ({ type: "message", role: m.role, content: m.content })),
        max_output_tokens: 64,
        temperature: 0.5
      })
    })
  )

  it.effect("finish reasons: incomplete, refusal, tool call; status failed is a classified error", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [object, string, string]> = [
        [{ status: "incomplete", incomplete_details: { reason: "max_output_tokens" } }, "length", "Hi there!"],
        [{ status: "incomplete", incomplete_details: { reason: "content_filter" } }, "content_filter", "Hi there!"],
        [
          { output: [message([{ type: "refusal", refusal: "I can't help with that." }])] },
          "content_filter",
          "I can't help with that."
        ],
        [{ output: [{ type: "function_call", name: "f", arguments: "{}", call_id: "c" }] }, "tool_calls", ""]
      ]
      for (const [over, finish, text] of cases) {
        const r = ok((yield* call(responses, { body: JSON.stringify(responseBody(over)) })).exit)
        assert.deepStrictEqual([r.finishReason, r.text], [finish, text])
      }
      const failed = yield* call(responses, {
        body: JSON.stringify(
          responseBody({ status: "failed", error: { code: "rate_limit_exceeded", message: "slow down" } })
        )
      })
      assert.strictEqual(failure(failed.exit)._tag, "RateLimited")
    })
  )

  it.effect("a documented stream: deltas, then Finish with the terminal event's usage; [DONE] after it is fine", () =>
    Effect.gen(function* () {
      const body = named([created, delta("Hi", 1), delta(" there!", 2), completed()]) + "data: [DONE]\n\n"
      const { exit, seen } = yield* streamed(responses, { body })
      const chunks = ok(exit)
      assert.strictEqual(textOf(chunks), "Hi there!")
      const finish = finishOf(chunks)
      assert.deepStrictEqual(
        [finish.finishReason, finish.usage.outputTokens, finish.model],
        ["stop", 87, "gpt-5.4-mini-2026-03-01"]
      )
      assert.strictEqual(seen[0].body.stream, true)
    })
  )

  it.effect(
    "function_call items stream as ToolCallDelta chunks: the item's call_id and name, then its argument pieces",
    () =>
      Effect.gen(function* () {
        const fnCall = (callId: string, name: string, args: string) => ({
          id: `fc_${callId}`,
          type: "function_call",
          status: "in_progress",
          arguments: args,
          call_id: callId,
          name
        })
        const added = (outputIndex: number, item: object, n: number) => ({
          type: "response.output_item.added",
          sequence_number: n,
          output_index: outputIndex,
          item
        })
        // a piece of a call's arguments (`delta`), or all of them once complete (`done`, ignored)
        const argumentsEvent = (kind: "delta" | "done") => (outputIndex: number, value: string, n: number) => ({
          type: `response.function_call_arguments.${kind}`,
          sequence_number: n,
          item_id: `fc_${outputIndex}`,
          output_index: outputIndex,
          [kind === "delta" ? "delta" : "arguments"]: value
        })
        const args = argumentsEvent("delta")
        const done = argumentsEvent("done")
        const output = [
          message([{ type: "output_text", text: "Let me look.", annotations: [], logprobs: [] }]),
          { ...fnCall("c0", "weather", '{"city":"Paris"}'), status: "completed" },
          { ...fnCall("c1", "time", '{"tz":"CET"}'), status: "completed" }
        ]
        const body = named([
          created,
          added(0, { id: "msg_1", type: "message", status: "in_progress", role: "assistant", content: [] }, 1),
          { ...delta("Let me look.", 2), output_index: 0 },
          added(1, fnCall("c0", "weather", ""), 3),
          args(1, '{"city":', 4),
          args(1, '"Paris"}', 5),
          done(1, '{"city":"Paris"}', 6),
          // the second call's item already holds the start of its arguments
          added(2, fnCall("c1", "time", '{"tz"'), 7),
          args(2, "", 8),
          args(9, "not a call of this stream", 9),
          args(2, ':"CET"}', 10),
          done(2, '{"tz":"CET"}', 11),
          completed({ output })
        ])
        const chunks = ok((yield* streamed(responses, { body })).exit)
        assert.deepStrictEqual(
          chunks.filter((c) => c._tag !== "Finish"),
          [
            { _tag: "TextDelta", text: "Let me look." },
            { _tag: "ToolCallDelta", index: 0, id: "c0", name: "weather", arguments: "" },
            { _tag: "ToolCallDelta", index: 0, arguments: '{"city":' },
            { _tag: "ToolCallDelta", index: 0, arguments: '"Paris"}' },
            { _tag: "ToolCallDelta", index: 1, id: "c1", name: "time", arguments: '{"tz"' },
            { _tag: "ToolCallDelta", index: 1, arguments: ':"CET"}' }
          ]
        )
        assert.strictEqual(finishOf(chunks).finishReason, "tool_calls")
        // a terminal event whose response leaves its output out still finishes a stream that made calls so
        const bare = named([created, added(0, fnCall("c0", "f", "{}"), 1), completed({ output: undefined })])
        assert.strictEqual(finishOf(ok((yield* streamed(responses, { body: bare })).exit)).finishReason, "tool_calls")
      })
  )

  it.effect("streams: refusal deltas, an incomplete terminal, a cut before the terminal, in-stream errors", () =>
    Effect.gen(function* () {
      const refusal = named([
        created,
        { type: "response.refusal.delta", sequence_number: 1, delta: "No." },
        completed({ output: [message([{ type: "refusal", refusal: "No." }])] })
      ])
      const r = ok((yield* streamed(responses, { body: refusal })).exit)
      assert.deepStrictEqual([textOf(r), finishOf(r).finishReason], ["No.", "content_filter"])

      const incomplete = named([
        created,
        delta("Hi", 1),
        {
          type: "response.incomplete",
          sequence_number: 2,
          response: responseBody({ status: "incomplete", incomplete_details: { reason: "max_output_tokens" } })
        }
      ])
      assert.strictEqual(finishOf(ok((yield* streamed(responses, { body: incomplete })).exit)).finishReason, "length")

      // the body ends after the deltas, without a terminal event: cut
      const cut = failure(
        (yield* streamed(responses, { body: named([created, delta("Hi", 1), delta(" there", 2)]) })).exit
      )
      assert.deepStrictEqual([cut._tag, (cut as LlmError.StreamTruncated).receivedChunks], ["StreamTruncated", 2])

      // captured: an `error` event (nested shape) then `response.failed`, inside HTTP 200
      const nested = {
        type: "error",
        sequence_number: 2,
        error: {
          type: "insufficient_quota",
          code: "insufficient_quota",
          message: "You exceeded your current quota",
          param: null
        }
      }
      const quota = failure(
        (yield* streamed(responses, {
          body: named([
            created,
            nested,
            {
              type: "response.failed",
              response: responseBody({ status: "failed", error: { code: "insufficient_quota", message: "quota" } })
            }
          ])
        })).exit
      )
      assert.deepStrictEqual([quota._tag, (quota as LlmError.QuotaExhausted).status], ["QuotaExhausted", 200])
      // documented: the flat shape
      const flat = {
        type: "error",
        sequence_number: 3,
        code: "rate_limit_exceeded",
        message: "Rate limit reached",
        param: null
      }
      assert.strictEqual(
        failure((yield* streamed(responses, { body: named([created, delta("Hi", 1), flat]) })).exit)._tag,
        "RateLimited"
      )
      // a response.failed alone
      const failed = {
        type: "response.failed",
        sequence_number: 2,
        response: responseBody({ status: "failed", error: { code: "server_error", message: "boom" } })
      }
      assert.strictEqual(
        failure((yield* streamed(responses, { body: named([created, failed]) })).exit)._tag,
        "ServerError"
      )
    })
  )
})

describe("fuzzed", () => {
  fuzzStreams("responses", responses, [created, delta("Hi", 1), delta(" there", 2), completed()], (f) =>
    named(f as ReadonlyArray<Event>)
  )
})

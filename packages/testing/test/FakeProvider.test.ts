import { assert, describe, expect, it } from "@effect/vitest"
import { LlmError, LlmProvider, type LlmRequest, type LlmResponse } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"
import { Clock, Effect, Exit, Fiber, Stream } from "effect"
import { TestClock } from "effect/testing"

const req = (model = "m", content = "Hello there!"): LlmRequest.LlmRequest => ({
  model,
  messages: [{ role: "user", content }]
})

const llm = LlmProvider.LlmProvider

/** Runs `effect` in a fiber, advances virtual time by `ms`, and returns its exit if it finished. */
const after = <A, E>(ms: number, effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(effect)
    yield* TestClock.adjust(ms)
    return fiber.pollUnsafe()
  })

/** The chunks of `stream`, each with the virtual time it arrived at, after a virtual second. */
const timedChunks = <E>(stream: Stream.Stream<LlmResponse.StreamChunk, E>) =>
  Effect.gen(function* () {
    const fiber = yield* stream.pipe(
      Stream.mapEffect((chunk) => Effect.map(Clock.currentTimeMillis, (t) => [t, chunk] as const)),
      Stream.runCollect,
      Effect.forkChild
    )
    yield* TestClock.adjust(1_000)
    return yield* Fiber.join(fiber)
  })

describe("FakeProvider", () => {
  it.effect("outage from t=10s to t=70s: calls inside fail with the scripted error, calls after succeed", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      // one call every 10 s from t=0 to t=80 s, each taking 100 ms when healthy
      for (let t = 0; t <= 80_000; t += 10_000) {
        const fiber = yield* Effect.forkChild(Effect.exit(provider.complete(req())))
        yield* TestClock.adjust(10_000)
        const exit = yield* Fiber.join(fiber)
        if (Exit.isFailure(exit)) {
          const error = Exit.findError(exit)
          assert(error._tag === "Success" && error.success._tag === "Overloaded")
          expect(error.success.status).toBe(529)
          expect(error.success.provider).toBe("fake")
          expect(error.success.retryAfterMs).toBe(5000)
        }
      }
      const calls = yield* FakeProvider.calls
      expect(calls.map((c) => [c.startedAt, c.endedAt, c.outcome])).toEqual([
        [0, 100, "success"],
        [10_000, 10_000, "Overloaded"],
        [20_000, 20_000, "Overloaded"],
        [30_000, 30_000, "Overloaded"],
        [40_000, 40_000, "Overloaded"],
        [50_000, 50_000, "Overloaded"],
        [60_000, 60_000, "Overloaded"],
        [70_000, 70_100, "success"],
        [80_000, 80_100, "success"]
      ])
      expect(calls.every((c) => c.model === "m" && !c.streamed)).toBe(true)
    }).pipe(
      Effect.provide(
        FakeProvider.layer({
          default: { latency: "100 millis" },
          windows: [
            {
              from: "10 seconds",
              to: "70 seconds",
              behavior: FakeProvider.fail(FakeProvider.overloaded({ retryAfter: "5 seconds" }))
            }
          ]
        })
      )
    )
  )

  it.effect("honours latency exactly", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      const fiber = yield* Effect.forkChild(provider.complete(req()))
      yield* TestClock.adjust(249)
      expect(fiber.pollUnsafe()).toBeUndefined()
      yield* TestClock.adjust(1)
      const response = yield* Fiber.join(fiber)
      expect(response).toEqual({
        text: "abcdefgh",
        finishReason: "stop",
        usage: { inputTokens: 3, outputTokens: 2 },
        provider: "fake",
        model: "m",
        requestId: "fake-req-1"
      })
      const [call] = yield* FakeProvider.calls
      expect(call).toMatchObject({ startedAt: 0, endedAt: 250, inputTokens: 3, outputTokens: 2, outcome: "success" })
    }).pipe(Effect.provide(FakeProvider.layer({ default: { latency: "250 millis", text: "abcdefgh" } })))
  )

  it.effect("streams chunks at exact virtual times and ends with a Finish carrying usage", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      const timed = yield* timedChunks(provider.stream(req()))
      expect(timed.map(([t, c]) => [t, c._tag === "TextDelta" ? c.text : c._tag])).toEqual([
        [200, "abc"],
        [300, "def"],
        [400, "ghi"],
        [400, "Finish"]
      ])
      expect(timed[3]![1]).toEqual({
        _tag: "Finish",
        finishReason: "stop",
        usage: { inputTokens: 3, outputTokens: 7 },
        provider: "fake",
        model: "m",
        requestId: "fake-req-1"
      })
      const [call] = yield* FakeProvider.calls
      expect(call).toMatchObject({ startedAt: 0, endedAt: 400, streamed: true, chunks: 3, outcome: "success" })
    }).pipe(
      Effect.provide(
        FakeProvider.layer({
          default: { latency: "200 millis", text: "abcdefghi", outputTokens: 7, stream: { chunks: 3, interval: 100 } }
        })
      )
    )
  )

  it.effect("a stall never completes until interrupted, and the cut call is logged as interrupted", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      // no timeout: still hanging after a virtual hour, logged as pending
      const hanging = yield* Effect.forkChild(provider.complete(req()))
      yield* TestClock.adjust("1 hour")
      expect(hanging.pollUnsafe()).toBeUndefined()
      expect((yield* FakeProvider.calls)[0]).toMatchObject({ outcome: "pending", endedAt: undefined })
      yield* Fiber.interrupt(hanging)
      // cut by a timeout, both unary and streamed
      const timed = yield* Effect.forkChild(Effect.exit(provider.complete(req()).pipe(Effect.timeout("5 seconds"))))
      const timedStream = yield* Effect.forkChild(
        Effect.exit(Stream.runCollect(provider.stream(req())).pipe(Effect.timeout("2 seconds")))
      )
      yield* TestClock.adjust("5 seconds")
      expect(Exit.isFailure(yield* Fiber.join(timed))).toBe(true)
      expect(Exit.isFailure(yield* Fiber.join(timedStream))).toBe(true)
      const calls = yield* FakeProvider.calls
      expect(calls.map((c) => [c.streamed, c.startedAt, c.endedAt, c.outcome])).toEqual([
        [false, 0, 3_600_000, "interrupted"],
        [false, 3_600_000, 3_605_000, "interrupted"],
        [true, 3_600_000, 3_602_000, "interrupted"]
      ])
    }).pipe(Effect.provide(FakeProvider.layer({ default: { behavior: FakeProvider.stall } })))
  )

  it.effect("stallMidStream delivers k chunks on schedule and then goes silent", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      const received: Array<number> = []
      const fiber = yield* provider.stream(req()).pipe(
        Stream.runForEach(() => Effect.map(Clock.currentTimeMillis, (t) => void received.push(t))),
        Effect.forkChild
      )
      yield* TestClock.adjust("10 minutes")
      expect(received).toEqual([100, 150])
      expect(fiber.pollUnsafe()).toBeUndefined()
      yield* Fiber.interrupt(fiber)
      const [call] = yield* FakeProvider.calls
      expect(call).toMatchObject({ chunks: 2, outputTokens: 4, outcome: "interrupted", endedAt: 600_000 })
    }).pipe(
      Effect.provide(
        FakeProvider.layer({
          default: {
            latency: 100,
            outputTokens: 8,
            stream: { chunks: 4, interval: 50 },
            behavior: FakeProvider.stallMidStream(2)
          }
        })
      )
    )
  )

  it.effect("truncate fails with StreamTruncated after k chunks, with no Finish", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      const chunks: Array<string> = []
      const fiber = yield* provider.stream(req()).pipe(
        Stream.runForEach((c) => Effect.sync(() => void chunks.push(c._tag))),
        Effect.exit,
        Effect.forkChild
      )
      yield* TestClock.adjust(1_000)
      const exit = yield* Fiber.join(fiber)
      expect(chunks).toEqual(["TextDelta", "TextDelta"])
      const error = Exit.findError(exit)
      assert(error._tag === "Success" && error.success._tag === "StreamTruncated")
      expect(error.success.receivedChunks).toBe(2)
      // unary calls of a truncating script fail as a dropped connection
      const unary = yield* after(1_000, provider.complete(req()))
      assert(unary !== undefined && Exit.isFailure(unary))
      expect(Exit.findError(unary)).toMatchObject({ success: { _tag: "ConnectionError" } })
      const calls = yield* FakeProvider.calls
      expect(calls.map((c) => [c.startedAt, c.endedAt, c.chunks, c.outputTokens, c.outcome])).toEqual([
        [0, 250, 2, 3, "StreamTruncated"],
        [1_000, 1_050, 0, 0, "ConnectionError"]
      ])
    }).pipe(
      Effect.provide(
        FakeProvider.layer({
          default: {
            latency: 50,
            outputTokens: 6,
            stream: { chunks: 4, interval: 100 },
            behavior: FakeProvider.truncate(2)
          }
        })
      )
    )
  )

  it.effect("capacity in requests/min answers 429 exactly when exceeded and recovers when the window allows", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      const call = provider.complete(req()).pipe(Effect.flip, Effect.option)
      const first = yield* provider.complete(req())
      expect(first.rateLimit).toEqual({ requests: { limit: 2, remaining: 1, resetAfterMs: 60_000 } })
      yield* TestClock.adjust(20_000)
      yield* provider.complete(req())
      const rejected = yield* Effect.flip(provider.complete(req()))
      assert(rejected._tag === "RateLimited")
      expect(rejected).toMatchObject({
        status: 429,
        limit: "requests",
        retryAfterMs: 40_000,
        provider: "fake",
        model: "m",
        rateLimit: { retryAfterMs: 40_000, requests: { limit: 2, remaining: 0, resetAfterMs: 60_000 } }
      })
      expect(LlmError.isRetryable(rejected)).toBe(true)
      yield* TestClock.adjust(39_999) // t = 59.999 s: the call from t=0 still counts
      const stillRejected = yield* Effect.flip(provider.complete(req()))
      expect(stillRejected).toMatchObject({ _tag: "RateLimited", retryAfterMs: 1 })
      yield* TestClock.adjust(1) // t = 60 s: it has left the window
      expect((yield* call)._tag).toBe("None")
      const calls = yield* FakeProvider.calls
      expect(calls.map((c) => [c.startedAt, c.outcome])).toEqual([
        [0, "success"],
        [20_000, "success"],
        [20_000, "RateLimited"],
        [59_999, "RateLimited"],
        [60_000, "success"]
      ])
    }).pipe(Effect.provide(FakeProvider.layer({ default: { capacity: { requestsPerMinute: 2 } } })))
  )

  it.effect("capacity in tokens/min counts input estimate + output tokens", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      const big = req("m", "x".repeat(80)) // 20 input tokens + 40 output tokens = 60
      const ok = yield* provider.complete(big)
      expect(ok.usage).toEqual({ inputTokens: 20, outputTokens: 40 })
      expect(ok.rateLimit?.tokens).toEqual({ limit: 100, remaining: 40, resetAfterMs: 60_000 })
      yield* TestClock.adjust(10_000)
      const rejected = yield* Effect.flip(provider.complete(big))
      expect(rejected).toMatchObject({
        _tag: "RateLimited",
        limit: "tokens",
        retryAfterMs: 50_000,
        rateLimit: { tokens: { limit: 100, remaining: 40 } }
      })
      // a smaller request still fits: 5 input + 10 output (capped by maxOutputTokens, finish "length")
      const small = yield* provider.complete({ ...req("m", "x".repeat(20)), maxOutputTokens: 10 })
      expect([small.usage, small.finishReason]).toEqual([{ inputTokens: 5, outputTokens: 10 }, "length"])
      yield* TestClock.adjust(50_000)
      expect((yield* provider.complete(big)).text).toHaveLength(160)
      // a request larger than the whole budget is never admissible: no retry-after is offered
      const huge = yield* Effect.flip(provider.complete(req("m", "x".repeat(400))))
      assert(huge._tag === "RateLimited")
      expect([huge.limit, huge.retryAfterMs, huge.message]).toEqual([
        "tokens",
        undefined,
        "Request too large for m on tokens per min (TPM): Limit 100, Requested 140."
      ])
    }).pipe(
      Effect.provide(
        FakeProvider.layer({
          default: { text: "y".repeat(160), capacity: { tokensPerMinute: 100 } }
        })
      )
    )
  )

  it.effect("script drives the n-th call, then windows and the base behaviour apply", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      const first = yield* Effect.flip(provider.complete(req()))
      expect(first).toMatchObject({
        _tag: "RateLimited",
        status: 429,
        limit: "tokens",
        retryAfterMs: 2_000,
        requestId: "fake-req-1",
        rateLimit: { retryAfterMs: 2_000, tokens: { limit: 100_000, remaining: 0, resetAfterMs: 2_000 } }
      })
      const second = yield* Effect.flip(provider.complete(req()))
      expect(second).toMatchObject({ _tag: "ServerError", status: 503, message: "call 1" })
      expect((yield* provider.complete(req())).text).toBe("Hello from the fake provider.")
      expect(yield* Effect.flip(provider.complete(req("other")))).toMatchObject({ _tag: "ModelNotFound", status: 404 })
      const calls = yield* FakeProvider.calls
      expect(calls.map((c) => [c.model, c.callIndex, c.outcome])).toEqual([
        ["m", 0, "RateLimited"],
        ["m", 1, "ServerError"],
        ["m", 2, "success"],
        ["other", 0, "ModelNotFound"]
      ])
    }).pipe(
      Effect.provide(
        FakeProvider.layer({
          models: {
            m: {
              script: [
                FakeProvider.fail(FakeProvider.rateLimited({ retryAfter: "2 seconds", limit: "tokens" })),
                FakeProvider.fail(
                  (ctx) => new LlmError.ServerError({ message: `call ${ctx.callIndex}`, status: 503, model: ctx.model })
                )
              ]
            }
          }
        })
      )
    )
  )

  it.effect("fail honours its delay, streamed or not", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      yield* Effect.exit(provider.complete(req())).pipe(Effect.forkChild)
      yield* Effect.exit(Stream.runCollect(provider.stream(req()))).pipe(Effect.forkChild)
      yield* TestClock.adjust(3_000)
      const calls = yield* FakeProvider.calls
      expect(calls.map((c) => [c.streamed, c.endedAt, c.outcome])).toEqual([
        [false, 1_500, "Overloaded"],
        [true, 1_500, "Overloaded"]
      ])
    }).pipe(
      Effect.provide(
        FakeProvider.layer({
          default: { behavior: FakeProvider.fail(FakeProvider.overloaded(), { after: "1500 millis" }) }
        })
      )
    )
  )

  it.effect("a consumer that stops reading early is logged as interrupted", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      const fiber = yield* provider.stream(req()).pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
      yield* TestClock.adjust(1_000)
      expect(yield* Fiber.join(fiber)).toHaveLength(1)
      const [call] = yield* FakeProvider.calls
      expect(call).toMatchObject({ chunks: 1, outcome: "interrupted", endedAt: 10 })
    }).pipe(Effect.provide(FakeProvider.layer({ default: { latency: 10, stream: { chunks: 3, interval: 10 } } })))
  )

  it.effect("two fakes side by side keep separate logs", () =>
    Effect.gen(function* () {
      const primary = yield* FakeProvider.make({ name: "primary", default: { behavior: FakeProvider.stall } })
      const backup = yield* FakeProvider.make({ name: "backup", default: { latency: 300 } })
      const answer = yield* primary.provider.complete(req()).pipe(
        Effect.timeout("1 second"),
        Effect.catch(() => backup.provider.complete(req())),
        Effect.forkChild
      )
      yield* TestClock.adjust(2_000)
      expect((yield* Fiber.join(answer)).provider).toBe("backup")
      const p = yield* primary.calls
      const b = yield* backup.calls
      expect(p.map((c) => [c.provider, c.requestId, c.startedAt, c.endedAt, c.outcome])).toEqual([
        ["primary", "primary-req-1", 0, 1_000, "interrupted"]
      ])
      expect(b.map((c) => [c.provider, c.requestId, c.startedAt, c.endedAt, c.outcome])).toEqual([
        ["backup", "backup-req-1", 1_000, 1_300, "success"]
      ])
      yield* backup.clear
      expect([(yield* primary.calls).length, (yield* backup.calls).length]).toEqual([1, 0])
    })
  )

  it.effect("windows are relative to the fake's creation time", () =>
    Effect.gen(function* () {
      yield* TestClock.adjust("1 hour")
      const fake = yield* FakeProvider.make({
        windows: [{ from: 0, to: "1 second", behavior: FakeProvider.fail(FakeProvider.serverError()) }]
      })
      expect((yield* Effect.flip(fake.provider.complete(req())))._tag).toBe("ServerError")
      yield* TestClock.adjust("1 second")
      yield* fake.provider.complete(req())
      expect((yield* fake.calls).map((c) => [c.startedAt, c.outcome])).toEqual([
        [0, "ServerError"],
        [1_000, "success"]
      ])
      expect(fake.createdAt).toBe(3_600_000)
    })
  )

  it.effect("a window can apply to streamed calls only (or unary calls only)", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({
        windows: [
          { from: 0, to: "1 minute", calls: "streamed", behavior: FakeProvider.fail(FakeProvider.serverError(502)) },
          { from: 0, to: "1 minute", calls: "unary", behavior: FakeProvider.fail(FakeProvider.overloaded()) }
        ]
      })
      expect((yield* Effect.flip(fake.provider.complete(req())))._tag).toBe("Overloaded")
      expect((yield* Effect.flip(Stream.runCollect(fake.provider.stream(req()))))._tag).toBe("ServerError")
      yield* TestClock.adjust("1 minute")
      yield* fake.provider.complete(req())
      expect((yield* fake.calls).map((c) => [c.streamed, c.outcome])).toEqual([
        [false, "Overloaded"],
        [true, "ServerError"],
        [false, "success"]
      ])
    })
  )

  it.effect("with no scenario every model answers at once with the default text", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      const response = yield* provider.complete(req("any-model"))
      expect([provider.name, response.text, response.model, response.usage.outputTokens]).toEqual([
        "fake",
        "Hello from the fake provider.",
        "any-model",
        8
      ])
      const chunks = yield* Stream.runCollect(provider.stream(req("other")))
      expect(chunks.map((c) => c._tag)).toEqual(["TextDelta", "Finish"])
      expect((yield* FakeProvider.calls).map((c) => [c.startedAt, c.endedAt, c.streamed])).toEqual([
        [0, 0, false],
        [0, 0, true]
      ])
    }).pipe(Effect.provide(FakeProvider.layer()))
  )

  it.effect("tool calls: streamed after the text as ToolCallDelta pieces on schedule, finish reason tool_calls", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      const timed = yield* timedChunks(provider.stream(req()))
      expect(timed.map(([t, c]) => [t, c._tag === "Finish" ? c.finishReason : c])).toEqual([
        [100, { _tag: "TextDelta", text: "Let me" }],
        [110, { _tag: "TextDelta", text: " look." }],
        [120, { _tag: "ToolCallDelta", index: 0, id: "w1", name: "weather", arguments: "" }],
        [130, { _tag: "ToolCallDelta", index: 0, arguments: '{"city":"Paris"}' }],
        // a call without arguments is one piece; its id defaults to its position
        [140, { _tag: "ToolCallDelta", index: 1, id: "call_1", name: "now", arguments: "" }],
        [140, "tool_calls"]
      ])
      // output tokens: a quarter of the text and the arguments, rounded up ((12 + 16) / 4)
      const whole = yield* after(1_000, provider.complete(req()))
      assert(whole !== undefined && Exit.isSuccess(whole))
      expect([whole.value.text, whole.value.finishReason, whole.value.usage.outputTokens]).toEqual([
        "Let me look.",
        "tool_calls",
        7
      ])
      expect((yield* FakeProvider.calls)[0]).toMatchObject({ chunks: 5, outputTokens: 7, outcome: "success" })
    }).pipe(
      Effect.provide(
        FakeProvider.layer({
          default: {
            latency: 100,
            text: "Let me look.",
            toolCalls: [
              { id: "w1", name: "weather", arguments: '{"city":"Paris"}' },
              { name: "now", arguments: "" }
            ],
            stream: { chunks: 2, interval: 10 }
          }
        })
      )
    )
  )

  it.effect("a stream cut inside a tool call: truncate counts the calls' pieces as chunks", () =>
    Effect.gen(function* () {
      const provider = yield* llm
      const exit = yield* after(1_000, Effect.exit(Stream.runCollect(provider.stream(req()))))
      assert(exit !== undefined && Exit.isSuccess(exit) && Exit.isFailure(exit.value))
      const error = Exit.findError(exit.value)
      assert(error._tag === "Success" && error.success._tag === "StreamTruncated")
      expect(error.success.receivedChunks).toBe(2)
      // a script's answer without calls finishes with stop, one that adds calls with tool_calls
      const plain = yield* provider.complete(req("plain"))
      expect([plain.text, plain.finishReason]).toEqual(["", "stop"])
      const calls = yield* Stream.runCollect(provider.stream(req("plain")))
      expect(calls.map((c) => (c._tag === "Finish" ? c.finishReason : c._tag))).toEqual([
        "TextDelta",
        "ToolCallDelta",
        "ToolCallDelta",
        "tool_calls"
      ])
    }).pipe(
      Effect.provide(
        FakeProvider.layer({
          models: {
            m: {
              text: "Hi",
              toolCalls: [{ name: "f", arguments: "{}" }],
              behavior: FakeProvider.truncate(2)
            },
            plain: {
              text: "",
              script: [
                FakeProvider.succeed(),
                FakeProvider.succeed({ text: "x", toolCalls: [{ name: "g", arguments: "{}" }] })
              ]
            }
          }
        })
      )
    )
  )

  it.effect("invalid scenarios fail at construction with the field named", () =>
    Effect.gen(function* () {
      const invalid = (scenario: FakeProvider.Scenario) => Effect.flip(FakeProvider.make(scenario))
      expect(yield* invalid({ models: { m: { stream: { chunks: -1 } } } })).toMatchObject({
        _tag: "InvalidScenario",
        field: "models.m.stream.chunks"
      })
      expect(
        yield* invalid({ windows: [{ from: "70 seconds", to: "10 seconds", behavior: FakeProvider.stall }] })
      ).toMatchObject({ field: "windows[0].to" })
      expect(yield* invalid({ default: { latency: -5 } })).toMatchObject({ field: "default.latency" })
      expect(yield* invalid({ default: { capacity: { requestsPerMinute: 0 } } })).toMatchObject({
        field: "default.capacity.requestsPerMinute"
      })
      expect(yield* invalid({ default: { script: [FakeProvider.truncate(1.5)] } })).toMatchObject({
        field: "default.script[0].afterChunks"
      })
      expect(yield* invalid({ default: { toolCalls: [{ name: "", arguments: "{}" }] } })).toMatchObject({
        field: "default.toolCalls[0].name"
      })
      expect(
        yield* invalid({ models: { m: { script: [FakeProvider.succeed({ toolCalls: [{ name: "f" } as never] })] } } })
      ).toMatchObject({ field: "models.m.script[0].toolCalls[0].arguments" })
      const layerError = yield* Effect.flip(Effect.provide(llm, FakeProvider.layer({ name: "" })))
      expect(layerError).toMatchObject({ _tag: "InvalidScenario", field: "name" })
    })
  )
})

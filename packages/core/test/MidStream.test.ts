/**
 * Streams through `Resilience` that fail after their first chunk (the path's `midStream` mode), and the
 * interactive defaults: a silent attempt moves on to the next step, the first-token timeout is 15 s.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Stream } from "effect"
import { TestClock } from "effect/testing"
import { LlmError, type LlmResponse, Resilience, Timeouts } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

/** Tokens `from` to `to` (excluded), each 4 characters, so that the fake cuts its text between them. */
const words = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `w${String(from + i).padStart(2, "0")} `).join("")
/** 60 tokens, streamed one a chunk. */
const full = words(0, 60)
const shape: FakeProvider.StreamShape = { chunks: 60, interval: "10 millis" }

const ask = { model: "m1", messages: [{ role: "user" as const, content: "count" }], metadata: { path: "chat" } }

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, Metric.MetricRegistry, new Map())

const textOf = (chunks: ReadonlyArray<LlmResponse.StreamChunk>) =>
  chunks.map((c) => (c._tag === "TextDelta" ? c.text : "")).join("")

/** Collects the stream, after `ms` of virtual time; the chunks delivered before any failure, and the exit. */
const collect = (self: Stream.Stream<LlmResponse.StreamChunk, LlmError.LlmError>, ms = 120_000) =>
  Effect.gen(function* () {
    const seen: Array<LlmResponse.StreamChunk> = []
    const fiber = yield* Effect.forkChild(
      Effect.exit(
        Stream.runForEach(self, (c) =>
          Effect.sync(() => {
            seen.push(c)
          })
        )
      )
    )
    yield* TestClock.adjust(ms)
    const exit = yield* Fiber.join(fiber)
    return { text: textOf(seen), finishes: seen.filter((c) => c._tag === "Finish"), exit, seen }
  })

const failureOf = <E>(exit: Exit.Exit<unknown, E>): E => {
  assert.isTrue(Exit.isFailure(exit))
  const reason = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  return (reason as { readonly error: E }).error
}

/** A primary and a secondary fake behind `Resilience` with `chat`'s settings. */
const twoSteps = (
  chat: Resilience.Config["paths"] extends infer P ? (P extends Record<string, infer C> ? C : never) : never,
  primary: FakeProvider.ModelScript,
  secondary: FakeProvider.ModelScript,
  models: Resilience.Config["models"] = {}
) =>
  Effect.gen(function* () {
    const p = yield* FakeProvider.make({ name: "primary", default: { stream: shape, text: full, ...primary } })
    const s = yield* FakeProvider.make({ name: "secondary", default: { stream: shape, text: full, ...secondary } })
    const { provider, stages } = yield* Resilience.make(
      {
        models,
        paths: { chat },
        fallback: [
          { provider: "primary", model: "m1" },
          { provider: "secondary", model: "m2" }
        ]
      },
      [p.provider, s.provider]
    )
    return { provider, stages, primary: p, secondary: s }
  })

const badPrefill = new LlmError.BadRequest({ message: "assistant prefill is not supported", status: 400 })
const noJitter = { extends: "interactive" as const, jitter: "none" as const }

describe("mid-stream recovery", () => {
  it.effect("fail (default): a cut after 40 of 60 tokens reaches the caller, nothing else is called", () =>
    isolated(
      Effect.gen(function* () {
        const t = yield* twoSteps({}, { script: [FakeProvider.truncate(40)] }, {})
        const out = yield* collect(t.provider.stream(ask))
        assert.strictEqual(out.text, words(0, 40))
        assert.strictEqual(failureOf(out.exit)._tag, "StreamTruncated")
        assert.strictEqual((yield* t.primary.calls).length, 1)
        assert.strictEqual((yield* t.secondary.calls).length, 0)
      }).pipe(Effect.scoped)
    )
  )

  it.effect("continue: a retry restarts, skips the 40 tokens delivered and appends the rest once", () =>
    isolated(
      Effect.gen(function* () {
        const t = yield* twoSteps(
          { midStream: "continue", retry: noJitter, maxWaitMs: 0 },
          { script: [FakeProvider.truncate(40)] },
          {},
          { "primary/m1": { maxConcurrency: 1 } }
        )
        const out = yield* collect(t.provider.stream(ask))
        assert.isTrue(Exit.isSuccess(out.exit))
        assert.strictEqual(out.text, full)
        assert.strictEqual(out.finishes.length, 1)
        // the cut attempt gave its permit back before the retry took one, and the retry gave it back too
        assert.strictEqual((yield* t.stages.admission.stats("primary/m1")).availablePermits, 1)
        assert.deepStrictEqual(
          (yield* t.primary.calls).map((c) => c.outcome),
          ["StreamTruncated", "success"]
        )
        assert.strictEqual((yield* t.secondary.calls).length, 0)
      }).pipe(Effect.scoped)
    )
  )

  it.effect("continue: the fallback declared with prefill is sent the delivered text and appends its own", () =>
    isolated(
      Effect.gen(function* () {
        const t = yield* twoSteps(
          { midStream: "continue", retry: "none" },
          { script: [FakeProvider.truncate(40)] },
          { text: words(40, 60), stream: { chunks: 20 } },
          { "secondary/m2": { prefill: true } }
        )
        const out = yield* collect(t.provider.stream(ask))
        assert.isTrue(Exit.isSuccess(out.exit))
        assert.strictEqual(out.text, full)
        const [call] = yield* t.secondary.calls
        // sent without its trailing whitespace (which providers refuse in a prefill)
        assert.deepStrictEqual(call.request.messages, [
          ...ask.messages,
          { role: "assistant", content: words(0, 40).trimEnd() }
        ])
        // the caller sees the fallback's model and usage
        assert.strictEqual(out.finishes[0]._tag === "Finish" && out.finishes[0].model, "m2")
      }).pipe(Effect.scoped)
    )
  )

  it.effect("continue: a fallback that rejects prefill is asked again without it, never hiding the cut", () =>
    isolated(
      Effect.gen(function* () {
        const t = yield* twoSteps(
          { midStream: "continue", retry: "none" },
          { script: [FakeProvider.truncate(40)] },
          { script: [FakeProvider.fail(badPrefill)] },
          { "secondary/m2": { prefill: true } }
        )
        const out = yield* collect(t.provider.stream(ask))
        assert.isTrue(Exit.isSuccess(out.exit))
        assert.strictEqual(out.text, full)
        const calls = yield* t.secondary.calls
        assert.deepStrictEqual(
          calls.map((c) => [c.outcome, c.request.messages.length]),
          [
            ["BadRequest", 2],
            ["success", 1]
          ]
        )
      }).pipe(Effect.scoped)
    )
  )

  it.effect("continue: a restart that diverges ends with StreamDiverged carrying the delivered text", () =>
    isolated(
      Effect.gen(function* () {
        const t = yield* twoSteps(
          { midStream: "continue", retry: "none" },
          { script: [FakeProvider.truncate(40)] },
          { text: `${words(0, 39)}different ending`, stream: { chunks: 10 } }
        )
        const out = yield* collect(t.provider.stream(ask))
        assert.strictEqual(out.text, words(0, 40)) // nothing spliced after the delivered text
        const error = failureOf(out.exit) as LlmError.StreamDiverged
        assert.strictEqual(error._tag, "StreamDiverged")
        assert.strictEqual(error.delivered, words(0, 40))
        assert.strictEqual(error.lastError?._tag, "StreamTruncated")
      }).pipe(Effect.scoped)
    )
  )

  it.effect("continue: a 30 s stall after 20 tokens ends at the default idle timeout; the fallback finishes", () =>
    isolated(
      Effect.gen(function* () {
        const t = yield* twoSteps(
          { midStream: "continue", retry: "none", timeouts: { totalMs: 60_000 } },
          { script: [FakeProvider.stallMidStream(20)] },
          {}
        )
        const out = yield* collect(t.provider.stream(ask), 60_000)
        assert.isTrue(Exit.isSuccess(out.exit))
        assert.strictEqual(out.text, full)
        const [stalled] = yield* t.primary.calls
        assert.strictEqual(stalled.outcome, "interrupted")
        const [rescue] = yield* t.secondary.calls
        // 20 chunks, then the default idle timeout (20 s) of a stall that would have lasted 30 s, then the fallback
        assert.strictEqual(rescue.startedAt, 190 + 20_000)
      }).pipe(Effect.scoped)
    )
  )

  it.effect("continue: no degraded answer is spliced onto delivered text", () =>
    isolated(
      Effect.gen(function* () {
        const p = yield* FakeProvider.make({
          name: "primary",
          default: { stream: shape, text: full, script: [FakeProvider.truncate(40)] }
        })
        const { provider } = yield* Resilience.make(
          {
            paths: { chat: { midStream: "continue", retry: "none" } },
            fallback: [{ provider: "primary", model: "m1" }, { staticAnswer: "busy" }]
          },
          [p.provider]
        )
        const out = yield* collect(provider.stream(ask))
        assert.strictEqual(out.text, words(0, 40))
        assert.strictEqual(failureOf(out.exit)._tag, "StreamTruncated")
      }).pipe(Effect.scoped)
    )
  )

  it.effect("buffer: nothing of a cut attempt reaches the caller; retries and fallbacks act as for complete", () =>
    isolated(
      Effect.gen(function* () {
        const t = yield* twoSteps(
          { midStream: "buffer", retry: noJitter },
          { behavior: FakeProvider.truncate(40) },
          { text: "from the fallback", stream: { chunks: 3 } }
        )
        const out = yield* collect(t.provider.stream(ask))
        assert.isTrue(Exit.isSuccess(out.exit))
        assert.strictEqual(out.text, "from the fallback")
        assert.isAbove((yield* t.primary.calls).length, 1) // retried, then the plan moved on
        // and a whole answer is delivered whole, chunk by chunk
        const ok = yield* twoSteps({ midStream: "buffer" }, {}, {})
        const whole = yield* collect(ok.provider.stream(ask))
        assert.strictEqual(whole.text, full)
        assert.strictEqual(whole.seen.length, 61)
      }).pipe(Effect.scoped)
    )
  )
})

describe("interactive defaults", () => {
  it("the first-token timeout defaults to at most 15 s", () => {
    assert.isAtMost(Timeouts.defaults.firstTokenMs, 15_000)
  })

  it.effect("a first token after 20 s: the default first-token timeout moves on to the next step at 15 s", () =>
    isolated(
      Effect.gen(function* () {
        const t = yield* twoSteps({ timeouts: { totalMs: 30_000 } }, { latency: "20 seconds" }, {})
        const out = yield* collect(t.provider.stream(ask), 30_000)
        assert.isTrue(Exit.isSuccess(out.exit))
        assert.strictEqual(out.finishes[0]._tag === "Finish" && out.finishes[0].provider, "secondary")
        assert.strictEqual((yield* t.primary.calls).length, 1) // the silent route is not retried
        assert.strictEqual((yield* t.secondary.calls)[0].startedAt, 15_000)
      }).pipe(Effect.scoped)
    )
  )

  it.effect("a silent complete moves on at its timeout; onSilentTimeout: retry retries the route first", () =>
    isolated(
      Effect.gen(function* () {
        for (const [onSilentTimeout, primaryCalls] of [
          ["next-step", 1],
          ["retry", 3]
        ] as const) {
          const t = yield* twoSteps(
            { timeouts: { totalMs: 2_000 }, retry: noJitter, onSilentTimeout },
            { behavior: FakeProvider.stall },
            {}
          )
          const fiber = yield* Effect.forkChild(t.provider.complete(ask))
          yield* TestClock.adjust(30_000)
          assert.strictEqual((yield* Fiber.join(fiber)).provider, "secondary")
          assert.strictEqual((yield* t.primary.calls).length, primaryCalls, onSilentTimeout)
        }
      }).pipe(Effect.scoped)
    )
  )

  it.effect("the last provider step still retries a silent attempt (no step to move on to)", () =>
    isolated(
      Effect.gen(function* () {
        const fake = yield* FakeProvider.make({ default: { script: [FakeProvider.stall], stream: shape, text: full } })
        const { provider } = yield* Resilience.make(
          { paths: { chat: { retry: noJitter, timeouts: { firstTokenMs: 2_000 } } } },
          [fake.provider]
        )
        const out = yield* collect(provider.stream(ask), 30_000)
        assert.isTrue(Exit.isSuccess(out.exit))
        assert.strictEqual(out.text, full)
        assert.strictEqual((yield* fake.calls).length, 2)
      }).pipe(Effect.scoped)
    )
  )
})

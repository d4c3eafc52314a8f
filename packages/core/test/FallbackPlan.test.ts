import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Metric, Option, Ref, Stream } from "effect"
import type { LlmProvider, LlmResponse } from "@llm-resilience/core"
import { CircuitBreaker, FallbackPlan, LlmError } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

const request = { model: "ignored", messages: [{ role: "user" as const, content: "Hello there" }] }

/** Every series of `fallback_activations` in the (isolated) registry. */
const activations = Effect.map(Metric.snapshot, (snapshots) =>
  snapshots
    .filter((s) => s.id === "fallback_activations")
    .map((s): Record<string, string | number> => ({
      ...(s.attributes as Record<string, string>),
      count: (s.state as { count: number }).count
    }))
)

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, Metric.MetricRegistry, new Map())

/** A provider that always fails with `error`, counting its calls. */
const failing = Effect.fnUntraced(function* (name: string, error: LlmError.LlmError) {
  const calls = yield* Ref.make(0)
  const provider: LlmProvider.LlmProvider["Service"] = {
    name,
    complete: () =>
      Effect.andThen(
        Ref.update(calls, (n) => n + 1),
        Effect.fail(error)
      ),
    stream: () =>
      Stream.fromEffect(
        Effect.andThen(
          Ref.update(calls, (n) => n + 1),
          Effect.fail(error)
        )
      )
  }
  return { provider, calls: Ref.get(calls) }
})

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit))
  const reason = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  return (reason as { readonly error: E }).error
}

const base = { message: "m", provider: "primary", model: "m1" }
const overloaded = new LlmError.Overloaded({ ...base, status: 529 })

describe("FallbackPlan", () => {
  it.effect("moves on, exactly once in the metric, for each moving-on condition", () =>
    Effect.gen(function* () {
      const conditions: ReadonlyArray<LlmError.LlmError> = [
        new LlmError.RateLimited({ ...base, limit: "requests", retryAfterMs: 1000 }),
        overloaded,
        new LlmError.ServerError({ ...base, status: 503 }),
        new LlmError.Timeout({ ...base, phase: "total", afterMs: 30_000 }),
        new LlmError.ConnectionError(base),
        new LlmError.StreamTruncated({ ...base, receivedChunks: 3 }),
        new LlmError.CircuitOpen({ key: "primary/m1", retryAfterMs: 5_000 }),
        new LlmError.AdmissionRejected({ key: "primary/m1", reason: "queue-full" }),
        new LlmError.RetryBudgetExhausted({ key: "primary/m1", lastError: overloaded }),
        new LlmError.RetryAfterTooLong({ retryAfterMs: 90_000, maxRetryAfterMs: 60_000, lastError: overloaded }),
        new LlmError.DeadlineExceeded({ deadlineMs: 10_000, lastError: overloaded }),
        new LlmError.OutputInvalid({ issue: "Expected number", text: "{}" }),
        new LlmError.ContextLengthExceeded({ ...base, status: 400 }),
        new LlmError.QuotaExhausted({ ...base, status: 429 })
      ]
      for (const error of conditions) {
        yield* isolated(
          Effect.gen(function* () {
            const primary = yield* failing("primary", error)
            const backup = yield* FakeProvider.make({ name: "backup", default: { text: "from backup" } })
            const plan = yield* FallbackPlan.make([
              FallbackPlan.step(primary.provider, { model: "m1", contextWindow: 8_000 }),
              FallbackPlan.step(backup.provider, { model: "m2", contextWindow: 200_000 })
            ])
            const response = yield* plan.complete(request)
            assert.strictEqual(response.text, "from backup", error._tag)
            assert.strictEqual(yield* primary.calls, 1)
            assert.deepStrictEqual(
              (yield* backup.calls).map((c) => c.model),
              ["m2"]
            )
            assert.deepStrictEqual(yield* activations, [
              { from: "primary/m1", to: "backup/m2", reason: error._tag, count: 1 }
            ])
          })
        )
      }
    })
  )

  it.effect("a fatal error does not move on", () =>
    isolated(
      Effect.gen(function* () {
        for (const error of [new LlmError.BadRequest(base), new LlmError.Authentication({ ...base, status: 401 })]) {
          const primary = yield* failing("primary", error)
          const backup = yield* FakeProvider.make({ name: "backup" })
          const plan = yield* FallbackPlan.make([
            FallbackPlan.step(primary.provider, { model: "m1" }),
            FallbackPlan.step(backup.provider, { model: "m2" }),
            FallbackPlan.staticAnswer("busy")
          ])
          const exit = yield* Effect.exit(plan.complete(request))
          assert.strictEqual(failureOf(exit), error)
          assert.strictEqual((yield* backup.calls).length, 0)
        }
        assert.deepStrictEqual(yield* activations, [])
      })
    )
  )

  it.effect("a step's own moveOn overrides the defaults", () =>
    isolated(
      Effect.gen(function* () {
        const primary = yield* failing("primary", new LlmError.RateLimited({ ...base, limit: "tokens" }))
        const backup = yield* FakeProvider.make({ name: "backup" })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(primary.provider, { model: "m1", moveOn: ["Overloaded"] }),
          FallbackPlan.step(backup.provider, { model: "m2" })
        ])
        assert.strictEqual(failureOf(yield* Effect.exit(plan.complete(request)))._tag, "RateLimited")
        assert.strictEqual((yield* backup.calls).length, 0)
      })
    )
  )

  it.effect("a step whose breaker is open is skipped with zero provider calls", () =>
    isolated(
      Effect.gen(function* () {
        const primary = yield* FakeProvider.make({ name: "primary" })
        const backup = yield* FakeProvider.make({ name: "backup", default: { text: "from backup" } })
        const breaker = yield* CircuitBreaker.make()
        yield* breaker.isolate("primary/m1")
        const plan = yield* FallbackPlan.make(
          [FallbackPlan.step(primary.provider, { model: "m1" }), FallbackPlan.step(backup.provider, { model: "m2" })],
          { circuit: breaker }
        )
        const response = yield* plan.complete(request)
        assert.strictEqual(response.text, "from backup")
        assert.strictEqual((yield* primary.calls).length, 0)
        assert.deepStrictEqual(yield* activations, [
          { from: "primary/m1", to: "backup/m2", reason: "CircuitOpen", count: 1 }
        ])
      })
    )
  )

  it.effect("a context-length error skips only steps known to be no larger", () =>
    isolated(
      Effect.gen(function* () {
        const overflow = new LlmError.ContextLengthExceeded({ ...base, status: 400 })
        const small = yield* failing("small", overflow)
        const sameSize = yield* FakeProvider.make({ name: "same" })
        const smaller = yield* FakeProvider.make({ name: "smaller" })
        const unknownSize = yield* failing("unknown", overflow)
        const large = yield* FakeProvider.make({ name: "large", default: { text: "long context" } })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(small.provider, { model: "s", contextWindow: 8_000 }),
          FallbackPlan.step(sameSize.provider, { model: "s2", contextWindow: 8_000 }),
          FallbackPlan.step(smaller.provider, { model: "t", contextWindow: 4_000 }),
          FallbackPlan.step(unknownSize.provider, { model: "u" }),
          FallbackPlan.step(large.provider, { model: "l", contextWindow: 200_000 })
        ])
        assert.strictEqual((yield* plan.complete(request)).text, "long context")
        assert.strictEqual((yield* sameSize.calls).length + (yield* smaller.calls).length, 0)
        assert.strictEqual(yield* unknownSize.calls, 1)
        assert.deepStrictEqual(yield* activations, [
          { from: "small/s", to: "unknown/u", reason: "ContextLengthExceeded", count: 1 },
          { from: "unknown/u", to: "large/l", reason: "ContextLengthExceeded", count: 1 }
        ])
        // the same walk for a stream
        const chunks = yield* Stream.runCollect(plan.stream(request))
        assert.strictEqual(chunks[0]._tag === "TextDelta" ? chunks[0].text : "", "long context")
        assert.strictEqual((yield* sameSize.calls).length + (yield* smaller.calls).length, 0)
      })
    )
  )

  it.effect("a context-length error moves on when no step declares a window", () =>
    isolated(
      Effect.gen(function* () {
        const first = yield* failing("first", new LlmError.ContextLengthExceeded({ ...base, status: 400 }))
        const second = yield* FakeProvider.make({ name: "second", default: { text: "fits" } })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(first.provider, { model: "a" }),
          FallbackPlan.step(second.provider, { model: "b" })
        ])
        assert.strictEqual((yield* plan.complete(request)).text, "fits")
        assert.deepStrictEqual(yield* activations, [
          { from: "first/a", to: "second/b", reason: "ContextLengthExceeded", count: 1 }
        ])
      })
    )
  )

  it.effect("quota exhaustion moves to a step of another provider", () =>
    isolated(
      Effect.gen(function* () {
        const quota = new LlmError.QuotaExhausted({ ...base, provider: "openai", status: 429 })
        const openai = yield* failing("openai", quota)
        const anthropic = yield* FakeProvider.make({ name: "anthropic", default: { text: "claude" } })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(openai.provider, { model: "gpt-5.4" }),
          FallbackPlan.step(openai.provider, { model: "gpt-5.4-mini" }),
          FallbackPlan.step(anthropic.provider, { model: "claude" })
        ])
        assert.strictEqual((yield* plan.complete(request)).text, "claude")
        assert.strictEqual(yield* openai.calls, 1)
        assert.deepStrictEqual(yield* activations, [
          { from: "openai/gpt-5.4", to: "anthropic/claude", reason: "QuotaExhausted", count: 1 }
        ])
      })
    )
  )

  it.effect("a chain of failures: one activation per move, the last error when nothing is left", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* failing("a", overloaded)
        const b = yield* failing("b", new LlmError.ServerError({ ...base, status: 500 }))
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.step(b.provider, { model: "y" })
        ])
        assert.strictEqual(failureOf(yield* Effect.exit(plan.complete(request)))._tag, "ServerError")
        assert.deepStrictEqual(yield* activations, [{ from: "a/x", to: "b/y", reason: "Overloaded", count: 1 }])
      })
    )
  )

  it.effect("a step with a display label is still skipped when its provider/model circuit is open", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* failing("a", overloaded)
        const breaker = yield* CircuitBreaker.make()
        yield* breaker.isolate("a/x")
        const plan = yield* FallbackPlan.make(
          [FallbackPlan.step(a.provider, { model: "x", label: "Primary (fast)" }), FallbackPlan.staticAnswer("busy")],
          { circuit: breaker }
        )
        assert.strictEqual((yield* plan.complete(request)).text, "busy")
        assert.strictEqual(yield* a.calls, 0)
        assert.deepStrictEqual(yield* activations, [
          { from: "Primary (fast)", to: "static", reason: "CircuitOpen", count: 1 }
        ])
        // the same walk for a stream: skipped by its provider/model key, never by its label
        const chunks = yield* Stream.runCollect(plan.stream(request))
        assert.strictEqual(chunks[0]._tag === "TextDelta" ? chunks[0].text : "", "busy")
        assert.strictEqual(yield* a.calls, 0)
        yield* breaker.isolate("Primary (fast)")
        yield* breaker.reset("a/x")
        assert.strictEqual((yield* plan.complete(request)).text, "busy")
        assert.strictEqual(yield* a.calls, 1) // an open circuit under the label's name is not the step's
      })
    )
  )

  it.effect("degraded steps: a cache miss moves on to the static answer", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* failing("a", overloaded)
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.cached,
          FallbackPlan.staticAnswer("We are busy.")
        ])
        const miss = Layer.succeed(FallbackPlan.ResponseCache, { lookup: () => Effect.succeedNone })
        const response = yield* plan.complete(request).pipe(Effect.provide(miss))
        assert.strictEqual(response.text, "We are busy.")
        assert.strictEqual(response.provider, "fallback:static")
        const series = yield* activations
        assert.sameDeepMembers(series, [
          { from: "a/x", to: "cache", reason: "Overloaded", count: 1 },
          { from: "cache", to: "static", reason: "CacheMiss", count: 1 }
        ])
      })
    )
  )

  it.effect("degraded steps: a cached answer", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* failing("a", overloaded)
        const plan = yield* FallbackPlan.make([FallbackPlan.step(a.provider, { model: "x" }), FallbackPlan.cached])
        const answer: LlmResponse.LlmResponse = {
          text: "cached answer",
          finishReason: "stop",
          usage: { inputTokens: 3, outputTokens: 2 },
          provider: "a",
          model: "x"
        }
        const hit = Layer.succeed(FallbackPlan.ResponseCache, { lookup: () => Effect.succeed(Option.some(answer)) })
        const response = yield* plan.complete(request).pipe(Effect.provide(hit))
        assert.strictEqual(response.text, "cached answer")
        assert.strictEqual(response.provider, "fallback:cache")
      })
    )
  )

  it.effect("degraded steps: accepted for later is a typed non-answer carrying the ticket", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* failing("a", overloaded)
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.acceptForLater
        ])
        const program = Effect.gen(function* () {
          const exit = yield* Effect.exit(plan.complete({ ...request, metadata: { idempotencyKey: "req-42" } }))
          const accepted = failureOf(exit) as FallbackPlan.AcceptedForLater
          assert.instanceOf(accepted, FallbackPlan.AcceptedForLater)
          assert.strictEqual(accepted.ticketId, "req-42")
          assert.strictEqual(accepted.from, "a/x")
          assert.strictEqual(accepted.reason, "Overloaded")
          const queue = yield* FallbackPlan.LaterQueue
          assert.strictEqual(yield* queue.size, 1)
          assert.strictEqual((yield* queue.take).request.metadata?.idempotencyKey, "req-42")
        })
        yield* program.pipe(Effect.provide(FallbackPlan.layerLaterQueueMemory({ capacity: 10 })))
        assert.deepStrictEqual(yield* activations, [{ from: "a/x", to: "later", reason: "Overloaded", count: 1 }])
      })
    )
  )

  it.effect("streams move on before the first chunk, never after it", () =>
    isolated(
      Effect.gen(function* () {
        const dead = yield* FakeProvider.make({
          name: "dead",
          default: { behavior: FakeProvider.fail(FakeProvider.overloaded()) }
        })
        const cut = yield* FakeProvider.make({
          name: "cut",
          default: { stream: { chunks: 4 }, behavior: FakeProvider.truncate(2) }
        })
        const backup = yield* FakeProvider.make({ name: "backup", default: { text: "ok", stream: { chunks: 2 } } })
        const before = yield* FallbackPlan.make([
          FallbackPlan.step(dead.provider, { model: "x" }),
          FallbackPlan.step(backup.provider, { model: "y" })
        ])
        const chunks = yield* Stream.runCollect(before.stream(request))
        assert.strictEqual(chunks.at(-1)?._tag, "Finish")
        const after = yield* FallbackPlan.make([
          FallbackPlan.step(cut.provider, { model: "x" }),
          FallbackPlan.step(backup.provider, { model: "y" })
        ])
        const exit = yield* Effect.exit(Stream.runCollect(after.stream(request)))
        assert.strictEqual(failureOf(exit)._tag, "StreamTruncated")
        assert.strictEqual((yield* backup.calls).length, 1)
        assert.deepStrictEqual(yield* activations, [{ from: "dead/x", to: "backup/y", reason: "Overloaded", count: 1 }])
      })
    )
  )

  it.effect("an invalid plan fails construction naming the step", () =>
    Effect.gen(function* () {
      const a = yield* FakeProvider.make({ name: "a" })
      const exit = yield* Effect.exit(
        FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.staticAnswer("s"),
          FallbackPlan.step(a.provider, { model: "y" })
        ])
      )
      const error = failureOf(exit)
      assert.strictEqual(error.field, "steps[2]")
      const bad = failureOf(
        yield* Effect.exit(FallbackPlan.make([FallbackPlan.step(a.provider, { model: "x", contextWindow: -5 })]))
      )
      assert.strictEqual(bad.field, "steps[0].contextWindow")
    })
  )
})

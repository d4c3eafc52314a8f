import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Metric, Ref, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { LlmProvider } from "@llm-resilience/core"
import { Admission, FallbackPlan, Hedge, TokenEstimator } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

const request = { model: "ignored", messages: [{ role: "user" as const, content: "12345678" }] }

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, Metric.MetricRegistry, new Map())

const count = (metric: Metric.Metric<number, Metric.CounterState<number>>, attributes: Record<string, string>) =>
  Effect.map(Metric.value(Metric.withAttributes(metric, attributes)), (s) => s.count)

/**
 * A token-reservation stand-in for admission control: each call reserves `tokens` for as long as it runs and
 * gives them back in a finalizer (on success, failure or interruption), as `Admission` does.
 */
const reserving = (held: Ref.Ref<number>, tokens: number) => (p: LlmProvider.LlmProvider["Service"]) => ({
  ...p,
  complete: (r: Parameters<typeof p.complete>[0]) =>
    Effect.scoped(
      Effect.andThen(
        Effect.acquireRelease(
          Ref.update(held, (n) => n + tokens),
          () => Ref.update(held, (n) => n - tokens)
        ),
        p.complete(r)
      )
    )
})

describe("Hedge", () => {
  it.effect("the hedge wins: the primary is interrupted, its tokens refunded and its cost accounted", () =>
    isolated(
      Effect.gen(function* () {
        const held = yield* Ref.make(0)
        const losers = yield* Ref.make<Array<Hedge.Loser>>([])
        const slow = yield* FakeProvider.make({ name: "slow", default: { latency: "10 seconds", text: "slow" } })
        const fast = yield* FakeProvider.make({ name: "fast", default: { latency: "500 millis", text: "fast" } })
        const hedge = yield* Hedge.make(
          { delayMs: 1_000, maxRatio: 1 },
          {
            onLoser: (loser) => Ref.update(losers, (l) => [...l, loser])
          }
        )
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(slow.provider, { model: "a", hedge, policy: reserving(held, 100) }),
          FallbackPlan.step(fast.provider, { model: "b", policy: reserving(held, 10) })
        ])
        // the plan weighs the hedge's cost with the TokenEstimator in context (here: one token per character)
        const estimator = TokenEstimator.fromCounter((text) => text.length)
        const inputTokens = estimator.estimate(request).inputTokens
        assert.isAbove(inputTokens, 8)
        const fiber = yield* Effect.forkChild(
          Effect.flatMap(plan.complete(request), (r) => Effect.map(Ref.get(held), (h) => [r.text, h] as const)).pipe(
            Effect.provideService(TokenEstimator.TokenEstimator, estimator)
          )
        )
        yield* TestClock.adjust(999)
        assert.strictEqual(yield* Ref.get(held), 100)
        assert.strictEqual((yield* fast.calls).length, 0)
        yield* TestClock.adjust(1)
        assert.strictEqual(yield* Ref.get(held), 110)
        yield* TestClock.adjust(500)
        const [text, heldAtAnswer] = yield* Fiber.join(fiber)
        assert.strictEqual(text, "fast")
        assert.strictEqual(heldAtAnswer, 0)
        assert.deepStrictEqual(
          (yield* slow.calls).map((c) => c.outcome),
          ["interrupted"]
        )
        assert.strictEqual(yield* count(Hedge.hedgesStarted, { from: "slow/a", to: "fast/b" }), 1)
        assert.strictEqual(yield* count(Hedge.hedgeWins, { from: "slow/a", to: "fast/b", winner: "hedge" }), 1)
        assert.strictEqual(yield* count(Hedge.hedgeWastedCalls, { step: "slow/a" }), 1)
        assert.strictEqual(yield* count(Hedge.hedgeWastedInputTokens, { step: "slow/a" }), inputTokens)
        assert.deepStrictEqual(yield* Ref.get(losers), [
          { label: "slow/a", role: "primary", elapsedMs: 1_500, inputTokens }
        ])
      })
    )
  )

  it.effect("with the real Admission stage, the interrupted primary keeps its reservation: it was sent", () =>
    isolated(
      Effect.gen(function* () {
        const admission = yield* Admission.Admission
        const slow = yield* FakeProvider.make({ name: "slow", default: { latency: "10 seconds", text: "slow" } })
        const fast = yield* FakeProvider.make({ name: "fast", default: { latency: "500 millis", text: "fast" } })
        const hedge = yield* Hedge.make({ delayMs: 1_000, maxRatio: 1 })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(yield* Admission.wrapProvider(slow.provider), { model: "a", hedge }),
          FallbackPlan.step(yield* Admission.wrapProvider(fast.provider), { model: "b" })
        ])
        const reserved = Effect.map(admission.stats("slow/a"), (s) => s.reserved.tokens)
        const fiber = yield* Effect.forkChild(plan.complete({ ...request, maxOutputTokens: 100 }))
        yield* TestClock.adjust(1_000)
        const before = yield* reserved
        assert.isAbove(before, 100)
        yield* TestClock.adjust(500)
        assert.strictEqual((yield* Fiber.join(fiber)).text, "fast")
        // the provider counted the primary's request: its estimate stays until the window lets it go
        assert.strictEqual(yield* reserved, before)
        assert.deepStrictEqual(
          (yield* slow.calls).map((c) => c.outcome),
          ["interrupted"]
        )
      }).pipe(Effect.provide(Admission.layerMemory({ defaults: { tokensPerMinute: 100_000, requestsPerMinute: 100 } })))
    )
  )

  it.effect("the primary wins: the hedge is interrupted and refunded", () =>
    isolated(
      Effect.gen(function* () {
        const held = yield* Ref.make(0)
        const primary = yield* FakeProvider.make({ name: "p", default: { latency: "1200 millis", text: "primary" } })
        const backup = yield* FakeProvider.make({ name: "b", default: { latency: "5 seconds", text: "backup" } })
        const hedge = yield* Hedge.make({ delayMs: 1_000, maxRatio: 1 })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(primary.provider, { model: "a", hedge, policy: reserving(held, 100) }),
          FallbackPlan.step(backup.provider, { model: "b", policy: reserving(held, 10) })
        ])
        const fiber = yield* Effect.forkChild(plan.complete(request))
        yield* TestClock.adjust(1_200)
        assert.strictEqual((yield* Fiber.join(fiber)).text, "primary")
        assert.strictEqual(yield* Ref.get(held), 0)
        assert.deepStrictEqual(
          (yield* backup.calls).map((c) => c.outcome),
          ["interrupted"]
        )
        assert.strictEqual(yield* count(Hedge.hedgeWins, { from: "p/a", to: "b/b", winner: "primary" }), 1)
        assert.strictEqual(yield* count(Hedge.hedgeWastedCalls, { step: "b/b" }), 1)
      })
    )
  )

  it.effect("a primary that answers before the delay never starts a hedge", () =>
    isolated(
      Effect.gen(function* () {
        const primary = yield* FakeProvider.make({ name: "p", default: { latency: "300 millis" } })
        const backup = yield* FakeProvider.make({ name: "b" })
        const hedge = yield* Hedge.make({ delayMs: 1_000, maxRatio: 1 })
        const fiber = yield* Effect.forkChild(
          hedge.race(primary.provider.complete(request), backup.provider.complete(request), {
            primary: "p",
            hedge: "b"
          })
        )
        yield* TestClock.adjust(300)
        yield* Fiber.join(fiber)
        yield* TestClock.adjust(5_000)
        assert.strictEqual((yield* backup.calls).length, 0)
      })
    )
  )

  it.effect("streams: a stalled primary is hedged, the hedge's stream is delivered", () =>
    isolated(
      Effect.gen(function* () {
        const primary = yield* FakeProvider.make({ name: "p", default: { behavior: FakeProvider.stall } })
        const backup = yield* FakeProvider.make({ name: "b", default: { text: "hedged", stream: { chunks: 3 } } })
        const hedge = yield* Hedge.make({ delayMs: 1_000, maxRatio: 1 })
        const fiber = yield* Effect.forkChild(
          Stream.runCollect(
            hedge.raceStream(primary.provider.stream(request), backup.provider.stream(request), {
              primary: "p",
              hedge: "b"
            })
          )
        )
        yield* TestClock.adjust(1_000)
        const chunks = yield* Fiber.join(fiber)
        assert.strictEqual(chunks.filter((c) => c._tag === "TextDelta").length, 3)
        assert.strictEqual(chunks.at(-1)?._tag, "Finish")
        assert.deepStrictEqual(
          (yield* primary.calls).map((c) => c.outcome),
          ["interrupted"]
        )
      })
    )
  )

  it.effect("streams: no hedge once the primary has delivered a chunk", () =>
    isolated(
      Effect.gen(function* () {
        const primary = yield* FakeProvider.make({
          name: "p",
          default: { latency: "500 millis", stream: { chunks: 3, interval: "2 seconds" } }
        })
        const backup = yield* FakeProvider.make({ name: "b" })
        const hedge = yield* Hedge.make({ delayMs: 1_000, maxRatio: 1 })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(primary.provider, { model: "a", hedge }),
          FallbackPlan.step(backup.provider, { model: "b" })
        ])
        const fiber = yield* Effect.forkChild(Stream.runCollect(plan.stream(request)))
        yield* TestClock.adjust(5_000)
        const chunks = yield* Fiber.join(fiber)
        assert.strictEqual(chunks.length, 4)
        assert.strictEqual((yield* backup.calls).length, 0)
        assert.strictEqual(yield* count(Hedge.hedgesStarted, { from: "p/a", to: "b/b" }), 0)
      })
    )
  )

  it.effect("a hedge used after its scope closed dies at once, naming Hedge (no race runs unhedged)", () =>
    isolated(
      Effect.gen(function* () {
        const primary = yield* FakeProvider.make({ name: "p", default: { behavior: FakeProvider.stall } })
        const backup = yield* FakeProvider.make({ name: "b" })
        const scope = yield* Scope.make()
        const hedge = yield* Scope.provide(scope)(Hedge.make({ delayMs: 1_000, maxRatio: 1 }))
        yield* Scope.close(scope, Exit.void)
        const fiber = yield* Effect.forkChild(
          Effect.exit(
            hedge.race(primary.provider.complete(request), backup.provider.complete(request), {
              primary: "p",
              hedge: "b"
            })
          )
        )
        yield* TestClock.adjust(5_000)
        const exit = fiber.pollUnsafe()
        assert.isDefined(exit, "the race hangs on a stalled primary")
        const inner = (exit as Exit.Success<Exit.Exit<unknown, unknown>>).value
        assert.isTrue(Exit.hasDies(inner))
        assert.match(String(Cause.squash((inner as Exit.Failure<unknown, unknown>).cause)), /Hedge was used after/)
        assert.strictEqual((yield* primary.calls).length, 0)
        assert.strictEqual((yield* backup.calls).length, 0)
      })
    )
  )

  it.effect("the hedge cap: per minute, then as a ratio of requests", () =>
    isolated(
      Effect.gen(function* () {
        const primary = yield* FakeProvider.make({ name: "p", default: { latency: "2 seconds" } })
        const backup = yield* FakeProvider.make({ name: "b", default: { latency: "5 seconds" } })
        const race = (hedge: Hedge.Hedge) =>
          hedge.race(primary.provider.complete(request), backup.provider.complete(request), {
            primary: "p",
            hedge: "b"
          })
        const perMinute = yield* Hedge.make({ delayMs: 1_000, maxPerMinute: 1, maxRatio: 1 })
        for (let i = 0; i < 3; i++) {
          const fiber = yield* Effect.forkChild(race(perMinute))
          yield* TestClock.adjust(2_000)
          yield* Fiber.join(fiber)
        }
        assert.strictEqual((yield* backup.calls).length, 1)
        assert.strictEqual(yield* count(Hedge.hedgesCapped, { from: "p" }), 2)
        // a new minute: the cap allows one more
        yield* TestClock.adjust(60_000)
        const fiber = yield* Effect.forkChild(race(perMinute))
        yield* TestClock.adjust(2_000)
        yield* Fiber.join(fiber)
        assert.strictEqual((yield* backup.calls).length, 2)

        const ratio = yield* Hedge.make({ delayMs: 1_000, maxRatio: 0.25 })
        const fibers = yield* Effect.forEach(Array.from({ length: 8 }), () => Effect.forkChild(race(ratio)))
        yield* TestClock.adjust(2_000)
        yield* Fiber.joinAll(fibers)
        // 8 requests in the minute at 25 %: 2 hedges
        assert.strictEqual((yield* backup.calls).length, 4)
      })
    )
  )

  it.effect("the delay follows the observed latency percentile", () =>
    isolated(
      Effect.gen(function* () {
        const hedge = yield* Hedge.make({ percentile: 50, minSamples: 3, delayMs: 9_000, maxRatio: 1 })
        assert.strictEqual(hedge.currentDelayMs(), 9_000)
        for (const ms of [100, 300, 200]) {
          const fiber = yield* Effect.forkChild(
            hedge.race(Effect.sleep(ms), Effect.never, { primary: "p", hedge: "b" })
          )
          yield* TestClock.adjust(ms)
          yield* Fiber.join(fiber)
        }
        assert.strictEqual(hedge.currentDelayMs(), 200)
      })
    )
  )

  it.effect("invalid options fail construction naming the field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Hedge.make({ maxRatio: 2 }))
      assert.include(String(error), "maxRatio")
    })
  )
})

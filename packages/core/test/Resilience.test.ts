import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Metric } from "effect"
import { TestClock } from "effect/testing"
import { LlmError, LlmProvider, Resilience } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

const ask = (path?: string) => ({
  model: "m1",
  messages: [{ role: "user" as const, content: "hello there" }],
  maxOutputTokens: 50,
  ...(path === undefined ? {} : { metadata: { path } })
})

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, Metric.MetricRegistry, new Map())

describe("Resilience", () => {
  it.effect("one line of defaults makes an existing provider resilient", () =>
    Effect.gen(function* () {
      const llm = yield* LlmProvider.LlmProvider
      const fiber = yield* Effect.forkChild(llm.complete(ask()))
      yield* TestClock.adjust("1 second")
      const response = yield* Fiber.join(fiber)
      assert.strictEqual(response.text, "ok")
      const calls = yield* FakeProvider.calls
      assert.strictEqual(calls.length, 1)
    }).pipe(
      Effect.provide(
        Resilience.layer().pipe(
          Layer.provideMerge(FakeProvider.layer({ default: { latency: "100 millis", text: "ok" } }))
        )
      ),
      isolated
    )
  )

  it.effect("retries a transient error once at this layer, then succeeds", () =>
    Effect.gen(function* () {
      const llm = yield* LlmProvider.LlmProvider
      const fiber = yield* Effect.forkChild(llm.complete(ask()))
      yield* TestClock.adjust("10 seconds")
      const response = yield* Fiber.join(fiber)
      assert.strictEqual(response.text, "ok")
      const calls = yield* FakeProvider.calls
      assert.deepStrictEqual(
        calls.map((c) => c.outcome),
        ["Overloaded", "success"]
      )
    }).pipe(
      Effect.provide(
        Resilience.layer().pipe(
          Layer.provideMerge(
            FakeProvider.layer({
              default: { latency: "10 millis", text: "ok", script: [FakeProvider.fail(FakeProvider.overloaded())] }
            })
          )
        )
      ),
      isolated
    )
  )

  it.effect("falls back to the second provider when the primary is down, and counts the activation", () =>
    Effect.gen(function* () {
      const primary = yield* FakeProvider.make({
        name: "primary",
        default: { latency: "10 millis", behavior: FakeProvider.fail(FakeProvider.serverError(503)) }
      })
      const secondary = yield* FakeProvider.make({ name: "secondary", default: { latency: "10 millis", text: "b" } })
      const { provider } = yield* Resilience.make(
        {
          paths: { chat: { retry: "none" } },
          fallback: [
            { provider: "primary", model: "m1" },
            { provider: "secondary", model: "m2" }
          ]
        },
        [primary.provider, secondary.provider]
      )
      const fiber = yield* Effect.forkChild(provider.complete(ask("chat")))
      yield* TestClock.adjust("1 second")
      const response = yield* Fiber.join(fiber)
      assert.strictEqual(response.provider, "secondary")
      assert.strictEqual(response.model, "m2")
      assert.strictEqual((yield* primary.calls).length, 1)
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("the turn guard stops a runaway conversation at turn 21", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ default: { latency: "1 millis" } })
      const { provider } = yield* Resilience.make({}, [fake.provider])
      const turn = (i: number) =>
        provider.complete({
          model: "m1",
          messages: [{ role: "user", content: `step ${i}` }],
          metadata: { conversationId: "agent-1" }
        })
      let stoppedAt = 0
      for (let i = 1; i <= 30 && stoppedAt === 0; i++) {
        const fiber = yield* Effect.forkChild(Effect.exit(turn(i)))
        yield* TestClock.adjust("10 millis")
        const exit = yield* Fiber.join(fiber)
        if (Exit.isFailure(exit)) stoppedAt = i
      }
      assert.strictEqual(stoppedAt, 21)
      assert.strictEqual((yield* fake.calls).length, 20)
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("invalid configuration fails at construction naming the field", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make()
      const bad = [
        [{ breaker: { failureRateThreshold: 2 } }, "breaker.failureRateThreshold"],
        [{ paths: { chat: { timeouts: { totalMs: -1 } } } }, "paths.chat.timeouts.totalMs"],
        [{ models: { "fake/m": { requestsPerMinute: 1.5 } } }, "models.fake/m.requestsPerMinute"],
        [{ fallback: [{ provider: "nope", model: "x" }] }, "fallback[0].provider"],
        [{ spend: { budgets: [{ scope: "global", limitUsd: 1 }] } }, "spend"],
        [{ prices: {}, spend: { budgets: [{ scope: "global", limitUsd: -1 }] } }, "spend.budgets[0].limitUsd"],
        [{ fallback: [{ provider: "fake", model: "m" }, { cached: true }] }, "fallback[1]"]
      ] as const
      for (const [config, field] of bad) {
        const error = yield* Effect.flip(Resilience.make(config as Resilience.Config, [fake.provider]))
        assert.instanceOf(error, Resilience.InvalidConfig)
        assert.strictEqual(error.field, field)
      }
    }).pipe(Effect.scoped)
  )

  it.effect("a hung attempt on a path without timeouts is bounded by its retry profile's deadline", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ default: { behavior: FakeProvider.stall } })
      const { provider } = yield* Resilience.make({}, [fake.provider])
      const fiber = yield* Effect.forkChild(Effect.flip(provider.complete(ask())))
      yield* TestClock.adjust("9999 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "DeadlineExceeded")
      assert.strictEqual(error._tag === "DeadlineExceeded" && error.lastError?._tag, "Timeout")
      assert.deepStrictEqual(
        (yield* fake.calls).map((c) => [c.startedAt, c.endedAt, c.outcome]),
        [[0, 10_000, "interrupted"]]
      )
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("a fatal error is not retried and surfaces typed", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({
        default: {
          behavior: FakeProvider.fail(new LlmError.Authentication({ message: "bad key", status: 401 }))
        }
      })
      const { provider } = yield* Resilience.make({}, [fake.provider])
      const error = yield* Effect.flip(provider.complete(ask()))
      assert.strictEqual(error._tag, "Authentication")
      assert.strictEqual((yield* fake.calls).length, 1)
    }).pipe(Effect.scoped, isolated)
  )
})

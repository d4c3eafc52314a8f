import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Metric, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Resilience } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

// An interrupted caller must end interrupted: no defect from any stage reading the exit (telemetry's origin of
// the error, the breaker's outcome, admission's settlement), for `complete` and `stream`, whether the caller's
// fiber is interrupted or the scope the call runs in closes.

const ask = (path?: string) => ({
  model: "m1",
  messages: [{ role: "user" as const, content: "hello there" }],
  maxOutputTokens: 50,
  ...(path === undefined ? {} : { metadata: { path } })
})

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, Metric.MetricRegistry, new Map())

/** A resilient provider in front of a fake that answers after 2 s and streams one chunk every 10 s. */
const slow = (config: Resilience.Config = {}) =>
  Effect.gen(function* () {
    const fake = yield* FakeProvider.make({
      name: "fake",
      default: { latency: "2 seconds", text: "a b c", stream: { chunks: 3, interval: "10 seconds" } }
    })
    const { provider } = yield* Resilience.make(config, [fake.provider])
    return provider
  })

/** The caller's exit is interruption only, and the call is counted with the outcome `interrupted`. */
const assertInterruptedOnly = (exit: Exit.Exit<unknown, unknown>) =>
  Effect.gen(function* () {
    assert.isTrue(Exit.isFailure(exit), "the call must not succeed")
    if (Exit.isFailure(exit)) {
      assert.isTrue(Cause.hasInterruptsOnly(exit.cause), `expected interruption only, got ${Cause.pretty(exit.cause)}`)
    }
    const outcomes = (yield* Metric.snapshot)
      .filter((m) => m.id === "llm_requests" && m.type === "Counter" && (m.state as { count: number }).count > 0)
      .map((m) => m.attributes?.outcome)
    assert.deepStrictEqual(outcomes, ["interrupted"])
  })

const configs: ReadonlyArray<readonly [string, Resilience.Config]> = [
  ["defaults", {}],
  [
    "a fallback plan",
    {
      fallback: [
        { provider: "fake", model: "m1" },
        { provider: "fake", model: "m2" }
      ]
    }
  ]
]

describe("Resilience: an interrupted caller ends interrupted", () => {
  for (const [name, config] of configs) {
    it.effect(`complete, Fiber.interrupt (${name})`, () =>
      Effect.gen(function* () {
        const llm = yield* slow(config)
        const fiber = yield* Effect.forkChild(llm.complete(ask()))
        yield* TestClock.adjust("1 second")
        assert.isUndefined(fiber.pollUnsafe())
        yield* Fiber.interrupt(fiber)
        yield* assertInterruptedOnly(yield* Fiber.await(fiber))
      }).pipe(Effect.scoped, isolated)
    )

    it.effect(`complete, closing scope (${name})`, () =>
      Effect.gen(function* () {
        const llm = yield* slow(config)
        const scope = yield* Scope.make()
        const fiber = yield* Effect.forkIn(llm.complete(ask()), scope)
        yield* TestClock.adjust("1 second")
        yield* Scope.close(scope, Exit.void)
        yield* assertInterruptedOnly(yield* Fiber.await(fiber))
      }).pipe(Effect.scoped, isolated)
    )

    it.effect(`stream, Fiber.interrupt before the first chunk (${name})`, () =>
      Effect.gen(function* () {
        const llm = yield* slow(config)
        const fiber = yield* Effect.forkChild(Stream.runCollect(llm.stream(ask())))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(fiber)
        yield* assertInterruptedOnly(yield* Fiber.await(fiber))
      }).pipe(Effect.scoped, isolated)
    )

    it.effect(`stream, Fiber.interrupt after the first chunk (${name})`, () =>
      Effect.gen(function* () {
        const llm = yield* slow(config)
        let seen = 0
        const fiber = yield* Effect.forkChild(
          Stream.runForEach(llm.stream(ask()), () => Effect.sync(() => void seen++))
        )
        for (let i = 0; i < 20 && seen === 0; i++) yield* TestClock.adjust("1 second")
        assert.isAbove(seen, 0)
        assert.isUndefined(fiber.pollUnsafe())
        yield* Fiber.interrupt(fiber)
        yield* assertInterruptedOnly(yield* Fiber.await(fiber))
      }).pipe(Effect.scoped, isolated)
    )

    it.effect(`stream, closing scope (${name})`, () =>
      Effect.gen(function* () {
        const llm = yield* slow(config)
        const scope = yield* Scope.make()
        const fiber = yield* Effect.forkIn(Stream.runCollect(llm.stream(ask())), scope)
        yield* TestClock.adjust("1 second")
        yield* Scope.close(scope, Exit.void)
        yield* assertInterruptedOnly(yield* Fiber.await(fiber))
      }).pipe(Effect.scoped, isolated)
    )
  }
})

/**
 * The retry budget's default floor, from both sides: under a sustained total failure at 100 requests per
 * minute retries stay at or below 15% of requests, while a lone caller at low traffic still gets every retry
 * of its profile. Virtual time throughout (TestClock).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Random } from "effect"
import { TestClock } from "effect/testing"
import { LlmError, Resilience, Retry, RetryBudget } from "@llm-resilience/core"

/** A provider call that fails `failures` times, then answers; counts its attempts. */
const flaky = (failures: number, attempts: { n: number }) => {
  let left = failures
  return Effect.suspend(() => {
    attempts.n++
    return left-- > 0
      ? Effect.fail(new LlmError.ServerError({ message: "unavailable", status: 503 }))
      : Effect.succeed("ok")
  })
}

describe("RetryBudget: the default floor", () => {
  it.effect("total failure at 100 requests/min for 10 minutes: retries at most 15% of requests", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make()
      const attempts = { n: 0 }
      const REQUESTS = 1_000
      const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
      for (let i = 0; i < REQUESTS; i++) {
        const call = flaky(Number.POSITIVE_INFINITY, attempts).pipe(
          Retry.retry({ profile: "interactive", budget, key: "p/m" }),
          Effect.exit
        )
        fibers.push(yield* Effect.forkChild(call))
        yield* TestClock.adjust("600 millis")
      }
      yield* TestClock.adjust("1 minute")
      const exits = (yield* Fiber.joinAll(fibers)) as ReadonlyArray<Exit.Exit<unknown, unknown>>
      assert.isTrue(exits.every(Exit.isFailure))
      const retries = attempts.n - REQUESTS
      // 10% of each minute's 100 requests: the floor (5 a minute) adds nothing at this rate
      assert.isAtMost(retries / REQUESTS, 0.15)
      assert.isAtLeast(retries / REQUESTS, 0.09)
    }).pipe(Random.withSeed("floor-total-failure"))
  )

  it.effect("a lone caller gets every retry of its profile: 2 for interactive, 5 for background", () =>
    Effect.gen(function* () {
      for (const [profile, retries] of [
        ["interactive", 2],
        ["background", 5]
      ] as const) {
        const budget = yield* RetryBudget.make()
        // one request every ten minutes, each failing as often as its profile retries, then answering
        for (let i = 0; i < 3; i++) {
          const attempts = { n: 0 }
          const fiber = yield* Effect.forkChild(
            flaky(retries, attempts).pipe(Retry.retry({ profile, budget, key: "p/m" }))
          )
          yield* TestClock.adjust("10 minutes")
          assert.strictEqual(yield* Fiber.join(fiber), "ok", `${profile} request ${i}`)
          assert.strictEqual(attempts.n, retries + 1)
        }
      }
    }).pipe(Random.withSeed("floor-lone-caller"))
  )

  it.effect("through Resilience's defaults: a lone caller's request failing twice is answered", () =>
    Effect.gen(function* () {
      const attempts = { n: 0 }
      const call = flaky(2, attempts)
      const raw = {
        name: "p",
        complete: (request: { readonly model: string }) =>
          Effect.map(call, (text) => ({
            text,
            finishReason: "stop" as const,
            usage: { inputTokens: 1, outputTokens: 1 },
            provider: "p",
            model: request.model
          })),
        stream: () => {
          throw new Error("unused")
        }
      }
      const { provider } = yield* Resilience.make({}, [raw])
      const fiber = yield* Effect.forkChild(
        provider.complete({ model: "m", messages: [{ role: "user", content: "Hi" }] })
      )
      yield* TestClock.adjust("1 minute")
      assert.strictEqual((yield* Fiber.join(fiber)).text, "ok")
      assert.strictEqual(attempts.n, 3)
    }).pipe(Effect.scoped, Random.withSeed("floor-resilience"))
  )
})

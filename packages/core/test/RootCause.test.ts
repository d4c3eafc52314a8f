import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Metric, Schema, Stream } from "effect"
import type { LlmProvider } from "@llm-resilience/core"
import { FallbackPlan, LlmError, Retry, RetryBudget } from "@llm-resilience/core"

const base = { message: "overloaded", provider: "anthropic", model: "claude-sonnet-4-6" }
const overloaded = new LlmError.Overloaded({ ...base, status: 529 })
const open = new LlmError.CircuitOpen({ key: "anthropic/claude-sonnet-4-6", retryAfterMs: 5_000 })
const request = { model: "claude-sonnet-4-6", messages: [{ role: "user" as const, content: "Hi" }] }

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit))
  const reason = Exit.isFailure(exit) ? exit.cause.reasons.find(Cause.isFailReason) : undefined
  return reason!.error
}

/** A provider whose every call fails with `error`. */
const failing = (name: string, error: LlmError.LlmError): LlmProvider.LlmProvider["Service"] => ({
  name,
  complete: () => Effect.fail(error),
  stream: () => Stream.fail(error)
})

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, Metric.MetricRegistry, new Map())

describe("LlmError.rootCause", () => {
  it("is the error itself for a provider error", () => {
    assert.strictEqual(LlmError.rootCause(overloaded), overloaded)
  })

  it("follows lastError through every give-up, however deep", () => {
    const limited = new LlmError.RateLimited({ ...base, limit: "tokens", retryAfterMs: 90_000, status: 429 })
    const wrapped: ReadonlyArray<[LlmError.LlmError, LlmError.ProviderError]> = [
      [new LlmError.RetryBudgetExhausted({ key: "k", lastError: overloaded }), overloaded],
      [new LlmError.DeadlineExceeded({ deadlineMs: 1_000, lastError: overloaded }), overloaded],
      [new LlmError.RetryAfterTooLong({ retryAfterMs: 90_000, maxRetryAfterMs: 60_000, lastError: limited }), limited],
      [
        new LlmError.AcceptedForLater({
          ticketId: "t",
          acceptedAt: 0,
          from: "anthropic/claude-sonnet-4-6",
          reason: "DeadlineExceeded",
          lastError: new LlmError.DeadlineExceeded({ deadlineMs: 1_000, lastError: limited })
        }),
        limited
      ]
    ]
    for (const [error, cause] of wrapped) assert.strictEqual(LlmError.rootCause(error), cause, error._tag)
  })

  it("is undefined when no provider was reached", () => {
    const unreached: ReadonlyArray<LlmError.LlmError> = [
      open,
      new LlmError.AdmissionRejected({ key: "k", reason: "queue-full" }),
      new LlmError.RetryBudgetExhausted({ key: "k", lastError: open }),
      new LlmError.DeadlineExceeded({ deadlineMs: 1_000 }),
      new LlmError.BudgetExceeded({ scope: "global", spentUsd: 2, limitUsd: 1 }),
      new LlmError.AcceptedForLater({ ticketId: "t", acceptedAt: 0, from: "a/x", reason: "CircuitOpen" })
    ]
    for (const error of unreached) assert.isUndefined(LlmError.rootCause(error), error._tag)
  })

  it("survives a round trip through the schema (AcceptedForLater keeps its lastError)", () => {
    const accepted = new LlmError.AcceptedForLater({
      ticketId: "t",
      acceptedAt: 0,
      from: "a/x",
      reason: "RetryBudgetExhausted",
      lastError: new LlmError.RetryBudgetExhausted({ key: "a/x", lastError: overloaded })
    })
    const decoded = Schema.decodeUnknownSync(LlmError.LlmError)(Schema.encodeUnknownSync(LlmError.LlmError)(accepted))
    assert.instanceOf(decoded, LlmError.AcceptedForLater)
    const cause = LlmError.rootCause(decoded)
    assert.instanceOf(cause, LlmError.Overloaded)
    assert.strictEqual(cause.status, 529)
  })

  it.effect("finds the provider error behind the retry stage's give-ups", () =>
    Effect.gen(function* () {
      const budget = yield* RetryBudget.make({ ratio: 0.1, minRetries: 0 })
      const refused = failureOf(
        yield* Effect.fail(overloaded).pipe(Retry.retry({ profile: "interactive", budget, key: "k" }), Effect.exit)
      )
      assert.strictEqual(refused._tag, "RetryBudgetExhausted")
      assert.strictEqual(LlmError.rootCause(refused), overloaded)

      const limited = new LlmError.RateLimited({ ...base, limit: "requests", retryAfterMs: 120_000, status: 429 })
      const tooLong = failureOf(yield* Effect.fail(limited).pipe(Retry.retry(), Effect.exit))
      assert.strictEqual(tooLong._tag, "RetryAfterTooLong")
      assert.strictEqual(LlmError.rootCause(tooLong), limited)

      // no jitter: the first delay (5 s) is past the deadline (1 s) whatever the random draw
      const profile = yield* Retry.profile({
        name: "short",
        base: "5 seconds",
        cap: "5 seconds",
        deadline: "1 second",
        jitter: "none"
      })
      const late = failureOf(yield* Effect.fail(overloaded).pipe(Retry.retry({ profile }), Effect.exit))
      assert.strictEqual(late._tag, "DeadlineExceeded")
      assert.strictEqual(LlmError.rootCause(late), overloaded)
    })
  )

  it.effect("finds the provider error behind an exhausted fallback plan", () =>
    isolated(
      Effect.gen(function* () {
        const quota = new LlmError.QuotaExhausted({ ...base, provider: "openai", model: "gpt-5.4-mini", status: 429 })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(failing("anthropic", overloaded), { model: "claude-sonnet-4-6" }),
          FallbackPlan.step(failing("openai", new LlmError.RetryBudgetExhausted({ key: "openai", lastError: quota })), {
            model: "gpt-5.4-mini"
          })
        ])
        const exhausted = failureOf(yield* Effect.exit(plan.complete(request)))
        assert.strictEqual(LlmError.rootCause(exhausted), quota)

        const later = yield* FallbackPlan.make([
          FallbackPlan.step(
            failing("anthropic", new LlmError.DeadlineExceeded({ deadlineMs: 1, lastError: overloaded })),
            {
              model: "claude-sonnet-4-6"
            }
          ),
          FallbackPlan.acceptForLater
        ])
        const accepted = failureOf(
          yield* Effect.exit(later.complete(request)).pipe(
            Effect.provide(FallbackPlan.layerLaterQueueMemory({ capacity: 1 }))
          )
        )
        assert.instanceOf(accepted, LlmError.AcceptedForLater)
        assert.strictEqual(accepted.lastError?._tag, "DeadlineExceeded")
        assert.strictEqual(LlmError.rootCause(accepted), overloaded)
      })
    )
  )
})

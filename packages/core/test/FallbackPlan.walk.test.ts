/**
 * More of the fallback plan's walk, through its public API: reports that steps bring with their answers and
 * errors, degraded steps after an exhausted quota, a hedge with nowhere to go.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { LlmProvider, LlmRequest } from "@llm-resilience/core"
import { CallReport, FallbackPlan, Hedge, LlmError } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

const request: LlmRequest.LlmRequest = { model: "asked", messages: [{ role: "user", content: "Hello there" }] }

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, Metric.MetricRegistry, new Map())

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit))
  const reason = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  assert.isDefined(reason)
  return (reason as { readonly error: E }).error
}

const base = { message: "m", provider: "primary", model: "m1" }

type Attempt = CallReport.AttemptReport
const attempt = (step: string, outcome: string, next: Attempt["next"], admissionWaitMs = 0): Attempt => ({
  step,
  outcome,
  admissionWaitMs,
  next
})

/** A provider whose every call fails with a new error from `error`, carrying `report` (as a policy's would). */
const reporting = (
  name: string,
  error: () => LlmError.LlmError,
  report: CallReport.Report
): LlmProvider.LlmProvider["Service"] => {
  const failed = Effect.suspend(() => Effect.fail(CallReport.attach(error(), report)))
  return { name, complete: () => failed, stream: () => Stream.fromEffect(failed) }
}

describe("FallbackPlan: the walk's report", () => {
  it.effect("errors that carry their own reports: each step's attempts once, then the last error's", () =>
    isolated(
      Effect.gen(function* () {
        const a = reporting("a", () => new LlmError.Overloaded({ ...base, status: 529 }), {
          attempts: [attempt("a/x", "Overloaded", "retry", 2), attempt("a/x", "Overloaded", "gave-up", 3)],
          admissionWaitMs: 5
        })
        // a step that gave up without an attempt adds none
        const idle = reporting("idle", () => new LlmError.AdmissionRejected({ key: "idle/i", reason: "queue-full" }), {
          attempts: [],
          admissionWaitMs: 0
        })
        const b = reporting("b", () => new LlmError.ServerError({ ...base, status: 500 }), {
          attempts: [attempt("b/y", "ServerError", "gave-up", 4)],
          admissionWaitMs: 4
        })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a, { model: "x" }),
          FallbackPlan.step(idle, { model: "i" }),
          FallbackPlan.step(b, { model: "y" })
        ])
        const expected: CallReport.Report = {
          attempts: [
            attempt("a/x", "Overloaded", "retry", 2),
            { ...attempt("a/x", "Overloaded", "fallback", 3), reason: "Overloaded" },
            { ...attempt("b/y", "ServerError", "fallback", 4), reason: "ServerError" }
          ],
          admissionWaitMs: 9
        }
        const error = failureOf(yield* Effect.exit(plan.complete(request)))
        assert.strictEqual(error._tag, "ServerError")
        assert.deepStrictEqual(CallReport.of(error), expected)
        const streamed = failureOf(yield* Effect.exit(Stream.runCollect(plan.stream(request))))
        assert.deepStrictEqual(CallReport.of(streamed), expected)
      })
    )
  )

  it.effect("a later step's error without a report of its own gets the report of the steps before it", () =>
    isolated(
      Effect.gen(function* () {
        const a = reporting("a", () => new LlmError.Overloaded({ ...base, status: 529 }), {
          attempts: [attempt("a/x", "Overloaded", "gave-up", 1)],
          admissionWaitMs: 1
        })
        const b = yield* FakeProvider.make({
          name: "b",
          default: { behavior: FakeProvider.fail(new LlmError.BadRequest({ ...base, status: 400 })) }
        })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a, { model: "x" }),
          FallbackPlan.step(b.provider, { model: "y" })
        ])
        const error = failureOf(yield* Effect.exit(plan.complete(request)))
        assert.strictEqual(error._tag, "BadRequest")
        assert.deepStrictEqual(CallReport.of(error), {
          attempts: [{ ...attempt("a/x", "Overloaded", "fallback", 1), reason: "Overloaded" }],
          admissionWaitMs: 1
        })
      })
    )
  )

  it.effect("an answer that carries its own report: the moves, then its attempts and its answeredBy", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* FakeProvider.make({
          name: "a",
          default: { behavior: FakeProvider.fail(FakeProvider.overloaded()) }
        })
        const b = yield* FakeProvider.make({ name: "b", default: { text: "b" } })
        const own: CallReport.Report = {
          attempts: [attempt("b/y", "RateLimited", "retry", 1), attempt("b/y", "ok", "answered", 2)],
          answeredBy: "b (reported)",
          admissionWaitMs: 3
        }
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x", label: "Primary" }),
          FallbackPlan.step(b.provider, {
            model: "y",
            policy: (p) => ({
              ...p,
              complete: (r) => Effect.map(p.complete(r), (response) => ({ ...response, report: own }))
            })
          })
        ])
        const response = yield* plan.complete(request)
        assert.strictEqual(response.text, "b")
        // a step's attempts are recorded under its provider/model key, whatever its label
        assert.deepStrictEqual(response.report, {
          attempts: [{ ...attempt("a/x", "Overloaded", "fallback"), reason: "Overloaded" }, ...own.attempts],
          answeredBy: "b (reported)",
          admissionWaitMs: 3
        })
      })
    )
  )
})

describe("FallbackPlan: eligibility", () => {
  it.effect("after an exhausted quota, degraded steps still answer", () =>
    isolated(
      Effect.gen(function* () {
        const quota = yield* FakeProvider.make({
          name: "openai",
          default: {
            behavior: FakeProvider.fail(new LlmError.QuotaExhausted({ ...base, provider: "openai", status: 429 }))
          }
        })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(quota.provider, { model: "x" }),
          FallbackPlan.staticAnswer("static")
        ])
        assert.strictEqual((yield* plan.complete(request)).text, "static")
      })
    )
  )

  it.effect("a hedge with no later provider step is a plain call", () =>
    isolated(
      Effect.gen(function* () {
        const slow = yield* FakeProvider.make({ name: "slow", default: { latency: "5 seconds", text: "slow" } })
        const hedge = yield* Hedge.make({ delayMs: 1_000, maxRatio: 1 })
        const plan = yield* FallbackPlan.make([FallbackPlan.step(slow.provider, { model: "x", hedge })])
        const fiber = yield* Effect.forkChild(plan.complete(request))
        yield* TestClock.adjust(5_000)
        assert.strictEqual((yield* Fiber.join(fiber)).text, "slow")
        assert.strictEqual((yield* slow.calls).length, 1)
      }).pipe(Effect.scoped)
    )
  )
})

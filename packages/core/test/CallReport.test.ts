import { assert, describe, it } from "@effect/vitest"
import { type Duration, Effect, Fiber, Metric, Stream } from "effect"
import { TestClock } from "effect/testing"
import { CallReport, FallbackPlan, LlmError, type LlmProvider, Resilience } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

const ask = { model: "m1", messages: [{ role: "user" as const, content: "hello there" }], maxOutputTokens: 50 }

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, Metric.MetricRegistry, new Map())

/** Runs `self` with a listener that collects events. */
const withEvents = <A, E>(self: (events: Array<CallReport.Event>) => Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const events: Array<CallReport.Event> = []
    const result = yield* self(events).pipe(
      Effect.provideService(CallReport.Events, (event) => Effect.sync(() => events.push(event)))
    )
    // listeners run in fibers of their own
    for (let i = 0; i < 5; i++) yield* Effect.yieldNow
    return { events, result }
  })

const drive = <A, E>(self: Effect.Effect<A, E>, advance: Duration.Input) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(Effect.exit(self))
    yield* TestClock.adjust(advance)
    return yield* Fiber.join(fiber)
  })

const overloadedThen = (text: string, failures: number) => ({
  latency: "10 millis" as const,
  text,
  script: Array.from({ length: failures }, () => FakeProvider.fail(FakeProvider.overloaded()))
})

/** One provider `fake` whose first `failures` calls are overloaded, behind `Resilience` with `config`. */
const single = (config: Resilience.Config, failures: number) =>
  Effect.gen(function* () {
    const fake = yield* FakeProvider.make({ name: "fake", default: overloadedThen("ok", failures) })
    return (yield* Resilience.make(config, [fake.provider])).provider
  })

/** `primary` always overloaded, `secondary` answers, retried once per step. */
const twoSteps = Effect.gen(function* () {
  const primary = yield* FakeProvider.make({
    name: "primary",
    default: { latency: "10 millis", behavior: FakeProvider.fail(FakeProvider.overloaded()) }
  })
  const secondary = yield* FakeProvider.make({ name: "secondary", default: overloadedThen("b", 0) })
  return (yield* Resilience.make(
    {
      paths: { default: { retry: { maxRetries: 1, jitter: "none", baseMs: 100 } } },
      fallback: [
        { provider: "primary", model: "m1" },
        { provider: "secondary", model: "m2" }
      ]
    },
    [primary.provider, secondary.provider]
  )).provider
})

const complete = (llm: LlmProvider.LlmProvider["Service"]) => llm.complete(ask)

describe("CallReport", () => {
  it.effect("a call answered at once reports one attempt", () =>
    Effect.gen(function* () {
      const llm = yield* single({}, 0)
      const exit = yield* drive(complete(llm), "1 second")
      assert.strictEqual(exit._tag, "Success")
      if (exit._tag !== "Success") return
      assert.deepStrictEqual(exit.value.report, {
        attempts: [{ step: "fake/m1", outcome: "ok", admissionWaitMs: 0, next: "answered" }],
        answeredBy: "fake/m1",
        admissionWaitMs: 0
      })
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("a provider failing every call with one error instance: each call has its own report", () =>
    Effect.gen(function* () {
      const shared = (name: string) => new LlmError.Overloaded({ provider: name, model: "m1", message: "busy" })
      const errors = { primary: shared("primary"), secondary: shared("secondary") }
      const failing = (name: keyof typeof errors): LlmProvider.LlmProvider["Service"] => ({
        name,
        complete: () => Effect.fail(errors[name]),
        stream: () => Stream.fail(errors[name])
      })
      const plan = yield* FallbackPlan.make([
        FallbackPlan.step(failing("primary"), { model: "m1" }),
        FallbackPlan.step(failing("secondary"), { model: "m2" })
      ])
      const resilient = (yield* Resilience.make(
        {
          paths: { default: { retry: "none" } },
          fallback: [
            { provider: "primary", model: "m1" },
            { provider: "secondary", model: "m2" }
          ]
        },
        [failing("primary"), failing("secondary")]
      )).provider
      for (const llm of [plan, resilient]) {
        const reports: Array<CallReport.Report | undefined> = []
        for (let i = 0; i < 3; i++) {
          const error = yield* Effect.flip(llm.complete(ask))
          assert.strictEqual(error._tag, "Overloaded")
          reports.push(CallReport.of(error))
        }
        assert.deepStrictEqual(
          reports[0]?.attempts.map((a) => [a.step, a.next]),
          [
            ["primary/m1", "fallback"],
            ["secondary/m2", "fallback"]
          ]
        )
        assert.deepStrictEqual(reports[2], reports[0])
        // the provider's own instances never carry a call's report
        assert.strictEqual(CallReport.of(errors.primary), undefined)
        assert.strictEqual(CallReport.of(errors.secondary), undefined)
      }
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("reports a retry and a fallback move on the answer", () =>
    Effect.gen(function* () {
      const llm = yield* twoSteps
      const exit = yield* drive(complete(llm), "10 seconds")
      assert.strictEqual(exit._tag, "Success")
      if (exit._tag !== "Success") return
      assert.deepStrictEqual(exit.value.report, {
        attempts: [
          {
            step: "primary/m1",
            outcome: "Overloaded",
            admissionWaitMs: 0,
            next: "retry",
            reason: "backoff",
            waitedMs: 100
          },
          { step: "primary/m1", outcome: "Overloaded", admissionWaitMs: 0, next: "fallback", reason: "Overloaded" },
          { step: "secondary/m2", outcome: "ok", admissionWaitMs: 0, next: "answered" }
        ],
        answeredBy: "secondary/m2",
        admissionWaitMs: 0
      })
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("a failed call's error carries the report, readable in catchTag", () =>
    Effect.gen(function* () {
      const llm = yield* single({ paths: { default: { retry: { maxRetries: 1, jitter: "none", baseMs: 50 } } } }, 5)
      const exit = yield* drive(
        complete(llm).pipe(Effect.catchTag("Overloaded", (error) => Effect.succeed(CallReport.of(error)))),
        "10 seconds"
      )
      assert.strictEqual(exit._tag, "Success")
      if (exit._tag !== "Success") return
      assert.deepStrictEqual(exit.value, {
        attempts: [
          {
            step: "fake/m1",
            outcome: "Overloaded",
            admissionWaitMs: 0,
            next: "retry",
            reason: "backoff",
            waitedMs: 50
          },
          { step: "fake/m1", outcome: "Overloaded", admissionWaitMs: 0, next: "gave-up", reason: "max-retries" }
        ],
        admissionWaitMs: 0
      })
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("reports the admission wait of a queued call", () =>
    Effect.gen(function* () {
      const llm = yield* single({ models: { "fake/m1": { maxConcurrency: 1 } } }, 0)
      const first = yield* Effect.forkChild(complete(llm))
      const second = yield* Effect.forkChild(complete(llm))
      yield* TestClock.adjust("1 second")
      const a = yield* Fiber.join(first)
      const b = yield* Fiber.join(second)
      assert.strictEqual(a.report?.admissionWaitMs, 0)
      assert.strictEqual(b.report?.admissionWaitMs, 10)
      assert.strictEqual(b.report?.attempts[0].admissionWaitMs, 10)
    }).pipe(Effect.scoped, isolated)
  )

  describe("events", () => {
    it.effect("retry", () =>
      Effect.gen(function* () {
        const llm = yield* single({ paths: { default: { retry: { jitter: "none", baseMs: 100 } } } }, 1)
        const { events } = yield* withEvents(() => drive(complete(llm), "10 seconds"))
        assert.deepStrictEqual(events, [
          { _tag: "Retried", key: "fake/m1", attempt: 1, error: "Overloaded", reason: "backoff", delayMs: 100 }
        ])
      }).pipe(Effect.scoped, isolated)
    )

    it.effect("give-up", () =>
      Effect.gen(function* () {
        const llm = yield* single({ paths: { default: { retry: { maxRetries: 0 } } } }, 1)
        const { events } = yield* withEvents(() => drive(complete(llm), "10 seconds"))
        assert.deepStrictEqual(events, [
          { _tag: "GaveUp", key: "fake/m1", attempt: 1, error: "Overloaded", reason: "max-retries" }
        ])
      }).pipe(Effect.scoped, isolated)
    )

    it.effect("fallback move", () =>
      Effect.gen(function* () {
        const llm = yield* twoSteps
        const { events } = yield* withEvents(() => drive(complete(llm), "10 seconds"))
        assert.deepStrictEqual(
          events.filter((e) => e._tag === "FallbackMoved"),
          [{ _tag: "FallbackMoved", from: "primary/m1", to: "secondary/m2", reason: "Overloaded" }]
        )
      }).pipe(Effect.scoped, isolated)
    )

    it.effect("breaker transition", () =>
      Effect.gen(function* () {
        const llm = yield* single({ paths: { default: { retry: "none" } }, breaker: { consecutiveFailures: 2 } }, 5)
        const { events } = yield* withEvents(() =>
          Effect.andThen(drive(complete(llm), "1 second"), drive(complete(llm), "1 second"))
        )
        assert.deepStrictEqual(events, [{ _tag: "BreakerTransition", key: "fake/m1", from: "Closed", to: "Open" }])
      }).pipe(Effect.scoped, isolated)
    )

    it.effect("admission wait", () =>
      Effect.gen(function* () {
        const llm = yield* single({ models: { "fake/m1": { maxConcurrency: 1 } } }, 0)
        const { events } = yield* withEvents(() =>
          drive(Effect.all([complete(llm), complete(llm)], { concurrency: 2 }), "1 second")
        )
        assert.deepStrictEqual(events, [{ _tag: "AdmissionWaited", key: "fake/m1", waitedMs: 10 }])
      }).pipe(Effect.scoped, isolated)
    )

    it.effect("budget refusal", () =>
      Effect.gen(function* () {
        const llm = yield* single({ retryBudget: { ratio: 0, minRetries: 0 } }, 1)
        const { events } = yield* withEvents(() => drive(complete(llm), "10 seconds"))
        assert.deepStrictEqual(
          events.map((e) => e._tag),
          ["BudgetRefused", "GaveUp"]
        )
        assert.deepStrictEqual(events[0], { _tag: "BudgetRefused", key: "fake/m1", error: "Overloaded" })
      }).pipe(Effect.scoped, isolated)
    )

    it.effect("a failing listener never fails the call", () =>
      Effect.gen(function* () {
        const llm = yield* single({ paths: { default: { retry: { jitter: "none", baseMs: 100 } } } }, 1)
        const exit = yield* drive(complete(llm), "10 seconds").pipe(
          Effect.provideService(CallReport.Events, () => Effect.die("listener broke"))
        )
        assert.strictEqual(exit._tag, "Success")
      }).pipe(Effect.scoped, isolated)
    )
  })
})

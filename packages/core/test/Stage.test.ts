import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric } from "effect"
import { TestClock } from "effect/testing"
import { CircuitBreaker, LlmError, Resilience, Stage } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

const request = { model: "m1", messages: [{ role: "user" as const, content: "hello" }] }

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, Metric.MetricRegistry, new Map())

const overloaded = (retryAfterMs?: number) =>
  new LlmError.Overloaded({
    message: "overloaded",
    status: 529,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs })
  })
const badRequest = () => new LlmError.BadRequest({ message: "no", status: 400 })

/** The breaker's status after `errors`, one call each, through a standalone breaker. */
const standalone = (errors: ReadonlyArray<LlmError.ProviderError>, options?: CircuitBreaker.Options) =>
  Effect.gen(function* () {
    const breaker = yield* CircuitBreaker.make(options)
    for (const e of errors) yield* Effect.exit(Effect.fail(e).pipe(breaker.protect("fake/m1")))
    return yield* breaker.status("fake/m1")
  }).pipe(isolated)

/** The same calls through `Resilience` (no retries), with the breaker built from `options` or provided. */
const pipeline = (errors: ReadonlyArray<LlmError.ProviderError>, provided?: CircuitBreaker.Options) =>
  Effect.gen(function* () {
    const fake = yield* FakeProvider.make({ default: { script: errors.map((e) => FakeProvider.fail(e)) } })
    const build = Resilience.make({ paths: { default: { retry: "none" } } }, [fake.provider])
    const { provider, stages } = yield* provided === undefined
      ? build
      : Effect.provideServiceEffect(build, CircuitBreaker.CircuitBreaker, CircuitBreaker.make(provided))
    for (let i = 0; i < errors.length; i++) yield* Effect.exit(provider.complete(request))
    assert.strictEqual((yield* fake.calls).length, errors.length)
    return yield* stages.breaker.status("fake/m1")
  }).pipe(Effect.scoped, isolated)

describe("one classification of attempt outcomes", () => {
  it.effect("five Overloaded with a 60 s Retry-After open the circuit for 60 s, standalone and in the pipeline", () =>
    Effect.gen(function* () {
      const errors = Array.from({ length: 5 }, () => overloaded(60_000))
      const alone = yield* standalone(errors)
      const inPipeline = yield* pipeline(errors)
      assert.deepStrictEqual(alone, { _tag: "Open", key: "fake/m1", retryAfterMs: 60_000, openings: 1 })
      assert.deepStrictEqual(inPipeline, alone)
    })
  )

  it.effect("Overloaded x4, a 400, then Overloaded: the answer resets the streak, standalone and in the pipeline", () =>
    Effect.gen(function* () {
      const errors = [overloaded(), overloaded(), overloaded(), overloaded(), badRequest(), overloaded()]
      const alone = yield* standalone(errors)
      const inPipeline = yield* pipeline(errors)
      assert.strictEqual(alone._tag, "Closed")
      assert.strictEqual(alone._tag === "Closed" && alone.consecutiveFailures, 1)
      assert.deepStrictEqual(inPipeline, alone)
    })
  )

  it.effect("a provided breaker keeps its own failure tags in the pipeline", () =>
    Effect.gen(function* () {
      const own = { failureTags: ["BadRequest"], consecutiveFailures: 2 }
      const opened = yield* pipeline([badRequest(), badRequest()], own)
      assert.strictEqual(opened._tag, "Open")
      assert.deepStrictEqual(opened, yield* standalone([badRequest(), badRequest()], own))
      // and what it does not list counts as an answer: Overloaded does not trip it
      const closed = yield* pipeline([overloaded(), overloaded(), overloaded()], own)
      assert.strictEqual(closed._tag === "Closed" && closed.consecutiveFailures, 0)
    })
  )
})

describe("Stage: the contract", () => {
  /** Records what the runner asks of a stage. */
  const recording = (name: string, log: Array<string>, enter?: () => unknown): Stage.Stage<string> => ({
    name,
    enter: (attempt) => {
      log.push(`${name} enter ${attempt.key}`)
      const answer = enter?.()
      return (answer ?? `${name}-ticket`) as string
    },
    exit: (ticket, exit) => {
      log.push(`${name} exit ${ticket} ${exit._tag}`)
    }
  })

  it.effect("stages enter in order and exit innermost first, each exactly once", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const out = yield* Effect.succeed("answer").pipe(
        Stage.protect([recording("a", log), recording("b", log)], request, "p/m1")
      )
      assert.strictEqual(out, "answer")
      assert.deepStrictEqual(log, [
        "a enter p/m1",
        "b enter p/m1",
        "b exit b-ticket Success",
        "a exit a-ticket Success"
      ])
    })
  )

  it.effect("a refusal stops the attempt: later stages never enter, earlier ones exit with the refusal", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      let called = false
      const refusal = new LlmError.AdmissionRejected({ key: "p/m1", reason: "queue-full" })
      const error = yield* Effect.flip(
        Effect.sync(() => (called = true)).pipe(
          Stage.protect(
            [recording("a", log), recording("b", log, () => Effect.fail(refusal)), recording("c", log)],
            request,
            "p/m1"
          )
        )
      )
      assert.strictEqual(error, refusal)
      assert.isFalse(called)
      assert.deepStrictEqual(log, ["a enter p/m1", "b enter p/m1", "a exit a-ticket Failure"])
    })
  )

  it.effect("an exit that fails replaces the outcome for the stages outside it and the caller", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const replaced = new LlmError.Timeout({ model: "m1", message: "late", phase: "total", afterMs: 1 })
      const replacing: Stage.Stage<true> = { name: "r", enter: () => true, exit: () => Effect.fail(replaced) }
      const error = yield* Effect.flip(
        Effect.succeed("answer").pipe(Stage.protect([recording("outer", log), replacing], request, "p/m1"))
      )
      assert.strictEqual(error, replaced)
      assert.deepStrictEqual(log, ["outer enter p/m1", "outer exit outer-ticket Failure"])
    })
  )

  it.effect("a stage that waits is one effect away, and an interruption while waiting owes it no exit", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const waiting = recording("w", log, () =>
        Effect.as(Effect.interruptible(Effect.sleep("1 second")), "late-ticket")
      )
      const fiber = yield* Effect.forkChild(
        Effect.succeed("answer").pipe(Stage.protect([recording("a", log), waiting], request, "p/m1"))
      )
      yield* TestClock.adjust("500 millis")
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(log, ["a enter p/m1", "w enter p/m1", "a exit a-ticket Failure"])
      // waited out, the effect's ticket is the one handed back at exit
      log.length = 0
      const done = yield* Effect.forkChild(
        Effect.succeed("answer").pipe(Stage.protect([recording("a", log), waiting], request, "p/m1"))
      )
      yield* TestClock.adjust("1 second")
      assert.strictEqual(yield* Fiber.join(done), "answer")
      assert.deepStrictEqual(log.slice(2), ["w exit late-ticket Success", "a exit a-ticket Success"])
    })
  )

  it.effect("interrupting the attempt runs every exit once, with the interruption", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const fiber = yield* Effect.forkChild(
        Effect.never.pipe(Stage.protect([recording("a", log), recording("b", log)], request, "p/m1"))
      )
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(yield* Effect.as(Fiber.interrupt(fiber), fiber))
      assert.isTrue(Exit.hasInterrupts(exit))
      assert.deepStrictEqual(log, [
        "a enter p/m1",
        "b enter p/m1",
        "b exit b-ticket Failure",
        "a exit a-ticket Failure"
      ])
    })
  )
})

/**
 * The fallback plan's edges, through its public API: how a plan is validated, what each degraded step
 * answers, what a walk learns from one failure for the next steps, the merged report, the activation's
 * event and log, defects and interruption, hedged steps and a stream that already delivered text.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Layer, Logger, Metric, Option, Ref, References, Stream } from "effect"
import { TestClock } from "effect/testing"
import type { LlmProvider, LlmRequest, LlmResponse } from "@llm-resilience/core"
import { CallReport, CircuitBreaker, FallbackPlan, Hedge, LlmError, TokenEstimator } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

const request: LlmRequest.LlmRequest = { model: "asked", messages: [{ role: "user", content: "Hello there" }] }

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, Metric.MetricRegistry, new Map())

/** Every series of `fallback_activations` in the (isolated) registry. */
const activations = Effect.map(Metric.snapshot, (snapshots) =>
  snapshots
    .filter((s) => s.id === "fallback_activations")
    .map((s): Record<string, string | number> => ({
      ...(s.attributes as Record<string, string>),
      count: (s.state as { count: number }).count
    }))
)

const count = (metric: Metric.Metric<number, Metric.CounterState<number>>, attributes: Record<string, string>) =>
  Effect.map(Metric.value(Metric.withAttributes(metric, attributes)), (s) => s.count)

/**
 * A provider whose calls run `outcome` (for both `complete` and `stream`), counting them. No test calls one
 * more than 10 times: a walk that loops back dies there instead of hanging.
 */
const scripted = Effect.fnUntraced(function* (name: string, outcome: Effect.Effect<never, LlmError.LlmError>) {
  const calls = yield* Ref.make(0)
  const counted = Effect.flatMap(
    Ref.updateAndGet(calls, (n) => n + 1),
    (n) => (n > 10 ? Effect.die(`${name} called ${n} times: the walk loops`) : outcome)
  )
  const provider: LlmProvider.LlmProvider["Service"] = {
    name,
    complete: () => counted,
    stream: () => Stream.fromEffect(counted)
  }
  return { provider, calls: Ref.get(calls) }
})

/** A provider failing with `error`, a fresh copy each call (an error carries the report of the call it ended). */
const failing = (name: string, error: LlmError.LlmError) =>
  scripted(
    name,
    Effect.suspend(() => Effect.fail(Object.assign(Object.create(Object.getPrototypeOf(error)), error)))
  )

const failureOf = <A, E>(exit: Exit.Exit<A, E>): E => {
  assert.isTrue(Exit.isFailure(exit))
  const reason = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  assert.isDefined(reason)
  return (reason as { readonly error: E }).error
}

const invalidOf = <A>(self: Effect.Effect<A, FallbackPlan.InvalidPlan>) =>
  Effect.map(Effect.flip(self), (e) => ({ field: e.field, issue: e.issue, message: e.message }))

const textOf = (chunks: ReadonlyArray<LlmResponse.StreamChunk>) =>
  chunks.map((c) => (c._tag === "TextDelta" ? c.text : "")).join("")

const base = { message: "m", provider: "primary", model: "m1" }
const overloaded = new LlmError.Overloaded({ ...base, status: 529 })
const serverError = new LlmError.ServerError({ ...base, status: 503 })
const overflow = new LlmError.ContextLengthExceeded({ ...base, status: 400 })

const cacheMiss = Layer.succeed(FallbackPlan.ResponseCache, { lookup: () => Effect.succeedNone })

describe("FallbackPlan: validation", () => {
  it.effect("each invalid plan names its step and says what is wrong", () =>
    Effect.gen(function* () {
      const a = yield* FakeProvider.make({ name: "a" })
      assert.deepStrictEqual(yield* invalidOf(FallbackPlan.make([])), {
        field: "steps",
        issue: "must hold at least one step",
        message: "invalid fallback plan: steps must hold at least one step"
      })
      assert.deepStrictEqual(
        yield* invalidOf(
          FallbackPlan.make([FallbackPlan.staticAnswer("s"), FallbackPlan.step(a.provider, { model: "x" })])
        ),
        {
          field: "steps[0]",
          issue: "must be a provider step",
          message: "invalid fallback plan: steps[0] must be a provider step"
        }
      )
      const unknownTag = yield* invalidOf(
        FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.step(a.provider, { model: "y", moveOn: ["Overloaded", "Overloded" as "Overloaded"] })
        ])
      )
      assert.deepStrictEqual(unknownTag, {
        field: "steps[1].moveOn",
        issue: "names an unknown error tag: Overloded",
        message: "invalid fallback plan: steps[1].moveOn names an unknown error tag: Overloded"
      })
      for (const contextWindow of [0, -1, Number.NaN]) {
        const bad = yield* invalidOf(
          FallbackPlan.make([
            FallbackPlan.step(a.provider, { model: "x", contextWindow: 8_000 }),
            FallbackPlan.step(a.provider, { model: "y" }),
            FallbackPlan.step(a.provider, { model: "z", contextWindow })
          ])
        )
        assert.deepStrictEqual(bad, {
          field: "steps[2].contextWindow",
          issue: "must be a positive number of tokens",
          message: "invalid fallback plan: steps[2].contextWindow must be a positive number of tokens"
        })
      }
      const late = yield* invalidOf(
        FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.cached,
          FallbackPlan.staticAnswer("s"),
          FallbackPlan.step(a.provider, { model: "y" })
        ])
      )
      assert.deepStrictEqual(late, {
        field: "steps[3]",
        issue: "is a provider step after a degraded step",
        message: "invalid fallback plan: steps[3] is a provider step after a degraded step"
      })
    })
  )

  it.effect("degraded steps may follow each other, and every error tag may be named in moveOn", () =>
    Effect.gen(function* () {
      const a = yield* FakeProvider.make({ name: "a" })
      const plan = yield* FallbackPlan.make([
        FallbackPlan.step(a.provider, { model: "x", contextWindow: 1 }),
        FallbackPlan.cached,
        FallbackPlan.acceptForLater,
        FallbackPlan.staticAnswer("s")
      ])
      assert.deepStrictEqual(
        plan.steps.map((s) => s.label),
        ["a/x", "cache", "later", "static"]
      )
      const fatal: ReadonlyArray<LlmError.LlmError["_tag"]> = [
        "BadRequest",
        "Authentication",
        "PermissionDenied",
        "ModelNotFound",
        "ContentFiltered",
        "BudgetExceeded",
        "TurnLimitExceeded",
        "LoopDetected",
        "StreamDiverged"
      ]
      for (const tag of [...fatal, ...LlmError.fallbackTags]) {
        const exit = yield* Effect.exit(
          FallbackPlan.make([FallbackPlan.step(a.provider, { model: "x", moveOn: [tag] })])
        )
        assert.isTrue(Exit.isSuccess(exit), tag)
      }
    })
  )

  it.effect("a step: its label and circuit key, its policy, its default moveOn and prefill", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* FakeProvider.make({ name: "a", default: { text: "raw" } })
        const plain = FallbackPlan.step(a.provider, { model: "x" })
        assert.strictEqual(plain.provider, a.provider)
        assert.strictEqual(plain.label, "a/x")
        assert.strictEqual(plain.key, "a/x")
        assert.isFalse(plain.prefill)
        assert.isUndefined(plain.contextWindow)
        assert.deepStrictEqual([...plain.moveOn], [...LlmError.fallbackTags])
        assert.isFalse(FallbackPlan.step(a.provider, { model: "x", prefill: false }).prefill)
        assert.isTrue(FallbackPlan.step(a.provider, { model: "x", prefill: true }).prefill)
        const named = FallbackPlan.step(a.provider, { model: "x", label: "Primary", contextWindow: 9 })
        assert.deepStrictEqual([named.label, named.key, named.contextWindow], ["Primary", "a/x", 9])
        // the policy wraps the provider the step calls
        const wrapped = FallbackPlan.step(a.provider, {
          model: "x",
          policy: (p) => ({
            ...p,
            complete: (r) => Effect.map(p.complete(r), (response) => ({ ...response, text: `${response.text}+policy` }))
          })
        })
        const plan = yield* FallbackPlan.make([wrapped])
        assert.strictEqual((yield* plan.complete(request)).text, "raw+policy")
        assert.deepStrictEqual(
          (yield* a.calls).map((c) => c.model),
          ["x"]
        )
      })
    )
  )
})

describe("FallbackPlan: degraded steps", () => {
  it.effect("a static answer: its text from the request, stop, no usage, provider fallback:static", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* failing("a", overloaded)
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.staticAnswer((r) => `busy: ${r.messages.length} message(s) for ${r.model}`)
        ])
        const response = yield* plan.complete(request)
        assert.deepStrictEqual(
          { ...response, report: undefined },
          {
            text: "busy: 1 message(s) for asked",
            finishReason: "stop",
            usage: { inputTokens: 0, outputTokens: 0 },
            provider: "fallback:static",
            model: "asked",
            report: undefined
          }
        )
        // a stream gets the same answer as one text chunk and its Finish
        const chunks = yield* Stream.runCollect(plan.stream(request))
        assert.deepStrictEqual(chunks, [
          { _tag: "TextDelta", text: "busy: 1 message(s) for asked" },
          {
            _tag: "Finish",
            finishReason: "stop",
            usage: { inputTokens: 0, outputTokens: 0 },
            provider: "fallback:static",
            model: "asked"
          }
        ])
      })
    )
  )

  it.effect("a cached answer keeps the entry's fields under provider fallback:cache, in a stream too", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* failing("a", overloaded)
        const plan = yield* FallbackPlan.make([FallbackPlan.step(a.provider, { model: "x" }), FallbackPlan.cached])
        const entry: LlmResponse.LlmResponse = {
          text: "cached answer",
          finishReason: "length",
          usage: { inputTokens: 3, outputTokens: 2 },
          provider: "a",
          model: "x"
        }
        const asked: Array<string> = []
        const hit = Layer.succeed(FallbackPlan.ResponseCache, {
          lookup: (r) =>
            Effect.sync(() => {
              asked.push(r.model)
              return Option.some(entry)
            })
        })
        const chunks = yield* Stream.runCollect(plan.stream(request)).pipe(Effect.provide(hit))
        assert.deepStrictEqual(chunks, [
          { _tag: "TextDelta", text: "cached answer" },
          {
            _tag: "Finish",
            finishReason: "length",
            usage: { inputTokens: 3, outputTokens: 2 },
            provider: "fallback:cache",
            model: "x"
          }
        ])
        assert.deepStrictEqual(asked, ["asked"]) // the cache is asked with the caller's request
        assert.deepStrictEqual(yield* activations, [{ from: "a/x", to: "cache", reason: "Overloaded", count: 1 }])
      })
    )
  )

  it.effect("accepted for later after a cache miss: from the cache, reason CacheMiss, the step's error kept", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* failing("a", overloaded)
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.cached,
          FallbackPlan.acceptForLater
        ])
        yield* TestClock.adjust(12_345)
        const accepted = failureOf(
          yield* Effect.exit(plan.complete(request)).pipe(
            Effect.provide(Layer.merge(cacheMiss, FallbackPlan.layerLaterQueueMemory()))
          )
        ) as FallbackPlan.AcceptedForLater
        assert.instanceOf(accepted, FallbackPlan.AcceptedForLater)
        assert.strictEqual(accepted.from, "cache")
        assert.strictEqual(accepted.reason, "CacheMiss")
        assert.strictEqual(accepted.lastError?._tag, "Overloaded")
        assert.strictEqual(accepted.acceptedAt, 12_345)
        assert.strictEqual(accepted.ticketId, "later-1")
        assert.sameDeepMembers(yield* activations, [
          { from: "a/x", to: "cache", reason: "Overloaded", count: 1 },
          { from: "cache", to: "later", reason: "CacheMiss", count: 1 }
        ])
      })
    )
  )

  it.effect("a full later queue moves on (QueueFull); tickets count up without an idempotency key", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* failing("a", overloaded)
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.acceptForLater,
          FallbackPlan.staticAnswer("full")
        ])
        const program = Effect.gen(function* () {
          const first = failureOf(yield* Effect.exit(plan.complete(request))) as FallbackPlan.AcceptedForLater
          const second = failureOf(yield* Effect.exit(plan.complete(request))) as FallbackPlan.AcceptedForLater
          assert.deepStrictEqual([first.ticketId, second.ticketId], ["later-1", "later-2"])
          assert.strictEqual(second.from, "a/x")
          assert.strictEqual(second.reason, "Overloaded")
          const third = yield* plan.complete(request)
          assert.strictEqual(third.text, "full")
          const queue = yield* FallbackPlan.LaterQueue
          assert.strictEqual(yield* queue.size, 2)
          const full = yield* Effect.flip(queue.offer(request))
          assert.instanceOf(full, FallbackPlan.LaterQueueFull)
          assert.strictEqual(full.capacity, 2)
          assert.strictEqual((yield* queue.take).ticketId, "later-1")
        })
        yield* program.pipe(Effect.provide(FallbackPlan.layerLaterQueueMemory({ capacity: 2 })))
        assert.sameDeepMembers(yield* activations, [
          { from: "a/x", to: "later", reason: "Overloaded", count: 3 },
          { from: "later", to: "static", reason: "QueueFull", count: 1 }
        ])
      })
    )
  )

  it.effect("the in-memory later queue: 1 000 requests by default, a capacity below 1 refused", () =>
    Effect.gen(function* () {
      const offered = Effect.gen(function* () {
        const queue = yield* FallbackPlan.LaterQueue
        for (let i = 0; i < 1_000; i++) yield* queue.offer(request)
        return yield* Effect.flip(queue.offer(request))
      })
      const full = yield* offered.pipe(Effect.provide(FallbackPlan.layerLaterQueueMemory()))
      assert.strictEqual(full.capacity, 1_000)
      for (const capacity of [0, 1.5]) {
        const exit = yield* Effect.exit(offered.pipe(Effect.provide(FallbackPlan.layerLaterQueueMemory({ capacity }))))
        assert.isTrue(Exit.isFailure(exit) && Cause.hasFails(exit.cause), String(capacity))
        assert.strictEqual((failureOf(exit) as { readonly _tag?: string })._tag, "SchemaError")
      }
    })
  )
})

describe("FallbackPlan: what a walk learns", () => {
  it.effect("the largest overflowing window rules out the steps no larger, whatever overflowed after it", () =>
    isolated(
      Effect.gen(function* () {
        const big = yield* failing("big", overflow)
        const unknown = yield* failing("unknown", overflow)
        const half = yield* failing("half", overloaded)
        const same = yield* failing("same", overloaded)
        const huge = yield* FakeProvider.make({ name: "huge", default: { text: "fits" } })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(big.provider, { model: "b", contextWindow: 100_000 }),
          FallbackPlan.step(unknown.provider, { model: "u" }),
          FallbackPlan.step(half.provider, { model: "h", contextWindow: 50_000 }),
          FallbackPlan.step(same.provider, { model: "s", contextWindow: 100_000 }),
          FallbackPlan.step(huge.provider, { model: "x", contextWindow: 100_001 })
        ])
        assert.strictEqual((yield* plan.complete(request)).text, "fits")
        assert.deepStrictEqual(
          [yield* big.calls, yield* unknown.calls, yield* half.calls, yield* same.calls],
          [1, 1, 0, 0]
        )
      })
    )
  )

  it.effect("other errors rule nothing out: a smaller window and the same provider are still tried", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* failing("a", serverError)
        const small = yield* failing("small", new LlmError.QuotaExhausted({ ...base, status: 429 }))
        const b = yield* FakeProvider.make({ name: "b", default: { text: "b" } })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x", contextWindow: 100_000 }),
          FallbackPlan.step(a.provider, { model: "y", contextWindow: 50_000 }),
          FallbackPlan.step(small.provider, { model: "s", contextWindow: 10_000 }),
          FallbackPlan.step(b.provider, { model: "z", contextWindow: 1_000 })
        ])
        assert.strictEqual((yield* plan.complete(request)).text, "b")
        assert.strictEqual(yield* a.calls, 2)
        assert.strictEqual(yield* small.calls, 1)
      })
    )
  )

  it.effect("the report: each step moved on from, then the answer; a failed walk's error carries it once", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* failing("a", overloaded)
        const b = yield* failing("b", serverError)
        const c = yield* FakeProvider.make({ name: "c", default: { text: "c" } })
        const moved = (step: string, outcome: string) => ({
          step,
          outcome,
          admissionWaitMs: 0,
          next: "fallback" as const,
          reason: outcome
        })
        const answered = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.step(b.provider, { model: "y" }),
          FallbackPlan.step(c.provider, { model: "z" })
        ])
        assert.deepStrictEqual((yield* answered.complete(request)).report, {
          attempts: [moved("a/x", "Overloaded"), moved("b/y", "ServerError")],
          answeredBy: "c/z",
          admissionWaitMs: 0
        })
        const exhausted = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.step(b.provider, { model: "y" })
        ])
        const error = failureOf(yield* Effect.exit(exhausted.complete(request)))
        assert.strictEqual(error._tag, "ServerError")
        assert.deepStrictEqual(CallReport.of(error), {
          attempts: [moved("a/x", "Overloaded"), moved("b/y", "ServerError")],
          admissionWaitMs: 0
        })
        const streamed = failureOf(yield* Effect.exit(Stream.runCollect(exhausted.stream(request))))
        assert.deepStrictEqual(CallReport.of(streamed), {
          attempts: [moved("a/x", "Overloaded"), moved("b/y", "ServerError")],
          admissionWaitMs: 0
        })
        // an answer at once has no merged report (the step's own, if any, is kept)
        const direct = yield* FallbackPlan.make([FallbackPlan.step(c.provider, { model: "z" })])
        assert.isUndefined((yield* direct.complete(request)).report)
      })
    )
  )

  it.effect("the report takes in each step's own attempts and the error of a later step", () =>
    isolated(
      Effect.gen(function* () {
        const attempt = (
          step: string,
          outcome: string,
          next: CallReport.AttemptReport["next"],
          admissionWaitMs: number
        ) => ({
          step,
          outcome,
          admissionWaitMs,
          next
        })
        const retriedThenFailed = CallReport.attach(new LlmError.Overloaded({ ...base, status: 529 }), {
          attempts: [attempt("a/x", "Overloaded", "retry", 5), attempt("a/x", "Overloaded", "gave-up", 7)],
          admissionWaitMs: 12
        })
        const fatal = CallReport.attach(new LlmError.BadRequest(base), {
          attempts: [attempt("b/y", "BadRequest", "gave-up", 1)],
          admissionWaitMs: 1
        })
        const a = yield* scripted("a", Effect.fail(retriedThenFailed))
        const b = yield* scripted("b", Effect.fail(fatal))
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.step(b.provider, { model: "y" })
        ])
        const error = failureOf(yield* Effect.exit(plan.complete(request)))
        // the later step's error (a copy: the report of this call never goes on the provider's instance)
        assert.deepStrictEqual(error, fatal)
        assert.notStrictEqual(error, fatal)
        assert.deepStrictEqual(CallReport.of(error), {
          attempts: [
            attempt("a/x", "Overloaded", "retry", 5),
            { ...attempt("a/x", "Overloaded", "fallback", 7), reason: "Overloaded" },
            attempt("b/y", "BadRequest", "gave-up", 1)
          ],
          admissionWaitMs: 13
        })
      })
    )
  )

  it.effect("each move is an event and a warning naming from, to and reason", () =>
    isolated(
      Effect.gen(function* () {
        const events: Array<CallReport.Event> = []
        const logs: Array<{ message: unknown; level: string; annotations: Record<string, unknown> }> = []
        const capture = Logger.make((o) => {
          logs.push({
            message: o.message,
            level: o.logLevel,
            annotations: o.fiber.getRef(References.CurrentLogAnnotations)
          })
        })
        const a = yield* failing("a", overloaded)
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x" }),
          FallbackPlan.staticAnswer("s")
        ])
        yield* plan.complete(request).pipe(
          Effect.provideService(CallReport.Events, (event) => Effect.sync(() => events.push(event))),
          Effect.provideService(Logger.CurrentLoggers, new Set([capture]))
        )
        yield* Effect.yieldNow
        assert.deepStrictEqual(events, [{ _tag: "FallbackMoved", from: "a/x", to: "static", reason: "Overloaded" }])
        assert.deepStrictEqual(logs, [
          {
            message: ["fallback activated"],
            level: "Warn",
            annotations: { "fallback.from": "a/x", "fallback.to": "static", "fallback.reason": "Overloaded" }
          }
        ])
      })
    )
  )

  it.effect("a defect or an interruption never moves on, even beside a failure", () =>
    isolated(
      Effect.gen(function* () {
        const backup = yield* FakeProvider.make({ name: "backup" })
        const outcomes: ReadonlyArray<readonly [Effect.Effect<never, LlmError.LlmError>, "die" | "interrupt"]> = [
          [Effect.die("boom"), "die"],
          [Effect.failCause(Cause.combine(Cause.fail(overloaded), Cause.die("finalizer"))), "die"],
          [Effect.interrupt, "interrupt"]
        ]
        for (const [outcome, ending] of outcomes) {
          const a = yield* scripted("a", outcome)
          const plan = yield* FallbackPlan.make([
            FallbackPlan.step(a.provider, { model: "x" }),
            FallbackPlan.step(backup.provider, { model: "y" }),
            FallbackPlan.staticAnswer("s")
          ])
          const exit = yield* Effect.exit(plan.complete(request))
          assert.isTrue(Exit.isFailure(exit))
          if (Exit.isFailure(exit)) {
            assert.strictEqual(Cause.hasDies(exit.cause), ending === "die")
            assert.strictEqual(Cause.hasInterrupts(exit.cause), ending === "interrupt")
          }
        }
        assert.strictEqual((yield* backup.calls).length, 0)
        assert.deepStrictEqual(yield* activations, [])
      })
    )
  )
})

describe("FallbackPlan: hedged steps", () => {
  it.effect("a hedged step that fails before its hedge started moves on to the step it would hedge into", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* failing("a", overloaded)
        const b = yield* FakeProvider.make({ name: "b", default: { text: "b" } })
        const hedge = yield* Hedge.make({ delayMs: 1_000, maxRatio: 1 })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x", hedge }),
          FallbackPlan.step(b.provider, { model: "y" }),
          FallbackPlan.staticAnswer("static")
        ])
        assert.strictEqual((yield* plan.complete(request)).text, "b")
        const chunks = yield* Stream.runCollect(plan.stream(request))
        assert.strictEqual(textOf(chunks), "b")
        assert.strictEqual((yield* b.calls).length, 2)
        assert.deepStrictEqual(yield* activations, [{ from: "a/x", to: "b/y", reason: "Overloaded", count: 2 }])
      }).pipe(Effect.scoped)
    )
  )

  it.effect("when both the step and its hedge fail, the plan moves on after the hedge", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* FakeProvider.make({
          name: "a",
          default: { behavior: FakeProvider.fail(FakeProvider.overloaded(), { after: "2 seconds" }) }
        })
        const b = yield* FakeProvider.make({
          name: "b",
          default: { behavior: FakeProvider.fail(FakeProvider.serverError()) }
        })
        const c = yield* FakeProvider.make({ name: "c", default: { text: "c" } })
        const hedge = yield* Hedge.make({ delayMs: 1_000, maxRatio: 1 })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(a.provider, { model: "x", hedge }),
          FallbackPlan.step(b.provider, { model: "y" }),
          FallbackPlan.step(c.provider, { model: "z" })
        ])
        const fiber = yield* Effect.forkChild(plan.complete(request))
        yield* TestClock.adjust(2_000)
        assert.strictEqual((yield* Fiber.join(fiber)).text, "c")
        assert.strictEqual((yield* b.calls).length, 1)
        // the hedge failed first, the step last: the move is the step's
        assert.deepStrictEqual(yield* activations, [{ from: "a/x", to: "c/z", reason: "Overloaded", count: 1 }])
        const streamed = yield* Effect.forkChild(Stream.runCollect(plan.stream(request)))
        yield* TestClock.adjust(2_000)
        assert.strictEqual(textOf(yield* Fiber.join(streamed)), "c")
        assert.strictEqual((yield* b.calls).length, 2)
      }).pipe(Effect.scoped)
    )
  )

  it.effect("a hedge goes to the next eligible provider step, never to a degraded step", () =>
    isolated(
      Effect.gen(function* () {
        const quota = new LlmError.QuotaExhausted({ ...base, provider: "openai", status: 429 })
        const openai = yield* failing("openai", quota)
        const slow = yield* FakeProvider.make({ name: "slow", default: { latency: "5 seconds", text: "slow" } })
        const google = yield* FakeProvider.make({ name: "google", default: { latency: "1 second", text: "google" } })
        const hedge = yield* Hedge.make({ delayMs: 1_000, maxRatio: 1 })
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(openai.provider, { model: "a" }),
          FallbackPlan.step(slow.provider, { model: "b", hedge }),
          FallbackPlan.step(openai.provider, { model: "c" }),
          FallbackPlan.step(google.provider, { model: "d" })
        ])
        const fiber = yield* Effect.forkChild(plan.complete(request))
        yield* TestClock.adjust(2_000)
        assert.strictEqual((yield* Fiber.join(fiber)).text, "google")
        assert.strictEqual(yield* openai.calls, 1)
        assert.strictEqual(yield* count(Hedge.hedgesStarted, { from: "slow/b", to: "google/d" }), 1)

        const last = yield* FallbackPlan.make([
          FallbackPlan.step(slow.provider, { model: "b", hedge }),
          FallbackPlan.staticAnswer("static")
        ])
        const alone = yield* Effect.forkChild(plan.complete(request).pipe(Effect.andThen(last.complete(request))))
        yield* TestClock.adjust(10_000)
        assert.strictEqual((yield* Fiber.join(alone)).text, "slow")
        assert.strictEqual(yield* count(Hedge.hedgesStarted, { from: "slow/b", to: "static" }), 0)
      }).pipe(Effect.scoped)
    )
  )

  it.effect("a hedge into a step whose circuit is open never calls it, for a stream too", () =>
    isolated(
      Effect.gen(function* () {
        const slow = yield* FakeProvider.make({ name: "slow", default: { latency: "3 seconds", text: "slow" } })
        const b = yield* FakeProvider.make({ name: "b", default: { text: "b" } })
        const breaker = yield* CircuitBreaker.make()
        yield* breaker.isolate("b/y")
        const hedge = yield* Hedge.make({ delayMs: 1_000, maxRatio: 1 })
        const plan = yield* FallbackPlan.make(
          [FallbackPlan.step(slow.provider, { model: "x", hedge }), FallbackPlan.step(b.provider, { model: "y" })],
          { circuit: breaker }
        )
        const fiber = yield* Effect.forkChild(plan.complete(request))
        yield* TestClock.adjust(3_000)
        assert.strictEqual((yield* Fiber.join(fiber)).text, "slow")
        // the same rule for a stream
        const streamed = yield* Effect.forkChild(Stream.runCollect(plan.stream(request)))
        yield* TestClock.adjust(3_000)
        assert.strictEqual(textOf(yield* Fiber.join(streamed)), "slow")
        assert.strictEqual((yield* b.calls).length, 0)
        assert.strictEqual(yield* count(Hedge.hedgesStarted, { from: "slow/x", to: "b/y" }), 2)
      }).pipe(Effect.scoped)
    )
  )

  it.effect("a hedged stream charges the losing step the request's estimated input tokens", () =>
    isolated(
      Effect.gen(function* () {
        const slow = yield* FakeProvider.make({ name: "slow", default: { latency: "5 seconds", text: "slow" } })
        const fast = yield* FakeProvider.make({ name: "fast", default: { text: "fast" } })
        const losers: Array<Hedge.Loser> = []
        const hedge = yield* Hedge.make(
          { delayMs: 1_000, maxRatio: 1 },
          { onLoser: (loser) => Effect.sync(() => losers.push(loser)) }
        )
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(slow.provider, { model: "x", hedge }),
          FallbackPlan.step(fast.provider, { model: "y" })
        ])
        // one token per character: the estimate is the request's, not the default estimator's
        const estimator = TokenEstimator.fromCounter((text) => text.length)
        const fiber = yield* Effect.forkChild(
          Stream.runCollect(plan.stream(request)).pipe(Effect.provideService(TokenEstimator.TokenEstimator, estimator))
        )
        yield* TestClock.adjust(1_000)
        assert.strictEqual(textOf(yield* Fiber.join(fiber)), "fast")
        assert.strictEqual(losers.length, 1)
        assert.strictEqual(losers[0].label, "slow/x")
        assert.strictEqual(losers[0].inputTokens, estimator.estimate(request).inputTokens)
        assert.isAbove(losers[0].inputTokens, "Hello there".length - 1)
      }).pipe(Effect.scoped)
    )
  )
})

describe("FallbackPlan: a stream that delivered text", () => {
  const cut = (name: string) =>
    FakeProvider.make({
      name,
      default: { text: "one two three four ", stream: { chunks: 4 }, behavior: FakeProvider.truncate(2) }
    })

  it.effect("continue: a later provider step carries on, a degraded step is never spliced on", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* cut("a")
        const b = yield* FakeProvider.make({
          name: "b",
          default: { text: "one two three four ", stream: { chunks: 4 } }
        })
        const carried = yield* FallbackPlan.make(
          [FallbackPlan.step(a.provider, { model: "x" }), FallbackPlan.step(b.provider, { model: "y" })],
          { midStream: "continue" }
        )
        assert.strictEqual(textOf(yield* Stream.runCollect(carried.stream(request))), "one two three four ")
        const degraded = yield* FallbackPlan.make(
          [FallbackPlan.step(a.provider, { model: "x" }), FallbackPlan.staticAnswer("static")],
          { midStream: "continue" }
        )
        const exit = yield* Effect.exit(Stream.runCollect(degraded.stream(request)))
        assert.strictEqual(failureOf(exit)._tag, "StreamTruncated")
        // before the first chunk, a degraded step still answers
        const dead = yield* failing("dead", overloaded)
        const early = yield* FallbackPlan.make(
          [FallbackPlan.step(dead.provider, { model: "x" }), FallbackPlan.staticAnswer("static")],
          { midStream: "continue" }
        )
        assert.strictEqual(textOf(yield* Stream.runCollect(early.stream(request))), "static")
      })
    )
  )

  it.effect("continue: another answer ends in StreamDiverged carrying the failure it recovered from", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* cut("a")
        const b = yield* FakeProvider.make({
          name: "b",
          default: { text: "something else entirely", stream: { chunks: 2 } }
        })
        const plan = yield* FallbackPlan.make(
          [FallbackPlan.step(a.provider, { model: "x" }), FallbackPlan.step(b.provider, { model: "y" })],
          { midStream: "continue" }
        )
        const diverged = failureOf(yield* Effect.exit(Stream.runCollect(plan.stream(request))))
        assert.strictEqual(diverged._tag, "StreamDiverged")
        const d = diverged as LlmError.StreamDiverged
        assert.strictEqual(d.lastError?._tag, "StreamTruncated")
      })
    )
  )

  it.effect("fail (default) and buffer: a degraded step answers only when nothing was delivered", () =>
    isolated(
      Effect.gen(function* () {
        const a = yield* cut("a")
        const steps = [FallbackPlan.step(a.provider, { model: "x" }), FallbackPlan.staticAnswer("static")] as const
        const failing = yield* FallbackPlan.make(steps)
        const seen: Array<LlmResponse.StreamChunk> = []
        const exit = yield* Effect.exit(
          Stream.runForEach(failing.stream(request), (c) => Effect.sync(() => seen.push(c)))
        )
        assert.strictEqual(failureOf(exit)._tag, "StreamTruncated")
        assert.isTrue(textOf(seen).length > 0 && "one two three four ".startsWith(textOf(seen)), textOf(seen))
        const buffered = yield* FallbackPlan.make(steps, { midStream: "buffer" })
        assert.strictEqual(textOf(yield* Stream.runCollect(buffered.stream(request))), "static")
        assert.deepStrictEqual(yield* activations, [{ from: "a/x", to: "static", reason: "StreamTruncated", count: 1 }])
      })
    )
  )
})

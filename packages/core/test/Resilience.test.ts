import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Metric, Stream } from "effect"
import { identity } from "effect/Function"
import { TestClock } from "effect/testing"
import { LlmError, LlmProvider, Resilience, Retry, type Stage } from "@llm-resilience/core"
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

  it.effect("every duration takes milliseconds or a Duration string, and a bad one is named", () =>
    Effect.gen(function* () {
      const timedOutAt = (totalMs: number | string, windowMs: number | string) =>
        Effect.gen(function* () {
          const fake = yield* FakeProvider.make({ default: { behavior: FakeProvider.stall } })
          const { provider } = yield* Resilience.make(
            { paths: { chat: { retry: "none", timeouts: { totalMs } } }, retryBudget: { windowMs } },
            [fake.provider]
          )
          const fiber = yield* Effect.forkChild(Effect.flip(provider.complete(ask("chat"))))
          yield* TestClock.adjust("1499 millis")
          const early = fiber.pollUnsafe()
          yield* TestClock.adjust("1 millis")
          const error = yield* Fiber.join(fiber)
          return [early === undefined, error._tag === "Timeout" ? error.afterMs : error._tag] as const
        }).pipe(Effect.scoped, isolated)
      assert.deepStrictEqual(yield* timedOutAt(1_500, 10_000), [true, 1_500])
      assert.deepStrictEqual(yield* timedOutAt("1.5 seconds", "10 seconds"), [true, 1_500])
      assert.deepStrictEqual(yield* timedOutAt("1500 millis", 10_000), [true, 1_500])
      const fake = yield* FakeProvider.make()
      const bad = [
        [{ paths: { chat: { timeouts: { totalMs: "soon" } } } }, "paths.chat.timeouts.totalMs"],
        [{ paths: { chat: { timeouts: { totalMs: "0 seconds" } } } }, "paths.chat.timeouts.totalMs"],
        [{ breaker: { windowMs: "a minute" } }, "breaker.windowMs"],
        [{ agent: { loopWindowMs: "ten minutes" } }, "agent.loopWindowMs"]
      ] as const
      for (const [config, field] of bad) {
        const error = yield* Effect.flip(Resilience.make(config as Resilience.Config, [fake.provider]))
        assert.instanceOf(error, Resilience.InvalidConfig)
        assert.strictEqual(error.field, field)
        assert.include(error.message, field)
      }
    }).pipe(Effect.scoped)
  )

  it.effect("unknown fields at any depth are refused, naming the field", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make()
      const bad = [
        [{ breakr: { windowMs: 1_000 } }, "breakr"],
        [{ paths: { chat: { timeout: { totalMs: 1_000 } } } }, "paths.chat.timeout"],
        [{ models: { "fake/m": { maxConcurrencyQueu: 10 } } }, "models.fake/m.maxConcurrencyQueu"]
      ] as const
      for (const [config, field] of bad) {
        const error = yield* Effect.flip(Resilience.make(config as Resilience.Config, [fake.provider]))
        assert.instanceOf(error, Resilience.InvalidConfig)
        assert.strictEqual(error.field, field)
        assert.include(error.issue, "unknown field")
      }
    }).pipe(Effect.scoped)
  )

  it.effect("requests without a path, or with an unknown one, wait the default path's maxWaitMs", () =>
    Effect.gen(function* () {
      /** One request per minute; the default path waits 1 s, `chat` admission's 30 s. */
      const limited = Effect.flatMap(FakeProvider.make({ default: { text: "ok" } }), (fake) =>
        Resilience.make(
          {
            models: { "fake/m1": { requestsPerMinute: 1 } },
            paths: { default: { retry: "none", maxWaitMs: 1_000 }, chat: { retry: "none" } },
            admission: { maxWaitMs: 30_000 }
          },
          [fake.provider]
        )
      )
      const rejectedAfter = (path: string | undefined) =>
        Effect.gen(function* () {
          const { provider } = yield* limited
          yield* provider.complete(ask(path)) // takes the minute's only request
          const waiting = yield* Effect.forkChild(Effect.flip(provider.complete(ask(path))))
          yield* TestClock.adjust("999 millis")
          const early = waiting.pollUnsafe()
          yield* TestClock.adjust("1 millis")
          const done = waiting.pollUnsafe()
          assert.isDefined(done) // rejected at 1 s, not at admission's 30 s
          yield* TestClock.adjust("30 seconds")
          const error = yield* Fiber.join(waiting)
          return [early === undefined, error._tag === "AdmissionRejected" && error.reason] as const
        }).pipe(Effect.scoped, isolated)
      assert.deepStrictEqual(yield* rejectedAfter(undefined), [true, "wait-too-long"])
      assert.deepStrictEqual(yield* rejectedAfter("nowhere"), [true, "wait-too-long"])
      // a known path without its own waits admission's maxWaitMs: still waiting after 1 s
      const { provider } = yield* limited
      yield* provider.complete(ask("chat"))
      const chat = yield* Effect.forkChild(Effect.flip(provider.complete(ask("chat"))))
      yield* TestClock.adjust("29 seconds")
      assert.isUndefined(chat.pollUnsafe())
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(chat)
      assert.strictEqual(error._tag === "AdmissionRejected" && error.reason, "wait-too-long")
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("the bulkhead's queue is sized from the configuration (maxConcurrencyQueue)", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ default: { latency: "1 second", text: "ok" } })
      const { provider } = yield* Resilience.make(
        {
          models: { "fake/m1": { maxConcurrency: 1, maxConcurrencyQueue: 1 } },
          paths: { default: { retry: "none" } }
        },
        [fake.provider]
      )
      const first = yield* Effect.forkChild(provider.complete(ask()))
      const second = yield* Effect.forkChild(provider.complete(ask()))
      yield* TestClock.adjust("1 millis")
      // one in flight, one waiting: the third finds the queue full at once
      const third = yield* Effect.flip(provider.complete(ask()))
      assert.strictEqual(third._tag === "AdmissionRejected" && third.reason, "concurrency-queue-full")
      yield* TestClock.adjust("2 seconds")
      assert.strictEqual((yield* Fiber.join(first)).text, "ok")
      assert.strictEqual((yield* Fiber.join(second)).text, "ok")
    }).pipe(Effect.scoped, isolated)
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

describe("Resilience: one frame per attempt", () => {
  const chat = { ...ask("chat"), model: "m1" }

  /** A user-provided stage that counts the attempts it entered and exited (and so their exits, owed once). */
  const counting = (counter: { entered: number; exited: number }): Stage.Stage<number> => ({
    name: "counting",
    enter: () => ++counter.entered,
    exit: () => {
      counter.exited++
    }
  })
  const withCounting = (counter: { entered: number; exited: number }) =>
    Effect.provideService(Resilience.CustomStages, [counting(counter)])

  it.effect("a user-provided stage guards streams too: entered before the stream, exited once at its end", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const recording: Stage.Stage<true> = {
        name: "recording",
        enter: (attempt) => {
          seen.push(`enter ${attempt.key}`)
          return true
        },
        exit: (_, exit) => {
          seen.push(exit._tag === "Success" ? `exit ${exit.value.usage.outputTokens} tokens` : "exit failure")
        }
      }
      const fake = yield* FakeProvider.make({ default: { text: "hello there" } })
      const { provider } = yield* Resilience.make({}, [fake.provider]).pipe(
        Effect.provideService(Resilience.CustomStages, [recording])
      )
      const fiber = yield* Effect.forkChild(Stream.runCollect(provider.stream(ask())))
      yield* TestClock.adjust("10 seconds")
      const chunks = yield* Fiber.join(fiber)
      const finish = chunks.at(-1)
      assert.strictEqual(finish?._tag, "Finish")
      const tokens = finish?._tag === "Finish" ? finish.usage.outputTokens : -1
      assert.deepStrictEqual(seen, ["enter fake/m1", `exit ${tokens} tokens`])
      // a refusal fails the stream before the provider is called
      const refusing: Stage.Stage<true> = {
        name: "refusing",
        enter: (attempt) => Effect.fail(new LlmError.AdmissionRejected({ key: attempt.key, reason: "queue-full" })),
        exit: () => undefined
      }
      const other = yield* FakeProvider.make({ default: { text: "hello there" } })
      const refused = yield* Resilience.make({ paths: { default: { retry: "none" } } }, [other.provider]).pipe(
        Effect.provideService(Resilience.CustomStages, [refusing])
      )
      const error = yield* Effect.flip(Stream.runCollect(refused.provider.stream(ask())))
      assert.strictEqual(error._tag, "AdmissionRejected")
      assert.strictEqual((yield* other.calls).length, 0)
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("a hung call times out on the caller's fiber, gives its permit back, and the caller retries", () =>
    Effect.gen(function* () {
      const counter = { entered: 0, exited: 0 }
      const fake = yield* FakeProvider.make({
        default: { script: [FakeProvider.stall], latency: "100 millis", text: "ok" }
      })
      const { provider, stages } = yield* Resilience.make(
        {
          models: { "fake/m1": { maxConcurrency: 1 } },
          paths: { chat: { timeouts: { totalMs: 1_000 }, retry: { extends: "interactive", jitter: "none" } } }
        },
        [fake.provider]
      ).pipe(withCounting(counter))
      const fiber = yield* Effect.forkChild(provider.complete(chat))
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* Fiber.join(fiber)).text, "ok")
      const calls = yield* fake.calls
      assert.deepStrictEqual(
        calls.map((c) => [c.startedAt, c.outcome]),
        [
          [0, "interrupted"],
          [calls[1].startedAt, "success"]
        ]
      )
      assert.isAbove(calls[1].startedAt, 1_000)
      assert.deepStrictEqual(counter, { entered: 2, exited: 2 }) // both attempts ran through the same stages
      assert.strictEqual((yield* stages.admission.stats("fake/m1")).availablePermits, 1)
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("interrupting the caller frees the permit and the breaker's call; the sent request stays counted", () =>
    Effect.gen(function* () {
      const counter = { entered: 0, exited: 0 }
      const fake = yield* FakeProvider.make({ default: { latency: "5 seconds", text: "ok" } })
      const { provider, stages } = yield* Resilience.make(
        { models: { "fake/m1": { maxConcurrency: 1, requestsPerMinute: 10 } } },
        [fake.provider]
      ).pipe(withCounting(counter))
      const fiber = yield* Effect.forkChild(provider.complete(chat))
      yield* TestClock.adjust("1 second")
      const during = yield* stages.admission.stats("fake/m1")
      assert.strictEqual(during.availablePermits, 0)
      assert.strictEqual(during.reserved.requests, 1)
      yield* Fiber.interrupt(fiber)
      const after = yield* stages.admission.stats("fake/m1")
      assert.strictEqual(after.availablePermits, 1)
      // the request had reached the provider, which counted it
      assert.strictEqual(after.reserved.requests, 1)
      const status = yield* stages.breaker.status("fake/m1")
      assert.strictEqual(status._tag === "Closed" && status.calls, 0)
      assert.deepStrictEqual(counter, { entered: 1, exited: 1 })
      // the next call is admitted at once
      const next = yield* Effect.forkChild(provider.complete(chat))
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual((yield* Fiber.join(next)).text, "ok")
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("an uninterruptible caller's attempt runs on a fiber of its own, its deadline still enforced", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({ default: { behavior: FakeProvider.stall } })
      const { provider } = yield* Resilience.make(
        { paths: { chat: { retry: "none", timeouts: { totalMs: 1_000 } } } },
        [fake.provider]
      )
      const fiber = yield* Effect.forkChild(Effect.uninterruptible(Effect.flip(provider.complete(chat))))
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual((yield* Fiber.join(fiber))._tag, "Timeout")
      assert.deepStrictEqual(
        (yield* fake.calls).map((c) => c.outcome),
        ["interrupted"]
      )
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("retries happen at one layer: a retry stage inside the raw provider passes errors through", () =>
    Effect.gen(function* () {
      const fake = yield* FakeProvider.make({
        default: {
          text: "ok",
          script: [FakeProvider.fail(FakeProvider.overloaded()), FakeProvider.fail(FakeProvider.overloaded())]
        }
      })
      const inner: LlmProvider.LlmProvider["Service"] = {
        ...fake.provider,
        complete: (request) => Retry.retry({ profile: "interactive" })(fake.provider.complete(request))
      }
      const { provider } = yield* Resilience.make(
        { paths: { chat: { retry: { extends: "interactive", maxRetries: 1 } } } },
        [inner]
      )
      const fiber = yield* Effect.forkChild(Effect.flip(provider.complete(chat)))
      yield* TestClock.adjust("1 minute")
      assert.strictEqual((yield* Fiber.join(fiber))._tag, "Overloaded")
      assert.strictEqual((yield* fake.calls).length, 2)
    }).pipe(Effect.scoped, isolated)
  )

  it.effect("a user-provided stage runs in the same frame and changes nothing else of the day", () =>
    Effect.gen(function* () {
      const day = (custom: boolean) =>
        Effect.gen(function* () {
          const counter = { entered: 0, exited: 0 }
          const fake = yield* FakeProvider.make({
            default: {
              script: [
                FakeProvider.fail(FakeProvider.overloaded(), { after: "200 millis" }),
                FakeProvider.succeed(),
                FakeProvider.stall,
                FakeProvider.fail(FakeProvider.serverError(503), { after: "100 millis" }),
                FakeProvider.fail(FakeProvider.rateLimited({ retryAfter: "2 seconds" })),
                FakeProvider.fail(new LlmError.BadRequest({ message: "no", status: 400 }))
              ],
              latency: "300 millis",
              text: "ok"
            }
          })
          const { provider, stages } = yield* Resilience.make(
            {
              models: { "fake/m1": { maxConcurrency: 2, requestsPerMinute: 4 } },
              paths: { chat: { timeouts: { totalMs: 1_000 }, retry: { extends: "interactive", jitter: "none" } } }
            },
            [fake.provider]
          ).pipe(custom ? withCounting(counter) : identity)
          const fibers = []
          for (let i = 0; i < 6; i++) {
            fibers.push(yield* Effect.forkChild(Effect.exit(provider.complete(chat))))
            yield* TestClock.adjust("250 millis")
          }
          const midday = [yield* stages.breaker.status("fake/m1"), yield* stages.admission.stats("fake/m1")]
          yield* TestClock.adjust("3 minutes")
          const exits = []
          for (const f of fibers) {
            const exit = yield* Fiber.join(f)
            exits.push(Exit.isSuccess(exit) ? exit.value.text : Exit.isFailure(exit) ? String(exit.cause) : "")
          }
          return {
            counter,
            midday,
            exits,
            calls: (yield* fake.calls).map((c) => [c.startedAt, c.endedAt, c.outcome]),
            breaker: yield* stages.breaker.status("fake/m1"),
            admission: yield* stages.admission.stats("fake/m1")
          }
        }).pipe(Effect.scoped, isolated)
      const oneStep = yield* day(true)
      const composed = yield* day(false)
      // every attempt that reached the provider passed the stage (it sits just outside the timeouts)
      assert.strictEqual(oneStep.counter.entered, oneStep.calls.length)
      assert.strictEqual(oneStep.counter.exited, oneStep.counter.entered)
      assert.strictEqual(composed.counter.entered, 0)
      assert.deepStrictEqual(oneStep.midday, composed.midday)
      assert.deepStrictEqual(oneStep.exits, composed.exits)
      assert.deepStrictEqual(oneStep.calls, composed.calls)
      assert.deepStrictEqual(oneStep.breaker, composed.breaker)
      assert.deepStrictEqual(oneStep.admission, composed.admission)
      assert.includeMembers(oneStep.exits, ["ok"])
    })
  )
})

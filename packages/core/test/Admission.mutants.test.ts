/**
 * Admission's edges, through its public API: what a wrong scheduler, a wrong settlement or a wrong reading of
 * provider feedback would get wrong (found by mutation testing). Time is TestClock's; every estimate is fixed.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Metric, Stream } from "effect"
import { TestClock } from "effect/testing"
import {
  Admission,
  AdmissionStore,
  CallReport,
  LlmError,
  type LlmRequest,
  type LlmResponse,
  type RateLimitSnapshot,
  TokenEstimator
} from "@llm-resilience/core"

const KEY = "fake/m"

/** 300 input and 200 output tokens per request, or what its `tenant` says (`"in:out"`). */
const estimator: TokenEstimator.TokenEstimatorShape = {
  countText: (s) => s.length,
  estimate: (r) => {
    const [i, o] = (r.metadata?.tenant ?? "300:200").split(":").map(Number)
    return { inputTokens: i, outputTokens: o }
  }
}

const request = (
  id: string,
  options: { priority?: "interactive" | "background"; path?: string; cost?: string } = {}
): LlmRequest.LlmRequest => ({
  model: "m",
  messages: [{ role: "user", content: id }],
  metadata: {
    priority: options.priority ?? "interactive",
    ...(options.path === undefined ? {} : { path: options.path }),
    ...(options.cost === undefined ? {} : { tenant: options.cost })
  }
})

const response = (usage: readonly [number, number], rateLimit?: RateLimitSnapshot.RateLimitSnapshot) =>
  ({
    text: "ok",
    finishReason: "stop",
    usage: { inputTokens: usage[0], outputTokens: usage[1] },
    provider: "fake",
    model: "m",
    ...(rateLimit === undefined ? {} : { rateLimit })
  }) as LlmResponse.LlmResponse

/** A call under admission that logs when it starts, runs `durationMs`, and reports `usage`. */
const admitted = (
  log: Array<readonly [string, number]>,
  id: string,
  options: Parameters<typeof request>[1] & {
    durationMs?: number
    usage?: readonly [number, number]
    key?: string
  } = {}
) =>
  Effect.gen(function* () {
    log.push([id, yield* Clock.currentTimeMillis])
    if (options.durationMs !== undefined) yield* Effect.sleep(options.durationMs)
    return response(options.usage ?? [300, 200])
  }).pipe(Admission.admit(request(id, options), options.key ?? KEY))

const provide =
  (options: Admission.AdmissionOptions, store: () => AdmissionStore.AdmissionStoreShape = AdmissionStore.makeMemory) =>
  <A, E, R>(self: Effect.Effect<A, E, R | Admission.Admission>) =>
    Effect.gen(function* () {
      const admission = yield* Admission.make(options)
      return yield* Effect.provideService(self, Admission.Admission, admission)
    }).pipe(
      Effect.provideService(AdmissionStore.AdmissionStore, store()),
      Effect.provideService(TokenEstimator.TokenEstimator, estimator),
      Effect.scoped
    )

const stats = (key = KEY) => Effect.flatMap(Admission.Admission, (a) => a.stats(key))

const rejection = (exit: Exit.Exit<unknown, unknown>) => {
  assert.isTrue(Exit.isFailure(exit))
  const reason = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
  const error = reason?._tag === "Fail" ? reason.error : undefined
  assert.instanceOf(error, LlmError.AdmissionRejected)
  return error as LlmError.AdmissionRejected
}

const count = (metric: Metric.Counter<number>, attributes: Record<string, string>) =>
  Effect.map(Metric.value(Metric.withAttributes(metric, attributes)), (s) => s.count)

/** The in-memory store with every answer as an effect, as a remote store answers. */
const remote = (): AdmissionStore.AdmissionStoreShape => {
  const memory = AdmissionStore.makeMemory()
  return {
    tryReserve: (...args) => Effect.sync(() => memory.tryReserve(...args) as AdmissionStore.Decision),
    settle: (...args) => Effect.sync(() => void memory.settle(...args)),
    correct: memory.correct,
    usage: memory.usage
  }
}

describe("Admission (edges)", () => {
  it.effect("a store that answers with effects admits, queues, settles and refunds like the in-process one", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* admitted(log, "a", { usage: [100, 50] })
      assert.deepStrictEqual((yield* stats()).reserved, {
        requests: 1,
        tokens: 150,
        inputTokens: 100,
        outputTokens: 50
      })
      // a failure before the provider refunds in full through the store
      const failed = yield* Effect.flip(
        Effect.fail(new LlmError.CircuitOpen({ key: KEY, retryAfterMs: 1 })).pipe(Admission.admit(request("x"), KEY))
      )
      assert.strictEqual(failed._tag, "CircuitOpen")
      yield* admitted(log, "b")
      const c = yield* Effect.forkChild(admitted(log, "c"))
      yield* Effect.yieldNow
      assert.strictEqual((yield* stats()).queued, 1)
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(c)
      assert.deepStrictEqual(log, [
        ["a", 0],
        ["b", 0],
        ["c", 60_000]
      ])
      assert.deepStrictEqual((yield* stats()).reserved, {
        requests: 1,
        tokens: 500,
        inputTokens: 300,
        outputTokens: 200
      })
    }).pipe(provide({ defaults: { requestsPerMinute: 2 }, maxWaitMs: 120_000 }, remote))
  )

  it.effect("a response's snapshot reaches a store that answers with effects", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* Effect.gen(function* () {
        log.push(["a", yield* Clock.currentTimeMillis])
        return response([300, 200], { requests: { remaining: 0, resetAfterMs: 5_000 } })
      }).pipe(Admission.admit(request("a"), KEY))
      const b = yield* Effect.forkChild(admitted(log, "b"))
      yield* TestClock.adjust("4999 millis")
      assert.strictEqual(log.length, 1)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(b)
      assert.deepStrictEqual(log[1], ["b", 5_000])
    }).pipe(provide({ defaults: { requestsPerMinute: 100 } }, remote))
  )

  it.effect("keys take their own limits over the defaults, whatever their name", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* admitted(log, "k1")
      yield* admitted(log, "k2")
      const k3 = yield* Effect.forkChild(Effect.exit(admitted(log, "k3")))
      // a key named like an object's own property is an ordinary key under the defaults
      yield* admitted(log, "t1", { key: "toString" })
      const t2 = yield* Effect.forkChild(Effect.exit(admitted(log, "t2", { key: "toString" })))
      yield* Effect.yieldNow
      assert.deepStrictEqual(
        log.map(([id]) => id),
        ["k1", "k2", "t1"]
      )
      assert.strictEqual((yield* stats("toString")).queued, 1)
      yield* TestClock.adjust("1 minute")
      assert.isTrue(Exit.isSuccess(yield* Fiber.join(k3)))
      assert.isTrue(Exit.isSuccess(yield* Fiber.join(t2)))
    }).pipe(
      provide({ keys: { [KEY]: { requestsPerMinute: 2 } }, defaults: { requestsPerMinute: 1 }, maxWaitMs: 120_000 })
    )
  )

  it.effect("a request without a path, or with a path that is not configured, waits the default bound", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* admitted(log, "first")
      const none = yield* Effect.forkChild(Effect.exit(admitted(log, "none")))
      const other = yield* Effect.forkChild(Effect.exit(admitted(log, "other", { path: "constructor" })))
      const chat = yield* Effect.forkChild(Effect.exit(admitted(log, "chat", { path: "chat" })))
      yield* TestClock.adjust("1 second")
      assert.strictEqual(rejection(yield* Fiber.join(chat)).retryAfterMs, 59_000)
      yield* TestClock.adjust("3999 millis")
      assert.isUndefined(none.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const e1 = rejection(yield* Fiber.join(none))
      const e2 = rejection(yield* Fiber.join(other))
      assert.deepStrictEqual([e1.reason, e1.retryAfterMs, e2.reason], ["wait-too-long", 55_000, "wait-too-long"])
      assert.strictEqual((yield* stats()).queued, 0)
      assert.deepStrictEqual(
        log.map(([id]) => id),
        ["first"]
      )
      assert.strictEqual(yield* count(Admission.metrics.rejected, { key: KEY, reason: "wait-too-long" }), 3)
    }).pipe(
      provide({ defaults: { requestsPerMinute: 1 }, maxWaitMs: 5_000, paths: { chat: { maxWaitMs: 1_000 } } }),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )

  it.effect("a concurrency cap without rate limits holds permits only, interactive callers first", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const holder = yield* Effect.forkChild(admitted(log, "holder", { durationMs: 1_000 }))
      yield* Effect.yieldNow
      const bg = yield* Effect.forkChild(admitted(log, "bg", { priority: "background", durationMs: 1_000 }))
      yield* Effect.yieldNow
      const fg = yield* Effect.forkChild(admitted(log, "fg", { durationMs: 1_000 }))
      yield* Effect.yieldNow
      const s = yield* stats()
      assert.deepStrictEqual(s, {
        key: KEY,
        queued: 0,
        concurrencyQueued: 2,
        availablePermits: 0,
        reserved: { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0 }
      })
      yield* TestClock.adjust("3 seconds")
      yield* Fiber.joinAll([holder, bg, fg])
      assert.deepStrictEqual(log, [
        ["holder", 0],
        ["fg", 1_000],
        ["bg", 2_000]
      ])
      assert.strictEqual((yield* stats()).availablePermits, 1)
      // a key that admission does not know
      assert.deepStrictEqual(yield* stats("other/m"), {
        key: "other/m",
        queued: 0,
        concurrencyQueued: 0,
        availablePermits: Infinity,
        reserved: { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0 }
      })
    }).pipe(provide({ keys: { [KEY]: { maxConcurrency: 1 } } }))
  )

  it.effect("past the concurrency queue's bound a caller is rejected and counted", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const holder = yield* Effect.forkChild(admitted(log, "holder", { durationMs: 1_000 }))
      yield* Effect.yieldNow
      const error = rejection(yield* Effect.exit(admitted(log, "next")))
      assert.strictEqual(error.reason, "concurrency-queue-full")
      assert.strictEqual(yield* count(Admission.metrics.rejected, { key: KEY, reason: "concurrency-queue-full" }), 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(holder)
      assert.strictEqual((yield* stats()).availablePermits, 1)
    }).pipe(
      provide({ defaults: { maxConcurrency: 1, maxConcurrencyQueue: 0 } }),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )

  it.effect("a caller refused its rate budget gives its concurrency permit back", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const a = yield* Effect.forkChild(admitted(log, "a", { durationMs: 10_000 }))
      yield* Effect.yieldNow
      assert.strictEqual((yield* stats()).availablePermits, 1)
      // queue-full (no queue), then wait-too-long
      const full = rejection(yield* Effect.exit(admitted(log, "b")))
      assert.deepStrictEqual([full.reason, full.retryAfterMs], ["queue-full", 60_000])
      assert.strictEqual((yield* stats()).availablePermits, 1)
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(a)
      assert.strictEqual((yield* stats()).availablePermits, 2)
    }).pipe(provide({ defaults: { requestsPerMinute: 1, maxConcurrency: 2 }, maxQueueLength: 0 }))
  )

  it.effect("an estimate above any single budget of the key or of its group is never admissible", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      for (const cost of ["1001:0", "0:501", "1000:300", "0:300"]) {
        const key = cost === "0:300" ? "grouped/m" : KEY
        const error = rejection(yield* Effect.exit(admitted(log, cost, { cost, key })))
        assert.deepStrictEqual([error.reason, error.key], ["never-admissible", key], cost)
      }
      yield* admitted(log, "fits", { cost: "1000:200" })
      yield* admitted(log, "fits in the group", { cost: "0:250", key: "grouped/m" })
      assert.deepStrictEqual(
        log.map(([id]) => id),
        ["fits", "fits in the group"]
      )
      assert.strictEqual(yield* count(Admission.metrics.rejected, { key: KEY, reason: "never-admissible" }), 3)
    }).pipe(
      provide({
        keys: {
          [KEY]: { tokensPerMinute: 1_200, inputTokensPerMinute: 1_000, outputTokensPerMinute: 500 },
          "grouped/m": { groups: ["g"] }
        },
        limitGroups: { g: { outputTokensPerMinute: 250 } }
      }),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )

  it.effect("a waiter the store cannot serve any more is rejected as store-unavailable, without a hint", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const first = yield* Effect.forkChild(admitted(log, "first", { durationMs: 10_000 }))
      yield* Effect.yieldNow
      const waiter = yield* Effect.forkChild(Effect.exit(admitted(log, "waiter")))
      yield* Effect.yieldNow
      down = true
      // the first call's settlement at 10 s drains the queue, and the store does not answer
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(first)
      const error = rejection(yield* Fiber.join(waiter))
      assert.strictEqual(error.reason, "store-unavailable")
      assert.isUndefined(error.retryAfterMs)
      assert.strictEqual(yield* count(Admission.metrics.rejected, { key: KEY, reason: "store-unavailable" }), 1)
      assert.strictEqual((yield* stats()).queued, 0)
    }).pipe(
      provide({ defaults: { requestsPerMinute: 1 }, maxWaitMs: 120_000 }, () => {
        const memory = AdmissionStore.makeMemory()
        return { ...memory, tryReserve: (...args) => (down ? { _tag: "Unavailable" } : memory.tryReserve(...args)) }
      }),
      Effect.provideService(Metric.MetricRegistry, new Map()),
      Effect.ensuring(Effect.sync(() => (down = false)))
    )
  )

  it.effect(
    "tokens actual count what the provider reported, the estimate on a provider error or a defect, nothing on a refund",
    () =>
      Effect.gen(function* () {
        const log: Array<readonly [string, number]> = []
        yield* admitted(log, "a", { usage: [40, 2] })
        yield* Effect.flip(
          Effect.fail(new LlmError.ServerError({ message: "500", status: 500 })).pipe(
            Admission.admit(request("b"), KEY)
          )
        )
        yield* Effect.flip(
          Effect.fail(new LlmError.CircuitOpen({ key: KEY, retryAfterMs: 1 })).pipe(Admission.admit(request("c"), KEY))
        )
        // a defect once the call was made: it may have reached the provider, the estimate stays
        yield* Effect.exit(Effect.die("defect").pipe(Admission.admit(request("d"), KEY)))
        assert.strictEqual(yield* count(Admission.metrics.tokensActual, { key: KEY }), 42 + 2 * 500)
        assert.strictEqual(yield* count(Admission.metrics.tokensReserved, { key: KEY }), 4 * 500)
        assert.strictEqual(yield* count(Admission.metrics.admitted, { key: KEY }), 4)
        assert.deepStrictEqual((yield* stats()).reserved, {
          requests: 3,
          tokens: 1_042,
          inputTokens: 640,
          outputTokens: 402
        })
      }).pipe(
        provide({ defaults: { tokensPerMinute: 10_000 } }),
        Effect.provideService(Metric.MetricRegistry, new Map())
      )
  )

  it.effect("run settles with the caller's own settlement", () =>
    Effect.gen(function* () {
      const admission = yield* Admission.Admission
      const n = yield* admission.run(request("a"), KEY, Effect.succeed(7), (n) => ({
        usage: { inputTokens: n, outputTokens: 1 }
      }))
      assert.strictEqual(n, 7)
      assert.deepStrictEqual((yield* stats()).reserved, { requests: 1, tokens: 8, inputTokens: 7, outputTokens: 1 })
      // no usage: the estimate stays
      yield* admission.run(request("b"), KEY, Effect.succeed(0), () => ({}))
      assert.strictEqual((yield* stats()).reserved.tokens, 508)
    }).pipe(provide({ defaults: { tokensPerMinute: 10_000 } }))
  )

  it.effect("a waiter admitted and interrupted before it ran gives its reservation back", () =>
    Effect.gen(function* () {
      const admission = yield* Admission.Admission
      const log: Array<readonly [string, number]> = []
      yield* admission.observe(KEY, { tokens: { remaining: 0, resetAfterMs: 60_000 } })
      const b = yield* Effect.forkChild(admitted(log, "b"))
      yield* Effect.yieldNow
      assert.strictEqual((yield* stats()).queued, 1)
      // the provider has room after all: b is admitted inside this fiber's drain, and interrupted before it runs
      yield* admission.observe(KEY, { tokens: { remaining: 600 } })
      yield* Fiber.interrupt(b)
      assert.deepStrictEqual(log, [])
      const s = yield* stats()
      assert.strictEqual(s.queued, 0)
      assert.deepStrictEqual(s.reserved, { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0 })
      yield* admitted(log, "c")
      assert.deepStrictEqual(log, [["c", 0]])
    }).pipe(provide({ defaults: { tokensPerMinute: 600 } }))
  )

  it.effect("a caller that waited is reported with how long; one admitted at once is not", () => {
    const events: Array<CallReport.Event> = []
    return Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* TestClock.adjust("5 seconds")
      yield* admitted(log, "a")
      const b = yield* Effect.forkChild(admitted(log, "b"))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(b)
      // listeners run in fibers of their own
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      assert.deepStrictEqual(events, [{ _tag: "AdmissionWaited", key: KEY, waitedMs: 60_000 }])
    }).pipe(
      Effect.provideService(CallReport.Events, (event) => Effect.sync(() => events.push(event))),
      // a store that answers with effects: every call takes the queued path, also one admitted at once
      provide({ defaults: { requestsPerMinute: 1 } }, remote)
    )
  })

  it.effect(
    "a wrapped provider admits completions and streams under provider/model, settling streams from Finish",
    () =>
      Effect.gen(function* () {
        const llm = yield* Admission.wrapProvider({
          name: "p",
          complete: () => Effect.succeed(response([10, 5])),
          stream: () =>
            Stream.fromIterable<LlmResponse.StreamChunk>([
              { _tag: "TextDelta", text: "hi" },
              {
                _tag: "Finish",
                finishReason: "stop",
                usage: { inputTokens: 20, outputTokens: 2 },
                provider: "p",
                model: "m"
              }
            ])
        })
        assert.strictEqual(llm.name, "p")
        yield* llm.complete(request("a"))
        assert.strictEqual((yield* Stream.runCollect(llm.stream(request("b")))).length, 2)
        assert.deepStrictEqual((yield* stats("p/m")).reserved, {
          requests: 2,
          tokens: 37,
          inputTokens: 30,
          outputTokens: 7
        })
        // a stream without Finish keeps its estimate
        yield* Stream.runDrain(
          Stream.make({ _tag: "TextDelta" as const, text: "x" }).pipe(Admission.admitStream(request("c"), "p/m"))
        )
        assert.strictEqual((yield* stats("p/m")).reserved.tokens, 537)
      }).pipe(provide({ defaults: { tokensPerMinute: 10_000 } }))
  )

  it.effect("a drain examines backfillScan waiters behind a blocked head, no more", () =>
    Effect.gen(function* () {
      const order = (backfillScan: number) =>
        Effect.gen(function* () {
          const log: Array<readonly [string, number]> = []
          const start = yield* Clock.currentTimeMillis
          yield* admitted(log, "x", { cost: "500:0" })
          yield* TestClock.adjust("30 seconds")
          const a = yield* Effect.forkChild(admitted(log, "a", { cost: "300:0", usage: [0, 0], durationMs: 1_000 }))
          yield* Effect.yieldNow
          // the head needs x to leave (at 60 s); nothing behind it fits the slack (0) on arrival
          const fibers = [
            yield* Effect.forkChild(admitted(log, "head", { cost: "700:0" })),
            yield* Effect.forkChild(admitted(log, "w1", { cost: "400:0" })),
            yield* Effect.forkChild(admitted(log, "w2", { cost: "100:0" }))
          ]
          yield* Effect.yieldNow
          // a's refund at 31 s leaves a slack of 300: w1 does not fit it, w2 does if the drain looks that far
          yield* TestClock.adjust("1 second")
          yield* Fiber.join(a)
          yield* Effect.yieldNow
          const early = log.filter(([id]) => id === "w2" && id.length > 0).map(([, at]) => at - start)
          yield* TestClock.adjust("5 minutes")
          yield* Fiber.joinAll(fibers)
          return early
        }).pipe(provide({ defaults: { tokensPerMinute: 1_000 }, backfillScan, maxWaitMs: 600_000 }))
      assert.deepStrictEqual(yield* order(2), [31_000])
      assert.deepStrictEqual(yield* order(1), [])
    })
  )

  it.effect("a settlement in a limit group leaves the waiters of keys outside every group alone", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* admitted(log, "a")
      const b = yield* Effect.forkChild(admitted(log, "b"))
      yield* Effect.yieldNow
      yield* admitted(log, "g1", { key: "grouped/m" })
      yield* admitted(log, "g2", { key: "grouped/m" })
      // a key with no limits of its own is held by its group's
      const g3 = yield* Effect.forkChild(admitted(log, "g3", { key: "grouped/m" }))
      yield* Effect.yieldNow
      assert.deepStrictEqual(
        log.map(([id]) => id),
        ["a", "g1", "g2"]
      )
      yield* TestClock.adjust("1 minute")
      yield* Fiber.joinAll([b, g3])
      assert.deepStrictEqual(log.slice(3).sort(), [
        ["b", 60_000],
        ["g3", 60_000]
      ])
    }).pipe(
      provide({
        keys: { [KEY]: { requestsPerMinute: 1 }, "grouped/m": { groups: ["g"] } },
        limitGroups: { g: { requestsPerMinute: 2 } }
      })
    )
  )

  it.effect("each budget alone limits its key, over the configured window", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const fibers = []
      for (const key of ["in/m", "out/m", "tokens/m", "requests/m"]) {
        yield* admitted(log, `${key} 1`, { key })
        fibers.push(yield* Effect.forkChild(admitted(log, `${key} 2`, { key })))
      }
      yield* Effect.yieldNow
      assert.strictEqual(log.length, 4)
      yield* TestClock.adjust("9999 millis")
      assert.strictEqual(log.length, 4)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(
        log.slice(4).map(([, at]) => at),
        [10_000, 10_000, 10_000, 10_000]
      )
    }).pipe(
      provide({
        keys: {
          "in/m": { inputTokensPerMinute: 500 },
          "out/m": { outputTokensPerMinute: 300 },
          "tokens/m": { tokensPerMinute: 900 },
          "requests/m": { requestsPerMinute: 1 }
        },
        windowMs: 10_000
      })
    )
  )

  it.effect("arrivals behind a blocked head backfill within the slack of every budget, each taking its share", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const used = (cost: string) => cost.split(":").map(Number) as [number, number]
      yield* admitted(log, "a", { cost: "600:0", usage: used("600:0") })
      yield* TestClock.adjust("30 seconds")
      const fibers = [yield* Effect.forkChild(admitted(log, "head", { cost: "800:300" }))]
      yield* Effect.yieldNow
      // at 60 000 (a leaves) the head leaves 3 requests, 200 input and 700 output tokens to backfill now
      for (const [id, cost] of [
        ["c1", "100:100"],
        ["c2", "100:600"],
        ["no output left", "0:1"],
        ["no input left", "1:0"],
        ["c3", "0:0"],
        ["no request left", "0:0"]
      ] as const) {
        fibers.push(yield* Effect.forkChild(admitted(log, id, { cost, usage: used(cost), durationMs: 1_000 })))
        yield* Effect.yieldNow
      }
      assert.deepStrictEqual(
        log.map(([id]) => id),
        ["a", "c1", "c2", "c3"]
      )
      yield* TestClock.adjust("5 minutes")
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(log[4], ["head", 60_000])
    }).pipe(
      provide({
        defaults: {
          requestsPerMinute: 4,
          tokensPerMinute: 10_000,
          inputTokensPerMinute: 1_000,
          outputTokensPerMinute: 1_000
        },
        maxWaitMs: 600_000
      })
    )
  )

  it.effect("a blocked head that gives up lets the waiter behind it in at once", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* admitted(log, "a", { cost: "600:0", usage: [600, 0] })
      yield* TestClock.adjust("10 seconds")
      const head = yield* Effect.forkChild(admitted(log, "head", { cost: "800:0" }))
      yield* Effect.yieldNow
      const small = yield* Effect.forkChild(admitted(log, "small", { cost: "100:0" }))
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* stats()).queued, 2) // strict head-of-line: small may not pass
      yield* Fiber.interrupt(head)
      yield* Fiber.join(small)
      assert.deepStrictEqual(log, [
        ["a", 0],
        ["small", 20_000]
      ])
      assert.strictEqual((yield* stats()).queued, 0)
    }).pipe(provide({ defaults: { tokensPerMinute: 1_000 }, backfillScan: 0 }))
  )

  it.effect("a caller that waited for a permit is admitted and counted like any other", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const a = yield* Effect.forkChild(admitted(log, "a", { durationMs: 1_000 }))
      yield* Effect.yieldNow
      const b = yield* Effect.forkChild(admitted(log, "b", { usage: [1, 1] }))
      yield* TestClock.adjust("1 second")
      yield* Fiber.joinAll([a, b])
      assert.deepStrictEqual(log, [
        ["a", 0],
        ["b", 1_000]
      ])
      assert.strictEqual(yield* count(Admission.metrics.admitted, { key: KEY }), 2)
      assert.strictEqual(yield* count(Admission.metrics.tokensReserved, { key: KEY }), 1_000)
      const wait = yield* Metric.value(Metric.withAttributes(Admission.metrics.waitMs, { key: KEY }))
      assert.deepStrictEqual([wait.count, wait.max], [2, 0])
      // a key capped only in concurrency reserves no tokens
      const c = yield* Effect.forkChild(admitted(log, "c", { key: "capped/m", durationMs: 1_000 }))
      yield* Effect.yieldNow
      const d = yield* Effect.forkChild(admitted(log, "d", { key: "capped/m" }))
      yield* TestClock.adjust("1 second")
      yield* Fiber.joinAll([c, d])
      assert.strictEqual(yield* count(Admission.metrics.admitted, { key: "capped/m" }), 2)
      assert.strictEqual(yield* count(Admission.metrics.tokensReserved, { key: "capped/m" }), 0)
      assert.strictEqual(yield* count(Admission.metrics.tokensActual, { key: "capped/m" }), 0)
    }).pipe(
      provide({
        keys: { [KEY]: { requestsPerMinute: 10, maxConcurrency: 1 }, "capped/m": { maxConcurrency: 1 } }
      }),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )

  it.effect("the concurrency queue holds 1 000 waiters by default", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const fibers = [yield* Effect.forkChild(admitted(log, "holder", { durationMs: 1_000 }))]
      for (let i = 0; i < 1_000; i++) fibers.push(yield* Effect.forkChild(admitted(log, `w${i}`)))
      yield* Effect.yieldNow
      assert.strictEqual((yield* stats()).concurrencyQueued, 1_000)
      assert.strictEqual(rejection(yield* Effect.exit(admitted(log, "over"))).reason, "concurrency-queue-full")
      yield* Fiber.interruptAll(fibers)
    }).pipe(provide({ defaults: { maxConcurrency: 1 } }))
  )

  it.effect("an estimate above the budget of any one of its groups is never admissible", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const error = rejection(yield* Effect.exit(admitted(log, "big", { cost: "500:0" })))
      assert.strictEqual(error.reason, "never-admissible")
    }).pipe(
      provide({
        keys: { [KEY]: { groups: ["wide", "narrow"] } },
        limitGroups: { wide: { tokensPerMinute: 1_000 }, narrow: { tokensPerMinute: 100 } }
      })
    )
  )

  it.effect("budget freed in one group admits the waiters of every key that shares it", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      const a = yield* Effect.forkChild(admitted(log, "a", { key: "a/m", durationMs: 1_000, usage: [0, 0] }))
      yield* Effect.yieldNow
      const b = yield* Effect.forkChild(admitted(log, "b", { key: "b/m" }))
      yield* Effect.yieldNow
      assert.deepStrictEqual(log, [["a", 0]])
      // a (in shared and own) refunds its tokens at 1 s: b (in shared and other) fits at once
      yield* TestClock.adjust("1 second")
      yield* Fiber.joinAll([a, b])
      assert.deepStrictEqual(log[1], ["b", 1_000])
    }).pipe(
      provide({
        keys: { "a/m": { groups: ["shared", "own"] }, "b/m": { groups: ["shared", "other"] } },
        limitGroups: { shared: { tokensPerMinute: 600 }, own: {}, other: {} }
      })
    )
  )

  it.effect("budget freed in a group drains the keys that share one of its groups and no other key", () => {
    // every reservation attempt as the store saw it: a drain of a key is one attempt for its head
    const attempts: Array<readonly [string, number]> = []
    const recording = (): AdmissionStore.AdmissionStoreShape => {
      const memory = AdmissionStore.makeMemory()
      return {
        ...memory,
        tryReserve: (key, limits, cost, now, within) => {
          attempts.push([key, now])
          return memory.tryReserve(key, limits, cost, now, within)
        }
      }
    }
    return Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      // a (in x and g1) holds g1's tokens for 1 s, then refunds them
      const a = yield* Effect.forkChild(admitted(log, "a", { key: "a/m", durationMs: 1_000, usage: [0, 0] }))
      yield* Effect.yieldNow
      // d shares g1 with a; b is in g2 only; c is in no group; each has a waiter blocked until the window
      const others: Array<Fiber.Fiber<LlmResponse.LlmResponse, LlmError.LlmError>> = []
      for (const key of ["d/m", "b/m", "b/m", "c/m", "c/m"]) {
        others.push(yield* Effect.forkChild(admitted(log, key, { key })))
        yield* Effect.yieldNow
      }
      assert.deepStrictEqual(
        log.map(([id]) => id),
        ["a", "b/m", "c/m"]
      )
      attempts.length = 0
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(a)
      // the refund admits d at once, and only d's key was asked about
      assert.deepStrictEqual(log[3], ["d/m", 1_000])
      assert.deepStrictEqual(attempts, [["d/m", 1_000]])
      yield* TestClock.adjust("1 minute")
      yield* Fiber.joinAll(others)
    }).pipe(
      provide(
        {
          keys: {
            "a/m": { groups: ["x", "g1"] },
            "d/m": { groups: ["g1"] },
            "b/m": { groups: ["g2"] },
            "c/m": { tokensPerMinute: 500 }
          },
          limitGroups: { x: {}, g1: { tokensPerMinute: 500 }, g2: { tokensPerMinute: 500 } }
        },
        recording
      )
    )
  })

  it.effect("with no wait allowed a call that does not fit is refused at once; a wait is measured from arrival", () =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* TestClock.adjust("5 seconds")
      yield* admitted(log, "a")
      const error = rejection(yield* Effect.exit(admitted(log, "b", { path: "batch" })))
      assert.deepStrictEqual([error.reason, error.retryAfterMs], ["wait-too-long", 60_000])
      const c = yield* Effect.forkChild(admitted(log, "c"))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(c)
      const wait = yield* Metric.value(Metric.withAttributes(Admission.metrics.waitMs, { key: KEY }))
      assert.deepStrictEqual([wait.count, wait.max], [2, 60_000])
    }).pipe(
      provide({ defaults: { requestsPerMinute: 1 }, paths: { batch: { maxWaitMs: 0 } } }),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )
})

/** Whether the store of the store-unavailable test is down. */
let down = false

describe("Admission provider feedback", () => {
  const limited = (fields: Partial<ConstructorParameters<typeof LlmError.RateLimited>[0]>) =>
    new LlmError.RateLimited({ message: "429", limit: "unknown", ...fields })

  /** The time `cost` is admitted after `error` was observed at 50 000 with 500 input and 300 output tokens in use. */
  const admittedAt = (error: unknown, cost: string) =>
    Effect.gen(function* () {
      const log: Array<readonly [string, number]> = []
      yield* admitted(log, "held", { cost: "500:300" })
      yield* TestClock.adjust("50 seconds")
      yield* Effect.flatMap(Admission.Admission, (a) => a.observeError(KEY, error))
      const f = yield* Effect.forkChild(admitted(log, "next", { cost }))
      yield* TestClock.adjust("5 minutes")
      yield* Fiber.join(f)
      return log[1][1] - log[0][1]
    }).pipe(
      provide({
        defaults: {
          requestsPerMinute: 100,
          tokensPerMinute: 100_000,
          inputTokensPerMinute: 1_000,
          outputTokensPerMinute: 1_000
        },
        maxWaitMs: 600_000
      })
    )

  it.effect("a 429 on tokens drains the input and output budgets its snapshot shows empty", () =>
    Effect.gen(function* () {
      const inputEmpty = { inputTokens: { remaining: 0, resetAfterMs: 30_000 } }
      // the snapshot alone frees the input budget when the local 500 leave (60 000): 300 fit beside its debit
      const overloaded = new LlmError.Overloaded({ message: "529", rateLimit: inputEmpty })
      assert.strictEqual(yield* admittedAt(overloaded, "300:0"), 60_000)
      // a 429 on tokens with that snapshot holds it until the reset
      const tokens = limited({ limit: "tokens", retryAfterMs: 1_000, rateLimit: inputEmpty })
      assert.strictEqual(yield* admittedAt(tokens, "300:0"), 80_000)
      const outputEmpty = { outputTokens: { remaining: 0, resetAfterMs: 30_000 } }
      const outputs = limited({ limit: "tokens", retryAfterMs: 1_000, rateLimit: outputEmpty })
      assert.strictEqual(yield* admittedAt(outputs, "0:200"), 80_000)
      // the tokens budget itself waits for the 429's own hint
      assert.strictEqual(yield* admittedAt(tokens, "0:1"), 51_000)
      assert.strictEqual(yield* admittedAt(limited({ limit: "tokens", retryAfterMs: 2_000 }), "1:1"), 52_000)
    })
  )

  it.effect(
    "a 429's reset is the snapshot's for its budget, else the error's hint, else the snapshot's, else a window",
    () =>
      Effect.gen(function* () {
        const error = (retryAfterMs: number | undefined, rateLimit: RateLimitSnapshot.RateLimitSnapshot | undefined) =>
          limited({
            limit: "requests",
            ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
            ...(rateLimit === undefined ? {} : { rateLimit })
          })
        assert.strictEqual(
          yield* admittedAt(error(9_000, { retryAfterMs: 7_000, requests: { resetAfterMs: 4_000 } }), "0:0"),
          54_000
        )
        assert.strictEqual(yield* admittedAt(error(9_000, { retryAfterMs: 7_000 }), "0:0"), 59_000)
        assert.strictEqual(yield* admittedAt(error(undefined, { retryAfterMs: 7_000 }), "0:0"), 57_000)
        assert.strictEqual(yield* admittedAt(error(undefined, undefined), "0:0"), 110_000)
      })
  )

  it.effect("errors that say nothing about limits change nothing", () =>
    Effect.gen(function* () {
      for (const error of ["boom", null, 42, { message: "no tag" }, new LlmError.ServerError({ message: "500" })]) {
        assert.strictEqual(yield* admittedAt(error, "0:0"), 50_000, String(error))
      }
      // a provider error's snapshot is read like a response's
      const overloaded = new LlmError.Overloaded({
        message: "529",
        rateLimit: { requests: { limit: 1, remaining: 0, resetAfterMs: 2_000 } }
      })
      assert.strictEqual(yield* admittedAt(overloaded, "0:0"), 60_000)
    })
  )

  it.effect("observe applies a snapshot to every budget it names and admits waiters it frees", () =>
    Effect.gen(function* () {
      const admission = yield* Admission.Admission
      const log: Array<readonly [string, number]> = []
      yield* admitted(log, "a", { cost: "100:100" })
      yield* admission.observe(KEY, {
        requests: { limit: 1 },
        outputTokens: { remaining: 0, resetAfterMs: 3_000 }
      })
      const b = yield* Effect.forkChild(admitted(log, "b", { cost: "100:100" }))
      yield* TestClock.adjust("59 seconds")
      assert.strictEqual(log.length, 1)
      // the provider says more is left after all: the cap stays, the waiter still waits for the window
      yield* admission.observe(KEY, { outputTokens: { remaining: 900 } })
      assert.strictEqual(log.length, 1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(b)
      assert.deepStrictEqual(log[1], ["b", 60_000])
      // an input budget reported empty holds a request with input tokens until its reset
      yield* admission.observe(KEY, { inputTokens: { remaining: 0, resetAfterMs: 10_000 } })
      const c = yield* Effect.forkChild(admitted(log, "c", { cost: "1:0" }))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(c)
      assert.deepStrictEqual(log[2], ["c", 120_000])
      // observing keys without rate limits does nothing
      yield* admission.observe("other/m", { requests: { remaining: 0 } })
      yield* admission.observeError("other/m", limited({ limit: "requests" }))
    }).pipe(
      provide({
        keys: { [KEY]: { requestsPerMinute: 10, inputTokensPerMinute: 1_000, outputTokensPerMinute: 1_000 } },
        maxWaitMs: 600_000
      })
    )
  )
})

describe("Admission options", () => {
  it.effect("a group named in the defaults must be declared; the error names the field", () =>
    Effect.gen(function* () {
      const exit = yield* Effect.exit(
        Admission.make({ defaults: { groups: ["nope"] }, limitGroups: { g: {} } }).pipe(
          Effect.provideService(AdmissionStore.AdmissionStore, AdmissionStore.makeMemory()),
          Effect.scoped
        )
      )
      assert.isTrue(Exit.isFailure(exit))
      const text = String(Exit.isFailure(exit) ? exit.cause : "")
      assert.include(text, "no limit group named nope")
      assert.include(text, '["defaults"]["groups"][0]')
      const inKeys = yield* Effect.exit(
        Admission.make({ keys: { [KEY]: { groups: ["g", "nope"] } }, limitGroups: { g: {} } }).pipe(
          Effect.provideService(AdmissionStore.AdmissionStore, AdmissionStore.makeMemory()),
          Effect.scoped
        )
      )
      assert.include(String(Exit.isFailure(inKeys) ? inKeys.cause : ""), `["keys"]["${KEY}"]["groups"][1]`)
      const ok = yield* Effect.exit(
        Admission.make({
          keys: { [KEY]: { groups: ["g"] } },
          defaults: { groups: ["g"] },
          limitGroups: { g: {} }
        }).pipe(Effect.provideService(AdmissionStore.AdmissionStore, AdmissionStore.makeMemory()), Effect.scoped)
      )
      assert.isTrue(Exit.isSuccess(ok))
      assert.strictEqual(Admission.key("openai", "gpt-5.4"), "openai/gpt-5.4")
    })
  )
})

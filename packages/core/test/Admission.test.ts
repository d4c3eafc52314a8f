import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Latch, Layer, Metric, Stream } from "effect"
import { TestClock } from "effect/testing"
import { FakeProvider } from "@llm-resilience/testing"
import {
  Admission,
  LlmError,
  LlmProvider,
  type LlmRequest,
  type LlmResponse,
  RateLimitSnapshot,
  Stage,
  TokenEstimator
} from "@llm-resilience/core"

const KEY = "fake/m"

/** Every request is estimated at `input + output` tokens, whatever its text. */
const fixed = (input: number, output: number): TokenEstimator.TokenEstimatorShape => ({
  countText: (s) => s.length,
  estimate: (r) => ({
    inputTokens: r.messages[0]?.content.startsWith("big") ? input * 10 : input,
    outputTokens: output
  })
})

const request = (
  id: string,
  priority: "interactive" | "background" = "interactive",
  path?: string
): LlmRequest.LlmRequest => ({
  model: "m",
  messages: [{ role: "user", content: id }],
  metadata: path === undefined ? { priority } : { priority, path }
})

const response = (inputTokens: number, outputTokens: number, rateLimit?: RateLimitSnapshot.RateLimitSnapshot) =>
  ({
    text: "ok",
    finishReason: "stop",
    usage: { inputTokens, outputTokens },
    provider: "fake",
    model: "m",
    ...(rateLimit === undefined ? {} : { rateLimit })
  }) as LlmResponse.LlmResponse

interface Admitted {
  readonly id: string
  readonly at: number
  readonly tokens: number
}

/** A call that records when it was admitted, takes `durationMs`, and reports `usage` (default: the estimate). */
const call = (
  log: Array<Admitted>,
  id: string,
  tokens: number,
  options: {
    durationMs?: number
    usage?: readonly [number, number]
    rateLimit?: RateLimitSnapshot.RateLimitSnapshot
  } = {}
) =>
  Effect.gen(function* () {
    log.push({ id, at: yield* Clock.currentTimeMillis, tokens })
    if (options.durationMs !== undefined) yield* Effect.sleep(options.durationMs)
    const [i, o] = options.usage ?? [tokens - 200, 200]
    return response(i, o, options.rateLimit)
  })

const admitted = (
  log: Array<Admitted>,
  id: string,
  priority: "interactive" | "background" = "interactive",
  options: Parameters<typeof call>[3] & { path?: string } = {}
) => call(log, id, 500, options).pipe(Admission.admit(request(id, priority, options.path), KEY))

const provide =
  (options: Admission.AdmissionOptions, estimator = fixed(300, 200)) =>
  <A, E, R>(self: Effect.Effect<A, E, R>) =>
    self.pipe(
      Effect.provide(Admission.layerMemory(options)),
      Effect.provideService(TokenEstimator.TokenEstimator, estimator)
    )

const stats = Effect.flatMap(Admission.Admission, (a) => a.stats(KEY))

/** Checks every 60 s window starting at an admission: at most `rpm` requests and `tpm` tokens. */
const assertWindows = (log: ReadonlyArray<Admitted>, rpm: number, tpm: number) => {
  for (const start of log) {
    const inWindow = log.filter((e) => e.at >= start.at && e.at < start.at + 60_000)
    assert.isAtMost(inWindow.length, rpm, `requests in window from ${start.at}`)
    assert.isAtMost(
      inWindow.reduce((a, e) => a + e.tokens, 0),
      tpm,
      `tokens in window from ${start.at}`
    )
  }
}

describe("Admission", () => {
  it.effect("a burst of 200 x 500 tokens at 60 rpm / 10,000 tpm is admitted at the token rate, in priority order", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
      // background first, so that only the first 20 are admitted on arrival and the rest must queue
      for (let i = 0; i < 100; i++)
        fibers.push(yield* Effect.forkChild(admitted(log, `b${i}`, "background", { durationMs: 1000 })))
      for (let i = 0; i < 100; i++)
        fibers.push(yield* Effect.forkChild(admitted(log, `i${i}`, "interactive", { durationMs: 1000 })))
      yield* Effect.yieldNow
      assert.strictEqual(log.length, 20)
      assert.strictEqual((yield* stats).queued, 180)
      yield* TestClock.adjust("10 minutes")
      yield* Fiber.joinAll(fibers)
      assert.strictEqual(log.length, 200)
      // tokens are the tighter limit: 10,000 / 500 = 20 per minute, admitted as soon as the window frees
      for (let batch = 0; batch < 10; batch++) {
        const times = log.slice(batch * 20, batch * 20 + 20).map((e) => e.at)
        assert.deepStrictEqual(new Set(times), new Set([batch * 60_000]), `batch ${batch}`)
      }
      // the 20 that arrived to an empty queue, then every interactive waiter, then background, FIFO in each
      const expected = [
        ...Array.from({ length: 20 }, (_, i) => `b${i}`),
        ...Array.from({ length: 100 }, (_, i) => `i${i}`),
        ...Array.from({ length: 80 }, (_, i) => `b${i + 20}`)
      ]
      assert.deepStrictEqual(
        log.map((e) => e.id),
        expected
      )
      assertWindows(log, 60, 10_000)
    }).pipe(
      provide({
        defaults: { requestsPerMinute: 60, tokensPerMinute: 10_000 },
        maxWaitMs: 3_600_000,
        agingMs: 3_600_000
      })
    )
  )

  it.effect("a token-heavy workload is held by the token limit while the request limit is far from full", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
      // "big" requests are estimated at 3000 + 200 = 3200 tokens: three fit in 10,000
      for (let i = 0; i < 9; i++) {
        fibers.push(yield* Effect.forkChild(call(log, `big${i}`, 3200).pipe(Admission.admit(request(`big${i}`), KEY))))
      }
      yield* Effect.yieldNow
      const s = yield* stats
      assert.strictEqual(log.length, 3)
      assert.strictEqual(s.reserved.requests, 3) // of 60
      assert.strictEqual(s.reserved.tokens, 9600)
      assert.strictEqual(s.queued, 6)
      yield* TestClock.adjust("3 minutes")
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(
        log.map((e) => e.at),
        [0, 0, 0, 60_000, 60_000, 60_000, 120_000, 120_000, 120_000]
      )
    }).pipe(provide({ defaults: { requestsPerMinute: 60, tokensPerMinute: 10_000 }, maxWaitMs: 3_600_000 }))
  )

  it.effect("a request-heavy workload is held by the request limit while the token limit is far from full", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
      for (let i = 0; i < 100; i++) fibers.push(yield* Effect.forkChild(admitted(log, `s${i}`)))
      yield* Effect.yieldNow
      const s = yield* stats
      assert.strictEqual(log.length, 60)
      assert.strictEqual(s.reserved.requests, 60)
      assert.strictEqual(s.reserved.tokens, 60 * 500) // of 1,000,000 (estimated 210 each, reconciled to 500)
      assert.strictEqual(s.queued, 40)
      yield* TestClock.adjust("59999 millis")
      assert.strictEqual(log.length, 60)
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(log.length, 100)
      yield* Fiber.joinAll(fibers)
    }).pipe(provide({ defaults: { requestsPerMinute: 60, tokensPerMinute: 1_000_000 } }, fixed(10, 200)))
  )

  it.effect("a refund from actual usage admits the next waiting request at once", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      // A reserves 1000 (800 in + 200 out); B (1000) waits; A finishes at t=5s having used 300 in total
      const a = yield* Effect.forkChild(
        call(log, "a", 1000, { durationMs: 5000, usage: [100, 200] }).pipe(Admission.admit(request("a"), KEY))
      )
      yield* Effect.yieldNow
      const b = yield* Effect.forkChild(call(log, "b", 1000).pipe(Admission.admit(request("b"), KEY)))
      yield* Effect.yieldNow
      assert.strictEqual(log.length, 1)
      assert.strictEqual((yield* stats).queued, 1)
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      assert.deepStrictEqual(
        log.map((e) => [e.id, e.at]),
        [
          ["a", 0],
          ["b", 5000]
        ]
      )
      const s = yield* stats
      assert.strictEqual(s.reserved.tokens, 300 + 1000)
    }).pipe(provide({ defaults: { tokensPerMinute: 1800 } }, fixed(800, 200)))
  )

  it.effect("interrupting 1,000 waiting and running callers restores permits; running ones keep their estimate", () =>
    Effect.gen(function* () {
      const before = yield* stats
      const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
      let running = 0
      const forever = Effect.suspend(() => {
        running++
        return Effect.never
      }).pipe(Effect.as(response(1, 1)))
      for (let i = 0; i < 1000; i++) {
        const r = request(`r${i}`, i % 3 === 0 ? "background" : "interactive")
        fibers.push(yield* Effect.forkChild(forever.pipe(Admission.admit(r, KEY))))
      }
      yield* Effect.yieldNow
      const during = yield* stats
      assert.strictEqual(running, 200) // rate-limited to 200 per window
      assert.strictEqual(during.availablePermits, 0) // 300 permits: 200 running + 100 waiting for rate budget
      assert.strictEqual(during.queued, 100)
      assert.strictEqual(during.concurrencyQueued, 700)
      assert.strictEqual(during.reserved.requests, 200)
      // interrupt in an interleaved order: waiting and running callers mixed
      const order = fibers.map((f, i) => [(i * 7919) % 1000, f] as const).sort((x, y) => x[0] - y[0])
      yield* Fiber.interruptAll(order.map(([, f]) => f))
      const after = yield* stats
      assert.deepStrictEqual({ ...after, reserved: before.reserved }, before)
      assert.strictEqual(after.availablePermits, 300)
      // the 200 that were running had reached the provider, which counted them: their estimates stay until the
      // window moves on; the 800 that were waiting never reserved anything or were refunded
      assert.deepStrictEqual(after.reserved, during.reserved)
      const log: Array<Admitted> = []
      const next = yield* Effect.forkChild(admitted(log, "next"))
      yield* Effect.yieldNow
      assert.strictEqual(log.length, 0)
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(next)
      assert.strictEqual(log.length, 1)
    }).pipe(
      provide({
        defaults: { requestsPerMinute: 200, tokensPerMinute: 1_000_000, maxConcurrency: 300, maxConcurrencyQueue: 1000 }
      })
    )
  )

  it.effect("an estimate above the whole per-minute token budget fails at once as never-admissible", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      const error = yield* Effect.flip(call(log, "big", 0).pipe(Admission.admit(request("big"), KEY)))
      assert.instanceOf(error, LlmError.AdmissionRejected)
      assert.strictEqual(error.reason, "never-admissible")
      assert.strictEqual(error.key, KEY)
      assert.strictEqual(log.length, 0)
    }).pipe(provide({ defaults: { tokensPerMinute: 2000 } }))
  )

  it.effect("a full queue rejects with queue-full and a retry hint", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      yield* admitted(log, "first")
      const waiters = [yield* Effect.forkChild(admitted(log, "w1")), yield* Effect.forkChild(admitted(log, "w2"))]
      yield* Effect.yieldNow
      const error = yield* Effect.flip(admitted(log, "w3"))
      assert.strictEqual(error.reason, "queue-full")
      assert.strictEqual(error.retryAfterMs, 60_000)
      yield* TestClock.adjust("2 minutes")
      yield* Fiber.joinAll(waiters)
      assert.deepStrictEqual(
        log.map((e) => [e.id, e.at]),
        [
          ["first", 0],
          ["w1", 60_000],
          ["w2", 120_000]
        ]
      )
    }).pipe(provide({ defaults: { requestsPerMinute: 1 }, maxQueueLength: 2, maxWaitMs: 3_600_000 }))
  )

  it.effect("each path has its own maximum wait", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      yield* admitted(log, "first")
      const fast = yield* Effect.forkChild(Effect.exit(admitted(log, "fast", "interactive", { path: "chat" })))
      const slow = yield* Effect.forkChild(Effect.exit(admitted(log, "slow", "interactive", { path: "batch" })))
      yield* Effect.yieldNow
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(fast.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.join(fast)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.deepInclude(error?._tag === "Fail" ? error.error : {}, { reason: "wait-too-long", retryAfterMs: 59_000 })
      yield* TestClock.adjust("59 seconds")
      assert.isTrue(Exit.isSuccess(yield* Fiber.join(slow)))
      assert.deepStrictEqual(
        log.map((e) => [e.id, e.at]),
        [
          ["first", 0],
          ["slow", 60_000]
        ]
      )
    }).pipe(provide({ defaults: { requestsPerMinute: 1 }, maxWaitMs: 120_000, paths: { chat: { maxWaitMs: 1000 } } }))
  )

  it.effect("head-of-line reservation: small requests backfill only from slack, a large head is never delayed", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      // t=0: A takes 6000 of 10,000. t=10s: big B (3000*10 + ... see `fixed`) needs 8000; then small C1..C4 (1000 each)
      const est: TokenEstimator.TokenEstimatorShape = {
        countText: (s) => s.length,
        estimate: (r) => {
          const id = r.messages[0].content
          return { inputTokens: id === "A" ? 5800 : id === "B" ? 7800 : 800, outputTokens: 200 }
        }
      }
      const run = (id: string, tokens: number) =>
        call(log, id, tokens).pipe(
          Admission.admit(request(id), KEY),
          Effect.provideService(TokenEstimator.TokenEstimator, est)
        )
      yield* run("A", 6000)
      yield* TestClock.adjust("10 seconds")
      const fibers = [yield* Effect.forkChild(run("B", 8000))]
      yield* Effect.yieldNow
      for (const id of ["C1", "C2", "C3", "C4"]) fibers.push(yield* Effect.forkChild(run(id, 1000)))
      yield* Effect.yieldNow
      // at B's earliest time (t=60s, when A leaves the window) 10,000 - 8000 = 2000 is spare: C1 and C2 backfill
      // now; C3 would also fit now (9000 <= 10,000) but would push B past t=60s, so it waits behind B
      assert.deepStrictEqual(
        log.map((e) => [e.id, e.at]),
        [
          ["A", 0],
          ["C1", 10_000],
          ["C2", 10_000]
        ]
      )
      yield* TestClock.adjust("50 seconds")
      assert.deepStrictEqual(log[3], { id: "B", at: 60_000, tokens: 8000 })
      yield* TestClock.adjust("2 minutes")
      yield* Fiber.joinAll(fibers)
      assert.deepStrictEqual(
        log.slice(4).map((e) => [e.id, e.at]),
        [
          ["C3", 70_000],
          ["C4", 70_000]
        ]
      )
      assertWindows(log, Infinity, 10_000)
    }).pipe(provide({ defaults: { tokensPerMinute: 10_000 } }))
  )

  it.effect("with backfillScan 0 the queue is strict head-of-line", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      yield* admitted(log, "A") // 500 of 1000
      const est: TokenEstimator.TokenEstimatorShape = {
        countText: (s) => s.length,
        estimate: (r) => ({ inputTokens: r.messages[0].content === "B" ? 700 : 0, outputTokens: 100 })
      }
      const b = yield* Effect.forkChild(
        call(log, "B", 800).pipe(
          Admission.admit(request("B"), KEY),
          Effect.provideService(TokenEstimator.TokenEstimator, est)
        )
      )
      yield* Effect.yieldNow
      const c = yield* Effect.forkChild(
        call(log, "C", 100).pipe(
          Admission.admit(request("C"), KEY),
          Effect.provideService(TokenEstimator.TokenEstimator, est)
        )
      )
      yield* Effect.yieldNow
      assert.strictEqual(log.length, 1) // C would fit (600 <= 1000) but may not pass B
      yield* TestClock.adjust("60 seconds")
      yield* Fiber.joinAll([b, c])
      assert.deepStrictEqual(
        log.map((e) => e.id),
        ["A", "B", "C"]
      )
    }).pipe(provide({ defaults: { tokensPerMinute: 1000 }, backfillScan: 0 }))
  )

  it.effect("a background waiter older than agingMs ranks by arrival against interactive ones", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      yield* admitted(log, "first")
      const bg = yield* Effect.forkChild(admitted(log, "bg", "background"))
      yield* TestClock.adjust("40 seconds") // bg is now older than agingMs = 30 s
      const it1 = yield* Effect.forkChild(admitted(log, "it1", "interactive"))
      yield* Effect.yieldNow
      yield* TestClock.adjust("3 minutes")
      yield* Fiber.joinAll([bg, it1])
      assert.deepStrictEqual(
        log.map((e) => e.id),
        ["first", "bg", "it1"]
      )
    }).pipe(provide({ defaults: { requestsPerMinute: 1 }, maxWaitMs: 3_600_000 }))
  )

  it.effect(
    "a rate-limit snapshot moves the budget toward remaining until its reset, never above the configured limit",
    () =>
      Effect.gen(function* () {
        const log: Array<Admitted> = []
        // the provider says only 400 tokens remain (another client uses the key) for the next 5 s, where the
        // local log alone would leave 1500
        yield* admitted(log, "a", "interactive", { rateLimit: { tokens: { remaining: 400, resetAfterMs: 5000 } } })
        const b = yield* Effect.forkChild(admitted(log, "b"))
        yield* Effect.yieldNow
        assert.strictEqual(log.length, 1)
        yield* TestClock.adjust("5 seconds")
        yield* Fiber.join(b)
        assert.deepStrictEqual(log[1], { id: "b", at: 5000, tokens: 500 })
        // a generous snapshot (limit and remaining above the configuration) cannot raise the budget
        yield* admitted(log, "c", "interactive", { rateLimit: { tokens: { limit: 1_000_000, remaining: 999_000 } } })
        const d = yield* Effect.forkChild(admitted(log, "d"))
        yield* Effect.yieldNow
        assert.strictEqual(log.length, 4) // 1500 of 2000 used: d (500) fits ...
        yield* Fiber.join(d)
        const e = yield* Effect.forkChild(admitted(log, "e"))
        yield* Effect.yieldNow
        assert.strictEqual(log.length, 4) // ... e does not: still capped at the configured 2000
        assert.strictEqual((yield* stats).queued, 1)
        yield* TestClock.adjust("1 minute")
        yield* Fiber.join(e)
        assert.strictEqual(log[4].at, 60_000)
      }).pipe(provide({ defaults: { tokensPerMinute: 2000 } }))
  )

  for (const [name, headers] of [
    ["OpenAI", { "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6s" }],
    [
      "Anthropic",
      { "anthropic-ratelimit-tokens-remaining": "0", "anthropic-ratelimit-tokens-reset": "1970-01-01T00:00:06Z" }
    ]
  ] as const) {
    it.effect(`${name} rate-limit headers arrive as one snapshot and hold the budget until the reset`, () =>
      Effect.gen(function* () {
        const log: Array<Admitted> = []
        const snapshot = RateLimitSnapshot.fromHeaders(headers, yield* Clock.currentTimeMillis)
        yield* admitted(log, "a", "interactive", { rateLimit: snapshot })
        const b = yield* Effect.forkChild(admitted(log, "b"))
        yield* TestClock.adjust("5999 millis")
        assert.strictEqual(log.length, 1)
        yield* TestClock.adjust("1 millis")
        yield* Fiber.join(b)
        assert.deepStrictEqual(
          log.map((e) => e.at),
          [0, 6000]
        )
      }).pipe(provide({ defaults: { tokensPerMinute: 100_000 } }))
    )
  }

  it.effect("a 429 naming requests drains the request budget until its reset", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      const limited = new LlmError.RateLimited({ message: "slow down", limit: "requests", retryAfterMs: 3000 })
      const error = yield* Effect.flip(Effect.fail(limited).pipe(Admission.admit(request("a"), KEY)))
      assert.strictEqual(error, limited)
      const b = yield* Effect.forkChild(admitted(log, "b"))
      yield* TestClock.adjust("2999 millis")
      assert.strictEqual(log.length, 0)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(b)
      assert.deepStrictEqual(log[0].at, 3000)
    }).pipe(provide({ defaults: { requestsPerMinute: 100, tokensPerMinute: 100_000 } }))
  )

  it.effect("a 429 naming tokens drains only the token budget", () =>
    Effect.gen(function* () {
      const admission = yield* Admission.Admission
      yield* admission.observeError(
        KEY,
        new LlmError.RateLimited({
          message: "tokens",
          limit: "tokens",
          rateLimit: { tokens: { remaining: 0, resetAfterMs: 4000 } }
        })
      )
      const log: Array<Admitted> = []
      const b = yield* Effect.forkChild(admitted(log, "b"))
      yield* TestClock.adjust("3 seconds")
      assert.strictEqual(log.length, 0)
      const s = yield* stats
      assert.strictEqual(s.reserved.requests, 0)
      yield* TestClock.adjust("1 seconds")
      yield* Fiber.join(b)
      assert.strictEqual(log[0].at, 4000)
    }).pipe(provide({ defaults: { requestsPerMinute: 100, tokensPerMinute: 100_000 } }))
  )

  it.effect(
    "a call that fails before reaching the provider is refunded in full; a provider error keeps the estimate",
    () =>
      Effect.gen(function* () {
        yield* Effect.flip(
          Effect.fail(new LlmError.CircuitOpen({ key: KEY, retryAfterMs: 10 })).pipe(Admission.admit(request("x"), KEY))
        )
        assert.deepStrictEqual((yield* stats).reserved, { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0 })
        yield* Effect.flip(
          Effect.fail(new LlmError.ServerError({ message: "500", status: 500 })).pipe(
            Admission.admit(request("y"), KEY)
          )
        )
        assert.deepStrictEqual((yield* stats).reserved, {
          requests: 1,
          tokens: 500,
          inputTokens: 300,
          outputTokens: 200
        })
      }).pipe(provide({ defaults: { requestsPerMinute: 10, tokensPerMinute: 10_000 } }))
  )

  it.effect("an interruption refunds a call a stage held back before the provider, not one sent to it", () =>
    Effect.gen(function* () {
      const admission = yield* Admission.Admission
      const held = yield* Latch.make(false)
      // a stage inside admission that holds the attempt (as a concurrency cap or a remote check would)
      const hold: Stage.Stage<null> = {
        name: "hold",
        enter: () => Effect.as(Effect.interruptible(held.await), null),
        exit: () => undefined
      }
      const body = Effect.never.pipe(Effect.as(response(1, 1)))
      const before = yield* Effect.forkChild(body.pipe(Stage.protect([admission.stage, hold], request("a"), KEY)))
      yield* Effect.yieldNow
      assert.strictEqual((yield* stats).reserved.requests, 1)
      yield* Fiber.interrupt(before)
      // never reached the provider: refunded
      assert.strictEqual((yield* stats).reserved.requests, 0)
      yield* held.open
      const sent = yield* Effect.forkChild(body.pipe(Stage.protect([admission.stage, hold], request("b"), KEY)))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(sent)
      // in flight at the provider: it counted the request, the estimate stays
      assert.deepStrictEqual((yield* stats).reserved, { requests: 1, tokens: 500, inputTokens: 300, outputTokens: 200 })
    }).pipe(provide({ defaults: { requestsPerMinute: 10, tokensPerMinute: 10_000 } }))
  )

  it.effect("streams reconcile from the Finish chunk; an interrupted one keeps its estimate", () =>
    Effect.gen(function* () {
      const finish = {
        _tag: "Finish" as const,
        finishReason: "stop" as const,
        usage: { inputTokens: 40, outputTokens: 10 },
        provider: "fake",
        model: "m"
      }
      const chunks = yield* Stream.runCollect(
        Stream.make({ _tag: "TextDelta" as const, text: "hi" }, finish).pipe(Admission.admitStream(request("s"), KEY))
      )
      assert.strictEqual(chunks.length, 2)
      assert.deepStrictEqual((yield* stats).reserved, { requests: 1, tokens: 50, inputTokens: 40, outputTokens: 10 })
      const stuck = yield* Effect.forkChild(
        Stream.runDrain(Stream.never.pipe(Admission.admitStream(request("t"), KEY)))
      )
      yield* Effect.yieldNow
      assert.strictEqual((yield* stats).reserved.requests, 2)
      assert.strictEqual((yield* stats).availablePermits, 0)
      yield* Fiber.interrupt(stuck)
      // the stream had started: the provider counted the request, and nothing says what it used
      const s = yield* stats
      assert.deepStrictEqual(s.reserved, { requests: 2, tokens: 550, inputTokens: 340, outputTokens: 210 })
      assert.strictEqual(s.availablePermits, 1)
    }).pipe(provide({ defaults: { requestsPerMinute: 10, tokensPerMinute: 10_000, maxConcurrency: 1 } }))
  )

  it.effect("separate input and output budgets are checked together with the others", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      // output cap 200 per request, 500 output tokens per minute: two fit although tokens and requests allow more
      const fibers = []
      for (let i = 0; i < 3; i++)
        fibers.push(yield* Effect.forkChild(admitted(log, `o${i}`, "interactive", { usage: [300, 200] })))
      yield* Effect.yieldNow
      assert.strictEqual(log.length, 2)
      const s = yield* stats
      assert.deepStrictEqual(s.reserved, { requests: 2, tokens: 1000, inputTokens: 600, outputTokens: 400 })
      yield* TestClock.adjust("1 minute")
      yield* Fiber.joinAll(fibers)
      assert.strictEqual(log[2].at, 60_000)
    }).pipe(
      provide({
        defaults: {
          requestsPerMinute: 100,
          tokensPerMinute: 100_000,
          inputTokensPerMinute: 100_000,
          outputTokensPerMinute: 500
        }
      })
    )
  )

  it("admission with budget available and an empty queue is synchronous", () => {
    const log: Array<Admitted> = []
    const result = Effect.runSync(
      admitted(log, "sync").pipe(
        provide({ defaults: { requestsPerMinute: 10, tokensPerMinute: 10_000, maxConcurrency: 2 } })
      )
    )
    assert.strictEqual(result.text, "ok")
    assert.strictEqual(log.length, 1)
  })

  it.effect("keys without limits pass through; invalid options fail naming the field", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      yield* call(log, "free", 1).pipe(Admission.admit(request("free"), "other/model"))
      assert.strictEqual(log.length, 1)
      const exit = yield* Effect.exit(
        Effect.scoped(Layer.build(Admission.layerMemory({ defaults: { requestsPerMinute: 0 } })))
      )
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "requestsPerMinute")
    }).pipe(provide({ keys: { [KEY]: { requestsPerMinute: 1 } } }))
  )

  it.effect("records admitted, rejected by reason, queue depth, wait time and tokens reserved vs actual", () =>
    Effect.gen(function* () {
      const log: Array<Admitted> = []
      yield* admitted(log, "a", "interactive", { usage: [100, 50] })
      const b = yield* Effect.forkChild(admitted(log, "b"))
      yield* Effect.yieldNow
      const depth = yield* Metric.value(Metric.withAttributes(Admission.metrics.queueDepth, { key: KEY }))
      assert.strictEqual(depth.value, 1)
      yield* Effect.flip(admitted(log, "c"))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(b)
      const m = Admission.metrics
      const count = (metric: Metric.Counter<number>, attrs: Record<string, string>) =>
        Effect.map(Metric.value(Metric.withAttributes(metric, attrs)), (s) => s.count)
      assert.strictEqual(yield* count(m.admitted, { key: KEY }), 2)
      assert.strictEqual(yield* count(m.rejected, { key: KEY, reason: "queue-full" }), 1)
      assert.strictEqual(yield* count(m.rejected, { key: KEY, reason: "wait-too-long" }), 0)
      assert.strictEqual(yield* count(m.tokensReserved, { key: KEY }), 1000)
      assert.strictEqual(yield* count(m.tokensActual, { key: KEY }), 150 + 500)
      assert.strictEqual((yield* Metric.value(Metric.withAttributes(m.queueDepth, { key: KEY }))).value, 0)
      const wait = yield* Metric.value(Metric.withAttributes(m.waitMs, { key: KEY }))
      assert.strictEqual(wait.count, 2)
      assert.strictEqual(wait.max, 60_000)
    }).pipe(
      provide({ defaults: { requestsPerMinute: 1 }, maxQueueLength: 1 }),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )

  describe("against FakeProvider with a real capacity (60 rpm, 12,000 tpm, 429 beyond)", () => {
    const capacity = { requestsPerMinute: 60, tokensPerMinute: 12_000 }
    // 400 chars -> 100 input tokens, 100 output tokens: 200 per call, so both limits allow exactly 60/min
    const overload = (estimator: TokenEstimator.TokenEstimatorShape, label: string, expectedPerMinute: number) =>
      it.effect(`a 5x overload through admission gets zero 429s and goodput equal to capacity (${label})`, () =>
        Effect.gen(function* () {
          const llm = yield* Admission.wrapProvider(yield* LlmProvider.LlmProvider)
          const outcomes: Array<string> = []
          const arrivals = Effect.gen(function* () {
            const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
            // 300 per minute (5x capacity) for 5 minutes
            for (let i = 0; i < 1500; i++) {
              const req: LlmRequest.LlmRequest = {
                model: "m",
                messages: [{ role: "user", content: "x".repeat(400) }],
                maxOutputTokens: 100,
                metadata: { priority: i % 2 === 0 ? "interactive" : "background" }
              }
              fibers.push(
                yield* Effect.forkChild(
                  llm.complete(req).pipe(
                    Effect.match({
                      onFailure: (e) => outcomes.push(e._tag === "AdmissionRejected" ? e.reason : e._tag),
                      onSuccess: () => outcomes.push("ok")
                    })
                  )
                )
              )
              yield* Effect.sleep("200 millis")
            }
            yield* Fiber.joinAll(fibers)
          })
          const done = yield* Effect.forkChild(arrivals)
          yield* TestClock.adjust("6 minutes")
          yield* Fiber.join(done)
          const calls = yield* FakeProvider.calls
          assert.strictEqual(calls.filter((c) => c.outcome === "RateLimited").length, 0, "429s from the provider")
          assert.strictEqual(outcomes.filter((o) => o === "RateLimited").length, 0)
          // goodput: successful calls started in each minute of the overload equal the capacity
          const perMinute = [0, 1, 2, 3, 4].map(
            (m) =>
              calls.filter(
                (c) => c.outcome === "success" && c.startedAt >= m * 60_000 && c.startedAt < (m + 1) * 60_000
              ).length
          )
          assert.deepStrictEqual(
            perMinute,
            [0, 1, 2, 3, 4].map(() => expectedPerMinute)
          )
          // the excess was shed by admission (waited its bound), never sent
          assert.strictEqual(calls.length, outcomes.filter((o) => o === "ok").length)
          assert.isAbove(outcomes.filter((o) => o === "wait-too-long").length, 1000)
        }).pipe(
          Effect.provide(
            Layer.merge(
              Admission.layerMemory({ keys: { "fake/m": capacity }, maxWaitMs: 20_000 }),
              FakeProvider.layer({ name: "fake", models: { m: { latency: "2 seconds", outputTokens: 100, capacity } } })
            )
          ),
          Effect.provideService(TokenEstimator.TokenEstimator, estimator)
        )
      )
    // an estimator that counts like the provider (chars / 4, no framing): the token limit binds exactly
    overload(TokenEstimator.heuristic({ perMessageTokens: 0, perRequestTokens: 0 }), "estimates match the provider", 60)
    // the default heuristic pads each estimate by 7 tokens (framing); while calls are in flight the padding
    // holds back the last slot of each window (12,000 - 57 x 207 ...), so goodput is 59/min: 98% of capacity,
    // still with zero 429s. Reconciliation returns the padding as soon as each call ends.
    overload(TokenEstimator.heuristic(), "default heuristic, 98% of capacity", 59)
  })
})

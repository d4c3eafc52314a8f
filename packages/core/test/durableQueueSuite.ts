/**
 * The functional tests of a durable queue, run on every store: in memory (TestClock) here, in Redis (live
 * clock, its own redis-server) by @llm-resilience/redis.
 */
import { assert, it } from "@effect/vitest"
import { Effect, Exit, Layer, Metric, Option, Schema, Stream } from "effect"
import { PersistedQueue } from "effect/persistence"
import type { LlmRequest, LlmResponse } from "@llm-resilience/core"
import { DurableQueue, FallbackPlan, LlmError, LlmProvider } from "@llm-resilience/core"

/** What the suite needs from a store: the queue layer (with its factory visible) and a way to let time pass. */
export interface Harness {
  readonly layer: (
    options: DurableQueue.Options
  ) => Layer.Layer<DurableQueue.DurableQueue | PersistedQueue.PersistedQueueFactory | DurableQueue.JobStore, unknown>
  /** Lets virtual or real time pass: `TestClock.adjust` or a short sleep. */
  readonly tick: Effect.Effect<void>
  readonly test: typeof it.effect
}

/** A scripted provider: the request's text says what happens (`ok`, `fail:<tag>:<times>`, `always:<tag>`). */
export const scripted = () => {
  const calls = new Map<string, number>()
  const seen: Array<LlmRequest.LlmRequest> = []
  let healed = false
  const errorFor = (tag: string): LlmError.LlmError => {
    switch (tag) {
      case "400":
        return new LlmError.BadRequest({ message: "bad", status: 400 })
      case "401":
        return new LlmError.Authentication({ message: "no key", status: 401 })
      case "429":
        return new LlmError.RateLimited({ message: "slow down", status: 429, limit: "requests", retryAfterMs: 60_000 })
      default:
        return new LlmError.Overloaded({ message: "overloaded", status: 503 })
    }
  }
  const provider: LlmProvider.LlmProvider["Service"] = {
    name: "scripted",
    complete: (request) =>
      Effect.suspend(() => {
        seen.push(request)
        const text = request.messages[0]!.content
        const n = (calls.get(text) ?? 0) + 1
        calls.set(text, n)
        const [kind, tag, times] = text.split(":")
        const response: LlmResponse.LlmResponse = {
          text: `answer to ${text} (call ${n})`,
          finishReason: "stop",
          usage: { inputTokens: 1, outputTokens: 1 },
          provider: "scripted",
          model: request.model
        }
        if (kind === "always" && !healed) return Effect.fail(errorFor(tag!))
        if (kind === "fail" && n <= Number(times)) return Effect.fail(errorFor(tag!))
        return Effect.succeed(response)
      }),
    stream: () => Stream.die("not used")
  }
  return {
    layer: Layer.succeed(LlmProvider.LlmProvider, provider),
    callsOf: (text: string) => calls.get(text) ?? 0,
    seen,
    heal: () => {
      healed = true
    }
  }
}

export const req = (text: string, key?: string): LlmRequest.LlmRequest => ({
  model: "m",
  messages: [{ role: "user", content: text }],
  ...(key === undefined ? {} : { metadata: { idempotencyKey: key } })
})

const opts: DurableQueue.Options = { name: "suite", maxAttempts: 3, backoff: "10 millis", maxBackoff: "40 millis" }

/** Waits (bounded) until the job of `ticket` is done or dead. */
export const settled = (ticket: string, tick: Effect.Effect<void>) =>
  Effect.gen(function* () {
    const queue = yield* DurableQueue.DurableQueue
    for (let i = 0; i < 3_000; i++) {
      const job = yield* queue.status(ticket)
      if (Option.isSome(job) && (job.value.status === "done" || job.value.status === "dead")) return job.value
      yield* tick
    }
    return assert.fail(`job ${ticket} never settled`)
  })

export const functionalSuite = (h: Harness) => {
  const run = <A, E>(
    body: (
      s: ReturnType<typeof scripted>
    ) => Effect.Effect<A, E, DurableQueue.DurableQueue | PersistedQueue.PersistedQueueFactory | DurableQueue.JobStore>,
    options: DurableQueue.Options = opts,
    workers: DurableQueue.WorkerOptions = { concurrency: 2 }
  ) => {
    const s = scripted()
    return Effect.scoped(
      Layer.build(
        DurableQueue.layerWorkers(workers).pipe(Layer.provideMerge(h.layer(options)), Layer.provide(s.layer))
      ).pipe(Effect.flatMap((ctx) => Effect.provide(body(s), ctx)))
    ).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  }

  h.test("accept is idempotent by key, explicit or derived from the request", () =>
    run((s) =>
      Effect.gen(function* () {
        const queue = yield* DurableQueue.DurableQueue
        const a = yield* queue.accept(req("ok", "k-1"))
        const b = yield* queue.accept(req("ok", "k-1"))
        const c = yield* queue.accept(req("ok:derived"))
        const d = yield* queue.accept(req("ok:derived"))
        const e = yield* queue.accept(req("ok:other"))
        assert.strictEqual(a.ticketId, "k-1")
        assert.strictEqual(b.ticketId, "k-1")
        assert.strictEqual(b.acceptedAt, a.acceptedAt)
        assert.strictEqual(c.ticketId, d.ticketId)
        assert.notStrictEqual(c.ticketId, e.ticketId)
        const done = yield* settled("k-1", h.tick)
        yield* settled(c.ticketId, h.tick)
        const again = yield* queue.accept(req("ok", "k-1"))
        assert.strictEqual(again.ticketId, "k-1")
        yield* Effect.repeat(h.tick, { times: 5 })
        assert.strictEqual(done.status, "done")
        assert.strictEqual(s.callsOf("ok"), 1)
        assert.strictEqual(s.callsOf("ok:derived"), 1)
      })
    )
  )

  h.test("workers answer through the provider at background priority; the result is kept by ticket", () =>
    run((s) =>
      Effect.gen(function* () {
        const queue = yield* DurableQueue.DurableQueue
        const { ticketId } = yield* queue.accept(req("ok", "t-1"))
        const job = yield* settled(ticketId, h.tick)
        assert.strictEqual(job.status, "done")
        assert.strictEqual(job.attempts, 1)
        assert.strictEqual(job.response?.text, "answer to ok (call 1)")
        assert.deepStrictEqual(s.seen[0]!.metadata, { idempotencyKey: "t-1", priority: "background" })
      })
    )
  )

  h.test("retryable errors are retried until success, each failure kept", () =>
    run((s) =>
      Effect.gen(function* () {
        const queue = yield* DurableQueue.DurableQueue
        const { ticketId } = yield* queue.accept(req("fail:503:2"))
        const job = yield* settled(ticketId, h.tick)
        assert.strictEqual(job.status, "done")
        assert.strictEqual(job.attempts, 3)
        assert.deepStrictEqual(
          job.failures.map((f) => [f.attempt, f.tag]),
          [
            [1, "Overloaded"],
            [2, "Overloaded"]
          ]
        )
        assert.strictEqual(s.callsOf("fail:503:2"), 3)
      })
    )
  )

  h.test("retryable errors give up after maxAttempts; fatal ones after one attempt", () =>
    run((s) =>
      Effect.gen(function* () {
        const queue = yield* DurableQueue.DurableQueue
        const busy = yield* queue.accept(req("always:503"))
        const bad = yield* queue.accept(req("always:400"))
        const auth = yield* queue.accept(req("always:401"))
        const b = yield* settled(busy.ticketId, h.tick)
        const f = yield* settled(bad.ticketId, h.tick)
        const a = yield* settled(auth.ticketId, h.tick)
        assert.deepStrictEqual([b.status, b.attempts, b.reason, b.failures.length], ["dead", 3, "Overloaded", 3])
        assert.deepStrictEqual([f.status, f.attempts, f.reason, f.failures.length], ["dead", 1, "BadRequest", 1])
        assert.deepStrictEqual([a.status, a.attempts, a.reason], ["dead", 1, "Authentication"])
        assert.strictEqual(f.failures[0]!.error?._tag, "BadRequest")
        assert.strictEqual(s.callsOf("always:503"), 3)
        assert.strictEqual(s.callsOf("always:400"), 1)
        const stats = yield* queue.stats
        assert.deepStrictEqual([stats.active, stats.dead], [0, 3])
      })
    )
  )

  h.test("dead letters: list oldest first, show, replay one or all, purge", () =>
    run((s) =>
      Effect.gen(function* () {
        const queue = yield* DurableQueue.DurableQueue
        const first = yield* queue.accept(req("always:400", "d-1"))
        yield* settled(first.ticketId, h.tick)
        yield* h.tick
        const second = yield* queue.accept(req("always:401", "d-2"))
        yield* settled(second.ticketId, h.tick)
        const third = yield* queue.accept(req("always:503", "d-3"))
        yield* settled(third.ticketId, h.tick)
        assert.deepStrictEqual(
          (yield* queue.deadLetters).map((j) => j.ticket),
          ["d-1", "d-2", "d-3"]
        )
        s.heal()
        assert.strictEqual(yield* queue.replay("d-2"), 1)
        assert.strictEqual(yield* queue.replay("no-such"), 0)
        const replayed = yield* settled("d-2", h.tick)
        assert.deepStrictEqual([replayed.status, replayed.replays, replayed.failures.length], ["done", 1, 1])
        assert.strictEqual(yield* queue.purge("d-1"), 1)
        assert.isTrue(Option.isNone(yield* queue.status("d-1")))
        assert.strictEqual(yield* queue.replay(), 1)
        assert.strictEqual((yield* settled("d-3", h.tick)).status, "done")
        const again = yield* queue.accept(req("fail:400:9", "d-4"))
        yield* settled(again.ticketId, h.tick)
        assert.strictEqual(yield* queue.purge(), 1)
        assert.deepStrictEqual(yield* queue.deadLetters, [])
      })
    )
  )

  h.test("a job whose request does not decode goes to the dead-letter queue; the worker goes on", () =>
    run((s) =>
      Effect.gen(function* () {
        const factory = yield* PersistedQueue.PersistedQueueFactory
        const raw = yield* factory.make({ name: "suite", schema: jobSchema })
        yield* raw.offer({ ticket: "junk", request: { model: 42 }, acceptedAt: 0 }, { id: "junk" })
        const queue = yield* DurableQueue.DurableQueue
        const ok = yield* queue.accept(req("ok", "after-junk"))
        // a stored record this version cannot read
        const store = yield* DurableQueue.JobStore
        const index = { status: "queued", acceptedAt: 0, finishedAt: undefined, ttlMs: undefined } as const
        yield* store.put("corrupt", "{not json", index)
        yield* raw.offer({ ticket: "corrupt", request: req("ok:corrupt"), acceptedAt: 0 }, { id: "corrupt" })
        const junk = yield* settled("junk", h.tick)
        assert.deepStrictEqual(
          [junk.status, junk.reason, junk.failures[0]!.tag],
          ["dead", "DecodeError", "DecodeError"]
        )
        // (its status fails with DurableQueueError until the worker has replaced it)
        for (let i = 0; i < 3_000 && (yield* queue.deadLetters).length < 2; i++) yield* h.tick
        const corrupt = yield* settled("corrupt", h.tick)
        assert.deepStrictEqual([corrupt.status, corrupt.reason], ["dead", "DecodeError"])
        assert.include(corrupt.failures[0]!.message, "does not decode")
        assert.strictEqual(s.callsOf("ok:corrupt"), 0)
        assert.deepStrictEqual((yield* queue.deadLetters).map((j) => j.ticket).sort(), ["corrupt", "junk"])
        assert.strictEqual((yield* settled(ok.ticketId, h.tick)).status, "done")
        assert.strictEqual(s.callsOf("ok"), 1)
      })
    )
  )

  h.test("the completion handler sees every finished job; its failure changes nothing", () => {
    const finished: Array<string> = []
    return run(
      () =>
        Effect.gen(function* () {
          const queue = yield* DurableQueue.DurableQueue
          yield* queue.accept(req("ok", "c-1"))
          yield* queue.accept(req("always:400", "c-2"))
          yield* settled("c-1", h.tick)
          yield* settled("c-2", h.tick)
          for (let i = 0; i < 100 && finished.length < 2; i++) yield* h.tick
          assert.deepStrictEqual(finished.sort(), ["c-1:done", "c-2:dead"])
          assert.strictEqual(Option.getOrThrow(yield* queue.status("c-1")).status, "done")
        }),
      opts,
      {
        onComplete: (job) =>
          Effect.andThen(
            Effect.sync(() => finished.push(`${job.ticket}:${job.status}`)),
            Effect.fail("handler broke")
          )
      }
    )
  })

  h.test("a fallback plan's acceptForLater step writes to the queue, and the job is answered", () =>
    run(() =>
      Effect.gen(function* () {
        const down: LlmProvider.LlmProvider["Service"] = {
          name: "down",
          complete: () => Effect.fail(new LlmError.Overloaded({ message: "down", status: 529 })),
          stream: () => Stream.die("not used")
        }
        const plan = yield* FallbackPlan.make([FallbackPlan.step(down, { model: "ok" }), FallbackPlan.acceptForLater])
        const exit = yield* Effect.exit(
          plan.complete(req("ok", "plan-1")).pipe(Effect.provide(DurableQueue.layerLaterQueue))
        )
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.findErrorOption(exit)
        assert.isTrue(
          Option.isSome(error) && error.value._tag === "AcceptedForLater" && error.value.ticketId === "plan-1"
        )
        assert.strictEqual((yield* settled("plan-1", h.tick)).status, "done")
      })
    )
  )

  h.test("capacity bounds queued jobs", () =>
    run(
      () =>
        Effect.gen(function* () {
          const queue = yield* DurableQueue.DurableQueue
          yield* queue.accept(req("always:503", "cap-1"))
          const full = yield* Effect.flip(queue.accept(req("ok", "cap-2")))
          assert.strictEqual(full._tag, "LaterQueueFull")
          assert.strictEqual((yield* queue.accept(req("always:503", "cap-1"))).ticketId, "cap-1")
        }),
      { ...opts, capacity: 1, backoff: "1 hour", maxBackoff: "1 hour" }
    )
  )
}

const jobSchema = Schema.Struct({ ticket: Schema.String, request: Schema.Unknown, acceptedAt: Schema.Finite })

import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, Option } from "effect"
import { HttpClient, HttpClientResponse } from "effect/http"
import { PersistedQueue } from "effect/persistence"
import { TestClock } from "effect/testing"
import { DurableQueue } from "@llm-resilience/core"
import { functionalSuite, req, scripted, settled } from "./durableQueueSuite.ts"

const memory = (options: DurableQueue.Options) =>
  DurableQueue.layer(options).pipe(
    Layer.provideMerge(PersistedQueue.layer),
    Layer.provideMerge(Layer.merge(PersistedQueue.layerStoreMemory, DurableQueue.layerJobStoreMemory))
  )

const tick = TestClock.adjust("10 millis")

describe("DurableQueue (memory store)", () => {
  functionalSuite({ layer: memory, tick, test: it.effect })

  const withWorkers = (options: DurableQueue.Options, s = scripted()) =>
    DurableQueue.layerWorkers({ concurrency: 2, metricsInterval: "5 seconds" }).pipe(
      Layer.provideMerge(DurableQueue.layerMemory(options)),
      Layer.provide(s.layer)
    )

  it.effect("a retry waits at least the provider's Retry-After", () => {
    const s = scripted()
    return Effect.gen(function* () {
      const queue = yield* DurableQueue.DurableQueue
      const { ticketId } = yield* queue.accept(req("fail:429:1"))
      yield* TestClock.adjust("59 seconds")
      const waiting = Option.getOrThrow(yield* queue.status(ticketId))
      assert.deepStrictEqual([waiting.status, waiting.attempts, s.callsOf("fail:429:1")], ["queued", 1, 1])
      yield* TestClock.adjust("1 second")
      const job = yield* settled(ticketId, tick)
      assert.deepStrictEqual([job.status, job.attempts], ["done", 2])
    }).pipe(Effect.provide(withWorkers({ backoff: "1 millis" }, s)))
  })

  it.effect("results are kept for resultTtl, dead letters until purged", () =>
    Effect.gen(function* () {
      const queue = yield* DurableQueue.DurableQueue
      yield* queue.accept(req("ok", "r-1"))
      yield* queue.accept(req("always:400", "r-2"))
      yield* settled("r-1", tick)
      yield* settled("r-2", tick)
      yield* TestClock.adjust("59 minutes")
      assert.isTrue(Option.isSome(yield* queue.status("r-1")))
      yield* TestClock.adjust("1 minute")
      assert.isTrue(Option.isNone(yield* queue.status("r-1")))
      assert.isTrue(Option.isSome(yield* queue.status("r-2")))
    }).pipe(Effect.provide(withWorkers({ resultTtl: "1 hour" })))
  )

  it.effect("metrics: depth, oldest job age, dead-letter size, done and dead by reason", () =>
    Effect.gen(function* () {
      const queue = yield* DurableQueue.DurableQueue
      yield* queue.accept(req("ok", "m-1"))
      yield* queue.accept(req("always:400", "m-2"))
      yield* queue.accept(req("fail:429:1", "m-3"))
      yield* settled("m-1", tick)
      yield* settled("m-2", tick)
      yield* TestClock.adjust("10 seconds")
      const values = new Map(
        (yield* Metric.snapshot)
          .filter((m) => m.id.startsWith("durable_queue"))
          .map((m) => [
            `${m.id}${(m.attributes as Record<string, string>).reason ?? ""}`,
            (m.state as { value?: number; count?: number }).value ?? (m.state as { count: number }).count
          ])
      )
      assert.strictEqual(values.get("durable_queue_depth"), 1)
      assert.isTrue(values.get("durable_queue_oldest_job_age_seconds")! >= 10)
      assert.strictEqual(values.get("durable_queue_dead_letters"), 1)
      assert.strictEqual(values.get("durable_queue_jobs_done"), 1)
      assert.strictEqual(values.get("durable_queue_jobs_deadBadRequest"), 1)
    }).pipe(
      Effect.provide(withWorkers({ backoff: "1 millis" })),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )

  it.effect("the HTTP callback POSTs the finished job with its ticket as idempotency key, retrying a failure", () => {
    const posts: Array<{ url: string; key: string | undefined; body: string }> = []
    const client = HttpClient.make((request, url) =>
      Effect.sync(() => {
        const body = request.body._tag === "Uint8Array" ? new TextDecoder().decode(request.body.body) : ""
        posts.push({ url: url.toString(), key: request.headers["idempotency-key"], body })
        return HttpClientResponse.fromWeb(request, new Response(null, { status: posts.length === 1 ? 503 : 204 }))
      })
    )
    const s = scripted()
    return Effect.gen(function* () {
      const queue = yield* DurableQueue.DurableQueue
      yield* queue.accept(req("ok", "h-1"))
      yield* settled("h-1", tick)
      for (let i = 0; i < 100 && posts.length < 2; i++) yield* TestClock.adjust("100 millis")
      assert.strictEqual(posts.length, 2)
      assert.deepStrictEqual([posts[1]!.url, posts[1]!.key], ["https://hooks.example/llm", "h-1"])
      const job = JSON.parse(posts[1]!.body)
      assert.deepStrictEqual([job.ticket, job.status, job.response.text], ["h-1", "done", "answer to ok (call 1)"])
    }).pipe(
      Effect.provide(
        DurableQueue.layerWorkers({ onComplete: DurableQueue.httpCallback("https://hooks.example/llm") }).pipe(
          Layer.provideMerge(DurableQueue.layerMemory()),
          Layer.provide(s.layer),
          Layer.provide(Layer.succeed(HttpClient.HttpClient, client))
        )
      )
    )
  })

  it.effect("bad options are typed errors", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Layer.build(DurableQueue.layerMemory({ maxAttempts: 0 })))
      assert.strictEqual(error._tag, "SchemaError")
    }).pipe(Effect.scoped)
  )
})

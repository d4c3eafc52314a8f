/**
 * A durable accept-for-later queue: requests a fallback plan accepted for later (or that an application
 * queues itself) are stored under an idempotency key, drained by workers through the same resilient
 * provider as every other call (at `background` priority, so admission, breakers and budgets apply), retried
 * by error class, answered by ticket, and moved to a dead-letter queue when they cannot succeed.
 *
 * Delivery is built on `effect/persistence/PersistedQueue` (claims, locks, redelivery after a crashed
 * worker, de-duplication of offers). Job records (status, attempts, every attempt's error, the response)
 * live in a {@link JobStore} beside it, because `PersistedQueue` keeps no status or result by id and its
 * failed elements cannot be listed or replayed. {@link layerMemory} keeps both in memory (lost on
 * restart); `@llm-resilience/redis` keeps both in Redis.
 *
 * A job's life: `queued` → `running` (attempt k) → `done` (with the response, kept for `resultTtl`) or
 * `dead` (with every attempt's error, kept until purged). Retryable errors are retried after full-jitter
 * exponential backoff that never undercuts the provider's Retry-After, up to `maxAttempts` attempts;
 * fatal ones (bad request, authentication, permission, unknown model, content filter, quota, context length
 * the pipeline could not route around, a spend or agent guard) go to the dead-letter queue at once. A job
 * whose stored request no longer decodes goes there too, with the decode error.
 *
 * Processing is at-least-once: a worker that dies after the provider answered but before the result was
 * stored leaves the job to be run again, so the provider may be called twice for one job. The stored result
 * is written once: a job that is already done is never run again.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer, Metric, Option, Schedule, Schema } from "effect"
import type { HttpClient } from "effect/http"
import { PersistedQueue } from "effect/persistence"
import * as FallbackPlan from "./FallbackPlan.ts"
import type { LlmError } from "./LlmError.ts"
import { LlmProvider } from "./LlmProvider.ts"
import { LlmRequest } from "./LlmRequest.ts"
import * as callback from "./internal/jobCallback.ts"
import * as jobs from "./internal/jobs.ts"

/**
 * A job: its ticket, the encoded request, status, attempts, every failed attempt and, when done, the
 * response.
 *
 * @since 0.1.0
 */
export const Job = jobs.Job

/**
 * @since 0.1.0
 */
export type Job = jobs.Job

/**
 * One failed attempt of a {@link Job}.
 *
 * @since 0.1.0
 */
export type AttemptFailure = jobs.AttemptFailure

/**
 * A store or queue operation failed (the backing store is unreachable, a record is corrupt).
 *
 * @since 0.1.0
 */
export class DurableQueueError extends Schema.TaggedError<DurableQueueError>()("DurableQueueError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/**
 * Where job records are kept. Records are JSON strings; the store keeps the indexes the queue reads
 * (active jobs by acceptance time, dead ones by death time) and drops done records after their time to
 * live. {@link layerJobStoreMemory} is the in-memory one.
 *
 * @since 0.1.0
 */
export class JobStore extends Context.Service<JobStore, jobs.JobStoreShape<DurableQueueError>>()(
  "@llm-resilience/core/DurableQueue/JobStore"
) {}

/**
 * The in-memory {@link JobStore}.
 *
 * @example
 * ```ts
 * import { DurableQueue } from "@llm-resilience/core"
 * const Store = DurableQueue.layerJobStoreMemory
 * ```
 * @since 0.1.0
 */
export const layerJobStoreMemory: Layer.Layer<JobStore> = Layer.effect(JobStore, jobs.makeMemoryStore)

/**
 * Counts, gauges and their attribute `queue` (plus `reason` on {@link jobsDead}).
 *
 * @since 0.1.0
 */
export const queueDepth = Metric.gauge("durable_queue_depth", { description: "jobs queued or running" })

/**
 * @since 0.1.0
 */
export const oldestJobAge = Metric.gauge("durable_queue_oldest_job_age_seconds", {
  description: "age of the oldest queued or running job"
})

/**
 * @since 0.1.0
 */
export const deadLetterSize = Metric.gauge("durable_queue_dead_letters", {
  description: "jobs in the dead-letter queue"
})

/**
 * @since 0.1.0
 */
export const jobsDone = Metric.counter("durable_queue_jobs_done", { description: "jobs answered", incremental: true })

/**
 * @since 0.1.0
 */
export const jobsDead = Metric.counter("durable_queue_jobs_dead", {
  description: "jobs moved to the dead-letter queue, by reason",
  incremental: true
})

/**
 * Queue depth, the acceptance time of the oldest active job (epoch ms), and the dead-letter size.
 *
 * @since 0.1.0
 */
export interface Stats {
  readonly active: number
  readonly oldestAcceptedAt: number | undefined
  readonly dead: number
}

/**
 * Options of a queue; every field has a default.
 *
 * @since 0.1.0
 */
export interface Options {
  /** The queue's name in the store (default `llm-later`). */
  readonly name?: string | undefined
  /** Attempts per job, the first included (default 3). */
  readonly maxAttempts?: number | undefined
  /** First backoff cap (default 1 second), doubled per attempt up to `maxBackoff` (default 5 minutes). */
  readonly backoff?: Duration.Input | undefined
  readonly maxBackoff?: Duration.Input | undefined
  /** How long a done job's result is kept (default 7 days). */
  readonly resultTtl?: Duration.Input | undefined
  /** At most this many queued or running jobs; `accept` fails with `LaterQueueFull` beyond (default none). */
  readonly capacity?: number | undefined
}

/**
 * Options of the workers.
 *
 * @since 0.1.0
 */
export interface WorkerOptions<R = never> {
  /** Jobs run at once by this process (default 4). */
  readonly concurrency?: number | undefined
  /** Runs after a job ends, done or dead; its failures are logged and never change the job. */
  readonly onComplete?: ((job: Job) => Effect.Effect<void, unknown, R>) | undefined
  /** How often the gauges are sampled (default 15 seconds). */
  readonly metricsInterval?: Duration.Input | undefined
}

/**
 * A durable queue.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { DurableQueue } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const queue = yield* DurableQueue.DurableQueue
 *   const { ticketId } = yield* queue.accept({ model: "m", messages: [{ role: "user", content: "Hi" }] })
 *   const job = yield* queue.status(ticketId)
 *   return Option.map(job, (j) => j.status)
 * })
 * ```
 * @since 0.1.0
 */
export class DurableQueue extends Context.Service<
  DurableQueue,
  {
    readonly name: string
    /**
     * Stores the request under its idempotency key (the option, else `metadata.idempotencyKey`, else one
     * derived from the request) and returns the ticket; the same key again returns the same ticket.
     */
    readonly accept: (
      request: LlmRequest,
      options?: { readonly key?: string | undefined }
    ) => Effect.Effect<FallbackPlan.Accepted, DurableQueueError | FallbackPlan.LaterQueueFull>
    readonly status: (ticket: string) => Effect.Effect<Option.Option<Job>, DurableQueueError>
    /** The dead-letter queue, oldest first. */
    readonly deadLetters: Effect.Effect<ReadonlyArray<Job>, DurableQueueError>
    /** Queues dead jobs again with fresh attempts (one ticket, or all); returns how many. */
    readonly replay: (ticket?: string) => Effect.Effect<number, DurableQueueError>
    /** Deletes dead jobs (one ticket, or all); returns how many. */
    readonly purge: (ticket?: string) => Effect.Effect<number, DurableQueueError>
    readonly stats: Effect.Effect<Stats, DurableQueueError>
    /** Runs `concurrency` workers until interrupted; see {@link layerWorkers}. */
    readonly work: <R = never>(options?: WorkerOptions<R>) => Effect.Effect<never, never, LlmProvider | R>
  }
>()("@llm-resilience/core/DurableQueue") {}

const decodeRequest = Schema.decodeUnknownEffect(LlmRequest)
const encodeRequest = Schema.encodeUnknownEffect(LlmRequest)
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/**
 * Builds a {@link DurableQueue} on the `PersistedQueueFactory` and {@link JobStore} in context.
 *
 * @example
 * ```ts
 * import { DurableQueue } from "@llm-resilience/core"
 * const Queue = DurableQueue.layer({ name: "later", maxAttempts: 3 })
 * ```
 * @since 0.1.0
 */
export const layer = (
  options: Options = {}
): Layer.Layer<DurableQueue, Schema.SchemaError, PersistedQueue.PersistedQueueFactory | JobStore> =>
  Layer.effect(DurableQueue, make(options))

const make = Effect.fnUntraced(function* (options: Options) {
  const name = options.name ?? "llm-later"
  const maxAttempts = yield* Schema.decodeUnknownEffect(PositiveInt)(options.maxAttempts ?? 3)
  const capacity =
    options.capacity === undefined ? undefined : yield* Schema.decodeUnknownEffect(PositiveInt)(options.capacity)
  const backoff = {
    baseMs: Duration.toMillis(Duration.fromInputUnsafe(options.backoff ?? "1 second")),
    maxMs: Duration.toMillis(Duration.fromInputUnsafe(options.maxBackoff ?? "5 minutes"))
  }
  const resultTtlMs = Duration.toMillis(Duration.fromInputUnsafe(options.resultTtl ?? "7 days"))
  const store = yield* JobStore
  const queue = yield* PersistedQueue.make({
    name,
    schema: jobs.Element,
    // the job record counts attempts; the queue's own limit only bounds redeliveries after store failures
    maxAttempts: 1_000,
    retrySchedule: Schedule.min([Schedule.exponential("200 millis"), Schedule.spaced("30 seconds")])
  })
  const attrs = { queue: name }
  const now = Effect.clockWith((clock) => clock.currentTimeMillis)
  const fail = (message: string) => (cause: unknown) => new DurableQueueError({ message, cause })

  const save = (job: Job) =>
    Effect.flatMap(Effect.mapError(jobs.encodeJob(job), fail("cannot encode a job")), (record) =>
      store.put(job.ticket, record, jobs.indexOf(job, resultTtlMs))
    )
  const parse = (record: string) => Effect.mapError(jobs.decodeJob(record), fail("a stored job is corrupt"))
  const load = (ticket: string) =>
    Effect.flatMap(store.get(ticket), (o) => (Option.isNone(o) ? Effect.succeedNone : Effect.asSome(parse(o.value))))
  const enqueue = (job: Job) =>
    Effect.mapError(
      queue.offer(
        { ticket: job.ticket, request: job.request, acceptedAt: job.acceptedAt },
        { id: job.replays === 0 ? job.ticket : `${job.ticket}#replay-${job.replays}` }
      ),
      fail("cannot offer a job")
    )

  const accept = (request: LlmRequest, opts?: { readonly key?: string | undefined }) =>
    Effect.gen(function* () {
      const encoded = yield* Effect.mapError(encodeRequest(request), fail("cannot encode the request"))
      const ticket = opts?.key ?? request.metadata?.idempotencyKey ?? jobs.derivedTicket(encoded)
      const acceptedAt = yield* now
      const job: Job = { ticket, request: encoded, acceptedAt, status: "queued", attempts: 0, replays: 0, failures: [] }
      const existing = yield* load(ticket)
      if (Option.isSome(existing)) {
        const j = existing.value
        // offering again is idempotent and repairs an accept that stopped between record and offer
        if (j.status === "queued" || j.status === "running") yield* enqueue(j)
        return { ticketId: j.ticket, acceptedAt: j.acceptedAt, request }
      }
      if (capacity !== undefined && (yield* store.stats).active >= capacity) {
        return yield* new FallbackPlan.LaterQueueFull({ capacity })
      }
      const record = yield* Effect.mapError(jobs.encodeJob(job), fail("cannot encode a job"))
      const raced = yield* store.insert(ticket, record, jobs.indexOf(job, resultTtlMs))
      const stored = Option.isSome(raced) ? yield* parse(raced.value) : job
      yield* enqueue(stored)
      return { ticketId: stored.ticket, acceptedAt: stored.acceptedAt, request }
    })

  const finish = <R>(job: Job, onComplete: WorkerOptions<R>["onComplete"]) =>
    Effect.gen(function* () {
      yield* save(job)
      if (job.status === "done") yield* Metric.update(Metric.withAttributes(jobsDone, attrs), 1)
      else yield* Metric.update(Metric.withAttributes(jobsDead, { ...attrs, reason: job.reason ?? "unknown" }), 1)
      if (onComplete !== undefined) {
        yield* onComplete(job).pipe(
          Effect.catchCause((cause) =>
            Effect.logWarning("durable queue completion handler failed", cause).pipe(
              Effect.annotateLogs({ ticket: job.ticket })
            )
          )
        )
      }
    })

  /** Runs one claimed element to its end: done, dead, or (on interruption) left for redelivery. */
  const handle = <R>(element: jobs.Element, onComplete: WorkerOptions<R>["onComplete"]) =>
    Effect.gen(function* () {
      const provider = yield* LlmProvider
      const stored = yield* load(element.ticket)
      let job: Job = Option.getOrElse(stored, (): Job => ({
        ...element,
        status: "queued",
        attempts: 0,
        replays: 0,
        failures: []
      }))
      if (job.status === "done" || job.status === "dead") return
      if (job.status === "running") {
        // the worker running this attempt stopped before recording its outcome
        const at = yield* now
        const lost = { attempt: job.attempts, at, tag: "WorkerLost", message: "the worker stopped during this attempt" }
        job = { ...job, status: "queued", failures: [...job.failures, lost] }
        yield* save(job)
      }
      const decoded = yield* Effect.result(decodeRequest(job.request))
      if (decoded._tag === "Failure") {
        const at = yield* now
        const failure = { attempt: job.attempts, at, tag: "DecodeError", message: decoded.failure.message }
        return yield* finish(
          { ...job, status: "dead", failures: [...job.failures, failure], finishedAt: at, reason: "DecodeError" },
          onComplete
        )
      }
      const request = decoded.success
      const call: LlmRequest = {
        ...request,
        metadata: { ...request.metadata, priority: "background", idempotencyKey: job.ticket }
      }
      while (true) {
        const wait = (job.nextAttemptAt ?? 0) - (yield* now)
        if (wait > 0) yield* Effect.sleep(wait)
        if (job.attempts >= maxAttempts) {
          // the last attempt was lost with its worker (recorded above)
          return yield* finish({ ...job, status: "dead", finishedAt: yield* now, reason: "WorkerLost" }, onComplete)
        }
        const attempt = job.attempts + 1
        job = { ...job, status: "running", attempts: attempt, nextAttemptAt: undefined }
        yield* save(job)
        const result = yield* Effect.result(provider.complete(call))
        const at = yield* now
        if (result._tag === "Success") {
          return yield* finish({ ...job, status: "done", response: result.success, finishedAt: at }, onComplete)
        }
        const error: LlmError = result.failure
        const failures = [...job.failures, { attempt, at, tag: error._tag, message: error.message, error }]
        if (jobs.isFatal(error) || attempt >= maxAttempts) {
          const reason = jobs.reasonOf(error)
          return yield* finish({ ...job, status: "dead", failures, finishedAt: at, reason }, onComplete)
        }
        const delay = yield* jobs.retryDelayMs(error, attempt, backoff)
        job = { ...job, status: "queued", failures, nextAttemptAt: at + delay }
        yield* save(job)
      }
    })

  const sample = Effect.gen(function* () {
    const s = yield* store.stats
    const at = yield* now
    yield* Metric.update(Metric.withAttributes(queueDepth, attrs), s.active)
    yield* Metric.update(
      Metric.withAttributes(oldestJobAge, attrs),
      s.oldestAcceptedAt === undefined ? 0 : Math.max(0, at - s.oldestAcceptedAt) / 1000
    )
    yield* Metric.update(Metric.withAttributes(deadLetterSize, attrs), s.dead)
  })

  const work = <R = never>(opts: WorkerOptions<R> = {}): Effect.Effect<never, never, LlmProvider | R> => {
    const one = queue
      .take((element) => handle(element, opts.onComplete))
      .pipe(
        Effect.catchCause((cause) =>
          Effect.andThen(Effect.logWarning("durable queue worker: store failure", cause), Effect.sleep("1 second"))
        ),
        Effect.forever
      )
    const metrics = sample.pipe(
      Effect.catchCause((cause) => Effect.logWarning("durable queue metrics", cause)),
      Effect.repeat(Schedule.spaced(opts.metricsInterval ?? "15 seconds")),
      Effect.andThen(Effect.never)
    )
    return Effect.all([metrics, ...Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, () => one)], {
      concurrency: "unbounded",
      discard: true
    }).pipe(Effect.andThen(Effect.never))
  }

  const deadLetters = Effect.flatMap(store.dead, (records) => Effect.forEach(records, parse))
  const selected = (ticket: string | undefined) =>
    ticket === undefined
      ? deadLetters
      : Effect.map(load(ticket), (o) => (Option.isSome(o) && o.value.status === "dead" ? [o.value] : []))

  const replay = (ticket?: string) =>
    Effect.flatMap(selected(ticket), (dead) =>
      Effect.as(
        Effect.forEach(dead, (j) => {
          const again: Job = {
            ...j,
            status: "queued",
            attempts: 0,
            replays: j.replays + 1,
            nextAttemptAt: undefined,
            finishedAt: undefined,
            reason: undefined
          }
          return Effect.andThen(save(again), enqueue(again))
        }),
        dead.length
      )
    )

  const purge = (ticket?: string) =>
    Effect.flatMap(selected(ticket), (dead) =>
      Effect.as(
        Effect.forEach(dead, (j) => store.remove(j.ticket)),
        dead.length
      )
    )

  return DurableQueue.of({ name, accept, status: load, deadLetters, replay, purge, stats: store.stats, work })
})

/**
 * The queue with both its delivery and its job records in memory: the default when no durable store is
 * configured. A restart empties it.
 *
 * @example
 * ```ts
 * import { DurableQueue } from "@llm-resilience/core"
 * const Queue = DurableQueue.layerMemory({ maxAttempts: 3 })
 * ```
 * @since 0.1.0
 */
export const layerMemory = (options: Options = {}): Layer.Layer<DurableQueue, Schema.SchemaError> =>
  layer(options).pipe(
    Layer.provide(PersistedQueue.layer),
    Layer.provide(PersistedQueue.layerStoreMemory),
    Layer.provide(layerJobStoreMemory)
  )

/**
 * Runs the queue's workers for as long as the layer lives, through the `LlmProvider` in context (give it
 * the resilient one from `Resilience.layer`).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { DurableQueue } from "@llm-resilience/core"
 * const Workers = DurableQueue.layerWorkers({ concurrency: 8 }).pipe(Layer.provideMerge(DurableQueue.layerMemory()))
 * ```
 * @since 0.1.0
 */
export const layerWorkers = <R = never>(
  options: WorkerOptions<R> = {}
): Layer.Layer<never, never, DurableQueue | LlmProvider | R> =>
  Layer.effectDiscard(Effect.forkScoped(Effect.flatMap(DurableQueue, (q) => q.work(options))))

/**
 * A fallback plan's `acceptForLater` step writing to the {@link DurableQueue}: provide it where the plan
 * runs, and the plan's tickets are this queue's. Its `take` is not for use: the queue's workers drain it.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { DurableQueue } from "@llm-resilience/core"
 * const Later = DurableQueue.layerLaterQueue.pipe(Layer.provideMerge(DurableQueue.layerMemory()))
 * ```
 * @since 0.1.0
 */
export const layerLaterQueue: Layer.Layer<FallbackPlan.LaterQueue, never, DurableQueue> = Layer.effect(
  FallbackPlan.LaterQueue,
  Effect.map(DurableQueue, (q) => ({
    offer: (request) =>
      q.accept(request).pipe(
        Effect.catchTag("DurableQueueError", (e) =>
          // the store is down: the plan moves on as from a full queue, and the cause is logged
          Effect.andThen(
            Effect.logError("durable queue: accept failed", e),
            Effect.fail(new FallbackPlan.LaterQueueFull({ capacity: 0 }))
          )
        )
      ),
    take: Effect.die("a durable queue is drained by its workers (DurableQueue.layerWorkers)"),
    size: Effect.map(
      Effect.orElseSucceed(q.stats, () => ({ active: 0 })),
      (s) => s.active
    )
  }))
)

/**
 * A completion handler POSTing the finished job (the JSON of {@link Job}) to `url`, with the header
 * `idempotency-key: <ticket>` so the receiver can drop the repeat an at-least-once delivery can send;
 * retried 3 times with backoff. Needs an `HttpClient`.
 *
 * @example
 * ```ts
 * import { DurableQueue } from "@llm-resilience/core"
 * const Workers = DurableQueue.layerWorkers({
 *   onComplete: DurableQueue.httpCallback("https://app.example.com/hooks/llm", { headers: { authorization: "Bearer t" } })
 * })
 * ```
 * @since 0.1.0
 */
export const httpCallback: (
  url: string,
  options?: { readonly headers?: Readonly<Record<string, string>> | undefined }
) => (job: Job) => Effect.Effect<void, unknown, HttpClient.HttpClient> = callback.httpCallback

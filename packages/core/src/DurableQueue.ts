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
import { Context, type Duration, Effect, Layer, type Option, type Schema } from "effect"
import type { HttpClient } from "effect/http"
import { PersistedQueue } from "effect/persistence"
import * as FallbackPlan from "./FallbackPlan.ts"
import type { LlmProvider } from "./LlmProvider.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import * as callback from "./internal/jobCallback.ts"
import * as jobs from "./internal/jobs.ts"
import * as queue from "./internal/queue.ts"

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
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { DurableQueue } from "@llm-resilience/core"
 *
 * const depth = Effect.flatMap(DurableQueue.DurableQueue, (q) => q.stats).pipe(
 *   Effect.map((s) => s.active),
 *   Effect.catchTag("DurableQueueError", () => Effect.succeed(-1))
 * )
 * ```
 * @since 0.1.0
 */
export const DurableQueueError = jobs.DurableQueueError

/**
 * @since 0.1.0
 */
export type DurableQueueError = jobs.DurableQueueError

/**
 * Where job records are kept. Records are JSON strings; the store keeps the indexes the queue reads
 * (active jobs by acceptance time, dead ones by death time) and drops done records after their time to
 * live. {@link layerJobStoreMemory} is the in-memory one; `RedisQueue.layerJobStore` of
 * `@llm-resilience/redis` the Redis one.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { DurableQueue } from "@llm-resilience/core"
 *
 * // how many jobs are waiting, read straight from the store
 * const waiting = Effect.map(DurableQueue.JobStore, (store) => store.stats)
 * ```
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
 * Gauge: jobs queued or running, attribute `queue`. The gauges are sampled by the workers every
 * `metricsInterval`.
 *
 * @since 0.1.0
 */
export const queueDepth = queue.queueDepth

/**
 * Gauge: seconds since the oldest queued or running job was accepted, attribute `queue`.
 *
 * @since 0.1.0
 */
export const oldestJobAge = queue.oldestJobAge

/**
 * Gauge: jobs in the dead-letter queue, attribute `queue`.
 *
 * @since 0.1.0
 */
export const deadLetterSize = queue.deadLetterSize

/**
 * Counter: jobs answered, attribute `queue`.
 *
 * @since 0.1.0
 */
export const jobsDone = queue.jobsDone

/**
 * Counter: jobs moved to the dead-letter queue, attributes `queue` and `reason` (the error tag).
 *
 * @since 0.1.0
 */
export const jobsDead = queue.jobsDead

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
  Layer.effect(
    DurableQueue,
    Effect.flatMap(JobStore, (store) => queue.make(options, store))
  )

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

/**
 * The implementation of a durable queue: accept, the worker's handling of one job, sampling, dead letters.
 *
 * @internal
 */
import { Duration, Effect, Metric, Option, Schedule, Schema } from "effect"
import { PersistedQueue } from "effect/persistence"
import type { Options, WorkerOptions } from "../DurableQueue.ts"
import { LaterQueueFull } from "../FallbackPlan.ts"
import type { LlmError } from "../LlmError.ts"
import { LlmProvider } from "../LlmProvider.ts"
import { LlmRequest } from "../LlmRequest.ts"
import * as jobs from "./jobs.ts"
import { DurableQueueError, type Job } from "./jobs.ts"

export const queueDepth = Metric.gauge("durable_queue_depth", { description: "jobs queued or running" })
export const oldestJobAge = Metric.gauge("durable_queue_oldest_job_age_seconds", {
  description: "age of the oldest queued or running job"
})
export const deadLetterSize = Metric.gauge("durable_queue_dead_letters", {
  description: "jobs in the dead-letter queue"
})
export const jobsDone = Metric.counter("durable_queue_jobs_done", { description: "jobs answered", incremental: true })
export const jobsDead = Metric.counter("durable_queue_jobs_dead", {
  description: "jobs moved to the dead-letter queue, by reason",
  incremental: true
})

const decodeRequest = Schema.decodeUnknownEffect(LlmRequest)
const encodeRequest = Schema.encodeUnknownEffect(LlmRequest)
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

export const make = Effect.fnUntraced(function* (options: Options, store: jobs.JobStoreShape<DurableQueueError>) {
  const name = options.name ?? "llm-later"
  const maxAttempts = yield* Schema.decodeUnknownEffect(PositiveInt)(options.maxAttempts ?? 3)
  const capacity =
    options.capacity === undefined ? undefined : yield* Schema.decodeUnknownEffect(PositiveInt)(options.capacity)
  const backoff = {
    baseMs: Duration.toMillis(Duration.fromInputUnsafe(options.backoff ?? "1 second")),
    maxMs: Duration.toMillis(Duration.fromInputUnsafe(options.maxBackoff ?? "5 minutes"))
  }
  const resultTtlMs = Duration.toMillis(Duration.fromInputUnsafe(options.resultTtl ?? "7 days"))
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
        return yield* new LaterQueueFull({ capacity })
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
      const fresh: Job = { ...element, status: "queued", attempts: 0, replays: 0, failures: [] }
      const raw = yield* store.get(element.ticket)
      const stored = Option.isNone(raw) ? undefined : yield* Effect.result(jobs.decodeJob(raw.value))
      if (stored?._tag === "Failure") {
        // a record this version cannot read: dead, with the decode error, rebuilt from the queue element
        const at = yield* now
        const message = `the stored job does not decode: ${stored.failure.message}`
        const failure = { attempt: 0, at, tag: "DecodeError", message }
        return yield* finish(
          { ...fresh, status: "dead", failures: [failure], finishedAt: at, reason: "DecodeError" },
          onComplete
        )
      }
      let job: Job = stored?.success ?? fresh
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

  // a record that does not decode is left out of the list (and logged) rather than failing it
  const deadLetters = Effect.flatMap(store.dead, (records) =>
    Effect.map(
      Effect.forEach(records, (record) =>
        jobs
          .decodeJob(record)
          .pipe(
            Effect.catch((e) => Effect.as(Effect.logWarning("durable queue: a dead job does not decode", e), undefined))
          )
      ),
      (decoded) => decoded.filter((j): j is Job => j !== undefined)
    )
  )
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

  return { name, accept, status: load, deadLetters, replay, purge, stats: store.stats, work }
})

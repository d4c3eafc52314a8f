/**
 * The job records of a durable queue: their schema, the in-memory store, and the classification of a
 * failed attempt (fatal, or retry after a delay).
 *
 * @internal
 */
import { Effect, Option, Random, Schema } from "effect"
import * as LlmErrors from "../LlmError.ts"
import type { LlmError } from "../LlmError.ts"
import { LlmResponse } from "../LlmResponse.ts"

/** A store or queue operation failed (the backing store is unreachable, a record cannot be written). */
export class DurableQueueError extends Schema.TaggedError<DurableQueueError>()("DurableQueueError", {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {}

/** The lifecycle of a job. */
export const Status = Schema.Literals(["queued", "running", "done", "dead"])
export type Status = typeof Status.Type

/** One failed attempt: its number, when it ended, and the typed error (absent for a decode failure). */
export const AttemptFailure = Schema.Struct({
  attempt: Schema.Int,
  at: Schema.Finite,
  tag: Schema.String,
  message: Schema.String,
  error: Schema.optional(LlmErrors.LlmError)
})
export type AttemptFailure = typeof AttemptFailure.Type

/** A job as the stores keep it (JSON). `request` is the encoded request, decoded by the worker. */
export const Job = Schema.Struct({
  ticket: Schema.String,
  request: Schema.Unknown,
  acceptedAt: Schema.Finite,
  status: Status,
  attempts: Schema.Int,
  replays: Schema.Int,
  failures: Schema.Array(AttemptFailure),
  nextAttemptAt: Schema.optional(Schema.Finite),
  response: Schema.optional(LlmResponse),
  finishedAt: Schema.optional(Schema.Finite),
  reason: Schema.optional(Schema.String)
})
export type Job = typeof Job.Type

const JobJson = Schema.fromJsonString(Schema.toCodecJson(Job))
export const encodeJob = Schema.encodeEffect(JobJson)
export const decodeJob = Schema.decodeUnknownEffect(JobJson)

/** The queue element: enough to rebuild the job if its record is missing. */
export const Element = Schema.Struct({
  ticket: Schema.String,
  request: Schema.Unknown,
  acceptedAt: Schema.Finite
})
export type Element = typeof Element.Type

/** Where a record sits in the store's indexes. */
export interface Index {
  readonly status: Status
  readonly acceptedAt: number
  readonly finishedAt: number | undefined
  /** Done records are removed this long after `finishedAt`. */
  readonly ttlMs: number | undefined
}

export const indexOf = (job: Job, resultTtlMs: number): Index => ({
  status: job.status,
  acceptedAt: job.acceptedAt,
  finishedAt: job.finishedAt,
  ttlMs: job.status === "done" ? resultTtlMs : undefined
})

/** Errors after which another attempt cannot help. */
const fatalTags: ReadonlySet<string> = new Set([
  "BadRequest",
  "Authentication",
  "PermissionDenied",
  "ModelNotFound",
  "ContentFiltered",
  "QuotaExhausted",
  "ContextLengthExceeded",
  "BudgetExceeded",
  "TurnLimitExceeded",
  "LoopDetected"
])

/** Whether `error` (or the provider error behind it) is fatal for a job. */
export const isFatal = (error: LlmError): boolean => {
  if (fatalTags.has(error._tag)) return true
  const root = LlmErrors.rootCause(error)
  return root !== undefined && fatalTags.has(root._tag)
}

/** The reason a job died of `error`: the provider error behind it when there is one. */
export const reasonOf = (error: LlmError): string => LlmErrors.rootCause(error)?._tag ?? error._tag

/**
 * The wait before the next attempt: full-jitter exponential backoff (`baseMs · 2^(attempt-1)`, at most
 * `maxMs`), and never less than what the provider asked for (Retry-After, an open circuit's wait).
 */
export const retryDelayMs = (
  error: LlmError,
  attempt: number,
  backoff: { readonly baseMs: number; readonly maxMs: number }
): Effect.Effect<number> =>
  Effect.map(Random.next, (u) => {
    const cap = Math.min(backoff.maxMs, backoff.baseMs * 2 ** (attempt - 1))
    const asked = LlmErrors.retryAfterMs(error) ?? retryAfterOfRoot(error) ?? 0
    return Math.max(Math.round(u * cap), asked)
  })

const retryAfterOfRoot = (error: LlmError): number | undefined => {
  const root = LlmErrors.rootCause(error)
  return root === undefined ? undefined : LlmErrors.retryAfterMs(root)
}

/**
 * A stable ticket for a request without an idempotency key: a 64-bit FNV-1a hash of its encoded form, so
 * offering the same request twice yields the same ticket.
 */
export const derivedTicket = (encoded: unknown): string => {
  const text = JSON.stringify(encoded)
  let h1 = 0x811c9dc5
  let h2 = 0x01000193
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0
    h2 ^= h2 >>> 15
  }
  return `req-${h1.toString(16).padStart(8, "0")}${h2.toString(16).padStart(8, "0")}`
}

/** A store of job records: see `DurableQueue.JobStore`. */
export interface JobStoreShape<E> {
  /** Stores `record` unless `ticket` exists; returns the existing record if it does. */
  readonly insert: (ticket: string, record: string, index: Index) => Effect.Effect<Option.Option<string>, E>
  readonly get: (ticket: string) => Effect.Effect<Option.Option<string>, E>
  readonly put: (ticket: string, record: string, index: Index) => Effect.Effect<void, E>
  readonly remove: (ticket: string) => Effect.Effect<boolean, E>
  /** Dead records, oldest death first. */
  readonly dead: Effect.Effect<ReadonlyArray<string>, E>
  /** Queued or running jobs, the acceptance time of the oldest, and the number of dead ones. */
  readonly stats: Effect.Effect<
    { readonly active: number; readonly oldestAcceptedAt: number | undefined; readonly dead: number },
    E
  >
}

interface Entry {
  readonly record: string
  readonly index: Index
}

/** The in-memory job store: a map, with done records dropped once their time to live has passed. */
export const makeMemoryStore: Effect.Effect<JobStoreShape<never>> = Effect.sync(() => {
  const entries = new Map<string, Entry>()
  const now = Effect.clockWith((clock) => clock.currentTimeMillis)
  const live = (ticket: string, at: number): Entry | undefined => {
    const e = entries.get(ticket)
    if (e === undefined) return undefined
    const { finishedAt, ttlMs } = e.index
    if (ttlMs !== undefined && finishedAt !== undefined && at >= finishedAt + ttlMs) {
      entries.delete(ticket)
      return undefined
    }
    return e
  }
  return {
    insert: (ticket, record, index) =>
      Effect.map(now, (at) => {
        const existing = live(ticket, at)
        if (existing !== undefined) return Option.some(existing.record)
        entries.set(ticket, { record, index })
        return Option.none()
      }),
    get: (ticket) => Effect.map(now, (at) => Option.fromNullishOr(live(ticket, at)?.record)),
    put: (ticket, record, index) => Effect.sync(() => void entries.set(ticket, { record, index })),
    remove: (ticket) => Effect.sync(() => entries.delete(ticket)),
    dead: Effect.sync(() =>
      [...entries.values()]
        .filter((e) => e.index.status === "dead")
        .sort((a, b) => (a.index.finishedAt ?? 0) - (b.index.finishedAt ?? 0))
        .map((e) => e.record)
    ),
    stats: Effect.sync(() => {
      let active = 0
      let dead = 0
      let oldest: number | undefined
      for (const e of entries.values()) {
        if (e.index.status === "dead") dead++
        else if (e.index.status !== "done") {
          active++
          if (oldest === undefined || e.index.acceptedAt < oldest) oldest = e.index.acceptedAt
        }
      }
      return { active, oldestAcceptedAt: oldest, dead }
    })
  }
})

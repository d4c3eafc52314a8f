/**
 * A concurrency cap: at most `maxConcurrency` calls run at once, up to `maxQueue` more wait (interactive
 * before background, FIFO within a priority), and the rest are rejected at once with
 * `AdmissionRejected { reason: "concurrency-queue-full" }`.
 *
 * Interruption releases everything: a waiter that is interrupted leaves the queue, a running call that is
 * interrupted gives its permit back, and a permit handed to a waiter at the moment it is interrupted is
 * passed on to the next one.
 *
 * Why not `Semaphore`: Effect's `Semaphore` wakes waiters by scanning them, so its cost per call grows with
 * the number of waiters (measured in `bench/admission.ts`, see `docs/admission.md`). This bulkhead keeps its
 * waiters in a ring buffer and hands a released permit to exactly one of them, so acquire and release are
 * O(1) however long the queue is. A free permit with nobody waiting is taken synchronously: no fiber, no
 * `Deferred`.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import * as Attempts from "./internal/attempt.ts"
import { acquire, Permits } from "./internal/permits.ts"
import type { AdmissionRejected } from "./LlmError.ts"
import type { LlmRequest, Priority } from "./LlmRequest.ts"
import type { Stage } from "./Stage.ts"

/**
 * Bulkhead options.
 *
 * @since 0.1.0
 */
export const BulkheadOptions = Schema.Struct({
  /** Name used in rejections and metrics, e.g. `openai/gpt-5.4`. Default `bulkhead`. */
  key: Schema.optional(Schema.String),
  /** Calls allowed to run at once. */
  maxConcurrency: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)),
  /** Calls allowed to wait for a permit. Default 1000; 0 rejects as soon as all permits are taken. */
  maxQueue: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  /** A background waiter older than this ranks with interactive ones by arrival. Default 30000. */
  agingMs: Schema.optional(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)))
})

/**
 * @since 0.1.0
 */
export type BulkheadOptions = typeof BulkheadOptions.Type

/**
 * A concurrency cap with its own wait queue.
 *
 * @since 0.1.0
 */
export interface Bulkhead {
  readonly key: string
  readonly capacity: number
  /** Permits free right now. */
  readonly available: number
  /** Calls waiting for a permit. */
  readonly queued: number
  /**
   * The bulkhead as a stage ({@link Stage.Stage}): takes a permit (waiting in the priority queue of the
   * request's `metadata.priority` when none is free) and gives it back when the attempt ends.
   * `withPermit` is this stage run alone.
   */
  readonly stage: Stage<unknown>
  /** @internal */
  readonly permits: Permits
}

class BulkheadImpl implements Bulkhead {
  readonly permits: Permits
  readonly stage: Stage<true>
  constructor(permits: Permits) {
    this.permits = permits
    this.stage = {
      name: "bulkhead",
      enter: (attempt) => {
        if (permits.available > 0 && permits.queue.size === 0) {
          permits.available--
          return true
        }
        const lane = attempt.request.metadata?.priority === "background" ? 1 : 0
        return Effect.as(acquire(permits, lane, attempt.startMs, Effect.interruptible), true as const)
      },
      exit: (_, __, attempt) => permits.release(attempt.endMs)
    }
  }
  get key() {
    return this.permits.key
  }
  get capacity() {
    return this.permits.capacity
  }
  get available() {
    return this.permits.available
  }
  get queued() {
    return this.permits.queue.size
  }
}

const unsafeMake = (options: BulkheadOptions): Bulkhead =>
  new BulkheadImpl(
    new Permits(options.key ?? "bulkhead", options.maxConcurrency, options.maxQueue ?? 1000, options.agingMs ?? 30_000)
  )

/**
 * Creates a bulkhead, failing with a `SchemaError` naming the field when the options are invalid.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulkhead } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ key: "openai/gpt-5.4", maxConcurrency: 8, maxQueue: 100 })
 *   return yield* Effect.succeed("called").pipe(Bulkhead.withPermit(bulkhead))
 * })
 * ```
 * @since 0.1.0
 */
export const make = (options: BulkheadOptions): Effect.Effect<Bulkhead, Schema.SchemaError> =>
  Effect.map(Schema.decodeUnknownEffect(BulkheadOptions)(options), unsafeMake)

/**
 * Runs `self` holding one permit of `bulkhead`; waits (interactive first) when none is free, fails with
 * `AdmissionRejected { reason: "concurrency-queue-full" }` when the queue is full.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Bulkhead } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const bulkhead = yield* Bulkhead.make({ maxConcurrency: 2 })
 *   const call = Effect.sleep("1 second").pipe(Bulkhead.withPermit(bulkhead, { priority: "background" }))
 *   yield* Effect.all([call, call, call], { concurrency: "unbounded" }) // the third waits for a permit
 * })
 * ```
 * @since 0.1.0
 */
export const withPermit = (bulkhead: Bulkhead, options?: { readonly priority?: Priority | undefined }) => {
  const stages = [bulkhead.stage]
  const request: LlmRequest = { model: bulkhead.key, messages: [], metadata: { priority: options?.priority } }
  return <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | AdmissionRejected, R> =>
    Attempts.run(stages, request, bulkhead.key, self)
}

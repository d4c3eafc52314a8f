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
import { Clock, Effect, Schema } from "effect"
import type { AdmissionRejected } from "./LlmError.ts"
import type { Priority } from "./LlmRequest.ts"
import { acquire, Permits } from "./internal/permits.ts"

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
  /** @internal */
  readonly permits: Permits
}

class BulkheadImpl implements Bulkhead {
  readonly permits: Permits
  constructor(permits: Permits) {
    this.permits = permits
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

/** @internal */
export const unsafeMake = (options: BulkheadOptions): Bulkhead =>
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
export const withPermit =
  (bulkhead: Bulkhead, options?: { readonly priority?: Priority | undefined }) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | AdmissionRejected, R> =>
    Clock.clockWith((clock) =>
      Effect.uninterruptibleMask((restore) => {
        const p = bulkhead.permits
        const now = clock.currentTimeMillisUnsafe()
        return Effect.flatMap(acquire(p, options?.priority === "background" ? 1 : 0, now, restore), () =>
          Effect.ensuring(
            restore(self),
            Effect.sync(() => p.release(clock.currentTimeMillisUnsafe()))
          )
        )
      })
    )

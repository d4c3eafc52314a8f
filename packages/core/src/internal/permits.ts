/**
 * The bulkhead's permit counter and its wait queue, plus the interrupt-safe acquire used by both
 * `Bulkhead.withPermit` and admission.
 *
 * A permit released while someone waits is handed straight to the next waiter (the counter does not go
 * up), so a late arrival can never overtake the queue. All operations are O(1).
 *
 * @internal
 */
import { Effect } from "effect"
import { AdmissionRejected } from "../LlmError.ts"
import { WAITING, type Waiter, WaitQueue } from "./WaitQueue.ts"

const GRANTED = 1
const CANCELLED = 2
const RELEASED = 3

interface PermitWaiter extends Waiter {
  resume: ((effect: Effect.Effect<void>) => void) | undefined
}

/** @internal */
export class Permits {
  readonly key: string
  readonly capacity: number
  readonly maxQueue: number
  available: number
  readonly queue: WaitQueue<PermitWaiter>

  constructor(key: string, capacity: number, maxQueue: number, agingMs: number) {
    this.key = key
    this.capacity = capacity
    this.maxQueue = maxQueue
    this.available = capacity
    this.queue = new WaitQueue(agingMs)
  }

  release(now: number): void {
    const w = this.queue.head(now)
    if (w === undefined) {
      this.available++
      return
    }
    w.state = GRANTED
    this.queue.removed()
    // resume through the scheduler: a synchronous hand-over would run the next holder inside this stack,
    // and a chain of them would nest one frame per waiter (a stack overflow at a few thousand)
    w.resume!(Effect.yieldNow)
  }
}

const rejected = (p: Permits) => Effect.fail(new AdmissionRejected({ key: p.key, reason: "concurrency-queue-full" }))

/**
 * Takes a permit: synchronously when one is free and nobody waits, otherwise waits (interruptibly, through
 * `restore`). Must run inside `uninterruptibleMask`; on success the caller holds a permit and must call
 * `release`. Interruption while waiting leaves the queue; interruption right after a hand-over gives the
 * permit back.
 *
 * @internal
 */
export const acquire = (
  p: Permits,
  lane: 0 | 1,
  now: number,
  restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
): Effect.Effect<void, AdmissionRejected> => {
  if (p.available > 0 && p.queue.size === 0) {
    p.available--
    return Effect.void
  }
  if (p.queue.size >= p.maxQueue) return rejected(p)
  const w: PermitWaiter = { state: WAITING, lane, enqueuedAt: now, resume: undefined }
  return restore(
    Effect.callback<void>((resume) => {
      w.resume = resume
      p.queue.push(w)
      return Effect.sync(() => {
        if (w.state === WAITING) {
          w.state = CANCELLED
          p.queue.removed()
        }
      })
    })
  ).pipe(
    Effect.onInterrupt(() =>
      Effect.sync(() => {
        if (w.state === GRANTED) {
          w.state = RELEASED
          p.release(now)
        }
      })
    )
  )
}

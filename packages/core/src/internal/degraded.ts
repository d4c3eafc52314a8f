/**
 * The degraded steps of a fallback plan (a static answer, a cached answer, "accepted for later") and the
 * services they read: `ResponseCache` and `LaterQueue`, re-exported by `FallbackPlan`.
 *
 * @internal
 */
import { Context, Effect, Layer, Option, Queue, Schema } from "effect"
import { AcceptedForLater } from "../LlmError.ts"
import type { LlmError } from "../LlmError.ts"
import type { LlmRequest } from "../LlmRequest.ts"
import type { LlmResponse, StreamChunk } from "../LlmResponse.ts"

/**
 * A user-supplied cache of answers, read by the {@link cached} step.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Option } from "effect"
 * import { FallbackPlan } from "@llm-resilience/core"
 *
 * const FaqCache = Layer.succeed(FallbackPlan.ResponseCache, {
 *   lookup: (request) => Effect.succeed(Option.none())
 * })
 * ```
 * @since 0.1.0
 */
export class ResponseCache extends Context.Service<
  ResponseCache,
  { readonly lookup: (request: LlmRequest) => Effect.Effect<Option.Option<LlmResponse>> }
>()("@llm-resilience/core/FallbackPlan/ResponseCache") {}

/**
 * A request the {@link acceptForLater} step put on the queue.
 *
 * @example
 * ```ts
 * import type { FallbackPlan } from "@llm-resilience/core"
 * const describe = (a: FallbackPlan.Accepted) => `${a.ticketId} accepted at ${a.acceptedAt}`
 * ```
 * @since 0.1.0
 */
export interface Accepted {
  readonly ticketId: string
  /** Epoch ms (from `Clock`). */
  readonly acceptedAt: number
  readonly request: LlmRequest
}

/**
 * The queue is at capacity: the request was not accepted.
 *
 * @since 0.1.0
 */
export class LaterQueueFull extends Schema.TaggedError<LaterQueueFull>()("LaterQueueFull", {
  capacity: Schema.Finite
}) {}

/**
 * Where "accepted for later" requests go. {@link layerLaterQueueMemory} is in-memory (lost on restart); a
 * durable implementation can be swapped in behind the same service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { FallbackPlan } from "@llm-resilience/core"
 *
 * const worker = Effect.gen(function*() {
 *   const queue = yield* FallbackPlan.LaterQueue
 *   const next = yield* queue.take
 *   return next.ticketId
 * })
 * ```
 * @since 0.1.0
 */
export class LaterQueue extends Context.Service<
  LaterQueue,
  {
    readonly offer: (request: LlmRequest) => Effect.Effect<Accepted, LaterQueueFull>
    readonly take: Effect.Effect<Accepted>
    readonly size: Effect.Effect<number>
  }
>()("@llm-resilience/core/FallbackPlan/LaterQueue") {}

/**
 * An in-memory {@link LaterQueue} holding at most `capacity` requests (default 1 000). Ticket ids are the
 * request's `metadata.idempotencyKey` when it has one, else `later-<n>`.
 *
 * @example
 * ```ts
 * import { FallbackPlan } from "@llm-resilience/core"
 * const Later = FallbackPlan.layerLaterQueueMemory({ capacity: 100 })
 * ```
 * @since 0.1.0
 */
export const layerLaterQueueMemory = (
  options: { readonly capacity?: number | undefined } = {}
): Layer.Layer<LaterQueue, Schema.SchemaError> =>
  Layer.effect(
    LaterQueue,
    Effect.gen(function* () {
      const capacity = yield* Schema.decodeUnknownEffect(
        Schema.Struct({ capacity: Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)) })
      )({ capacity: options.capacity ?? 1_000 }).pipe(Effect.map((o) => o.capacity))
      const queue = yield* Queue.dropping<Accepted>(capacity)
      let seq = 0
      return {
        offer: (request) =>
          Effect.gen(function* () {
            const acceptedAt = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
            const accepted: Accepted = {
              ticketId: request.metadata?.idempotencyKey ?? `later-${++seq}`,
              acceptedAt,
              request
            }
            const ok = yield* Queue.offer(queue, accepted)
            if (!ok) return yield* new LaterQueueFull({ capacity })
            return accepted
          }),
        take: Queue.take(queue),
        size: Queue.size(queue)
      }
    })
  )

/** Why the plan moves on from a step: the step's label, the reason (an error tag, `CacheMiss` ...) and the error. */
export interface Failure {
  readonly from: string
  readonly reason: string
  readonly error: LlmError
}

/** What a degraded step did: answered, or failed in its own way (the failure to move on with). */
export type Degraded =
  { readonly _tag: "Answer"; readonly response: LlmResponse } | { readonly _tag: "Next"; readonly failure: Failure }

/** A degraded step, as the walk runs it. */
export type DegradedStep =
  | { readonly _tag: "Static"; readonly label: string; readonly text: (request: LlmRequest) => string }
  | { readonly _tag: "Cached"; readonly label: string }
  | { readonly _tag: "Later"; readonly label: string }

const staticResponse = (text: string, model: string): LlmResponse => ({
  text,
  finishReason: "stop",
  usage: { inputTokens: 0, outputTokens: 0 },
  provider: "fallback:static",
  model
})

/** A whole answer as the chunks of a stream. */
export const responseChunks = (response: LlmResponse): Array<StreamChunk> => [
  { _tag: "TextDelta", text: response.text },
  {
    _tag: "Finish",
    finishReason: response.finishReason,
    usage: response.usage,
    provider: response.provider,
    model: response.model
  }
]

/** Runs a degraded step: an answer, or the failure to move on with (a cache miss, a full queue). */
export const run = (
  s: DegradedStep,
  failure: Failure,
  request: LlmRequest
): Effect.Effect<Degraded, AcceptedForLater, ResponseCache | LaterQueue> => {
  switch (s._tag) {
    case "Static":
      return Effect.succeed({ _tag: "Answer", response: staticResponse(s.text(request), request.model) })
    case "Cached":
      return Effect.flatMap(ResponseCache, (cache) =>
        Effect.map(cache.lookup(request), (hit): Degraded =>
          Option.isSome(hit)
            ? { _tag: "Answer", response: { ...hit.value, provider: "fallback:cache" } }
            : { _tag: "Next", failure: { from: s.label, reason: "CacheMiss", error: failure.error } }
        )
      )
    case "Later":
      return Effect.flatMap(LaterQueue, (queue) =>
        Effect.matchEffect(queue.offer(request), {
          onSuccess: (accepted) =>
            Effect.fail(
              new AcceptedForLater({
                ticketId: accepted.ticketId,
                acceptedAt: accepted.acceptedAt,
                from: failure.from,
                reason: failure.reason,
                lastError: failure.error._tag === "AcceptedForLater" ? failure.error.lastError : failure.error
              })
            ),
          onFailure: () =>
            Effect.succeed<Degraded>({
              _tag: "Next",
              failure: { from: s.label, reason: "QueueFull", error: failure.error }
            })
        })
      )
  }
}

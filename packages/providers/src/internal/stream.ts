/**
 * From stream events to chunks, for the HTTP providers (SSE events) and the SDK-backed ones (events the
 * SDK has parsed): when a stream is complete, and which events are skipped.
 *
 * - Complete: the wire's end marker (`data: [DONE]`, `message_stop`) arrived, or the body ended cleanly
 *   after an event that said why the model stopped (`finish_reason`, `message_delta.stop_reason`). Its
 *   `Finish` then carries the usage seen so far. Anything else is truncated.
 * - Malformed events (not a JSON object) are skipped and counted, up to {@link malformedAllowance} plus
 *   one per {@link goodPerMalformed} good events; the next one fails the stream as mostly garbage.
 *
 * @internal
 */
import { LlmError, type LlmResponse } from "@llm-resilience/core"
import { Cause, Effect, Metric, Pull, Stream } from "effect"
import { isArrayNonEmpty, type NonEmptyReadonlyArray } from "effect/Array"
import type * as Sse from "effect/encoding/Sse"
import { malformedEvents } from "../ProviderTelemetry.ts"
import type { Codec, FinishMeta, Problem, StreamState } from "./codec.ts"
import { excerpt, isObject, parseJson } from "./codec.ts"

/** Malformed events a stream may always skip. */
export const malformedAllowance = 2

/** One more malformed event may be skipped per this many good events. */
export const goodPerMalformed = 10

/** The decoding state of one stream. */
export interface StreamDecoder {
  /** Decodes one SSE event. */
  readonly feed: (event: Sse.Event, out: Array<LlmResponse.StreamChunk>) => Problem | undefined
  /** Decodes one event an SDK has already parsed. */
  readonly feedParsed: (value: unknown, out: Array<LlmResponse.StreamChunk>) => Problem | undefined
  /** The body ended cleanly: pushes `Finish` if the stream is complete and not yet finished; whether it is. */
  readonly end: (out: Array<LlmResponse.StreamChunk>) => boolean
  /** Text and tool-call deltas pushed so far. */
  readonly received: () => number
  /** Malformed events skipped so far. */
  readonly skipped: () => number
}

/** A decoder of one stream in `codec`'s wire format. */
export const makeDecoder = (codec: Codec, meta: FinishMeta): StreamDecoder => {
  const state: StreamState = {
    finishReason: undefined,
    refused: false,
    usage: { inputTokens: 0, outputTokens: 0 },
    model: meta.model,
    calls: []
  }
  let finished = false
  let good = 0
  let malformed = 0
  let received = 0

  const finish = (out: Array<LlmResponse.StreamChunk>) => {
    finished = true
    out.push({
      _tag: "Finish",
      finishReason: state.refused ? "content_filter" : (state.finishReason ?? "unknown"),
      usage: state.usage,
      provider: meta.provider,
      model: state.model,
      ...(meta.requestId === undefined ? {} : { requestId: meta.requestId }),
      ...(meta.rateLimit === undefined ? {} : { rateLimit: meta.rateLimit })
    })
  }

  const skip = (detail: string): Problem | undefined => {
    if (malformed + 1 > malformedAllowance + Math.floor(good / goodPerMalformed)) {
      return {
        _tag: "Malformed",
        detail: `stream is mostly malformed (${malformed + 1} malformed events, ${good} good): ${detail}`
      }
    }
    malformed++
    return undefined
  }

  const decode = (name: string, value: unknown, out: Array<LlmResponse.StreamChunk>): Problem | undefined => {
    if (!isObject(value)) return skip("an event is not a JSON object")
    good++
    const before = out.length
    const result = codec.decodeEvent(name, value, state, out)
    for (let i = before; i < out.length; i++) if (out[i]._tag !== "Finish") received++
    if (result === "end") {
      finish(out)
      return undefined
    }
    return result
  }

  return {
    feed: (event, out) => {
      if (finished) return undefined
      if (event.event === "error") return { _tag: "ErrorReport", body: event.data }
      if (event.data === codec.endData) {
        good++
        finish(out)
        return undefined
      }
      const parsed = parseJson(event.data)
      return parsed.ok ? decode(event.event, parsed.value, out) : skip(`not JSON: ${excerpt(event.data)}`)
    },
    feedParsed: (value, out) => (finished ? undefined : decode("message", value, out)),
    end: (out) => {
      if (!finished && state.finishReason !== undefined) finish(out)
      return finished
    },
    received: () => received,
    skipped: () => malformed
  }
}

/**
 * After `Finish`: the events are read once more, on a fiber of their own that is not waited for beyond one
 * turn of the scheduler, and the stream is done. A body whose end has already arrived is read to its end
 * (Node ends a stream on the tick after the read that finds it drained) before the stream's finalizer closes
 * it, so the HTTP client finishes the response rather than aborting it: undici makes an error for an aborted
 * body, whose stack trace Node then formats (with the client's own abort, 6.5 % of the gateway's CPU in
 * streams before, 4.0 % after; this costs a fiber). A body held open is let go after that turn.
 */
const readPastEnd = <A, E>(pull: Pull.Pull<A, E>): Effect.Effect<never, Cause.Done> =>
  Effect.withFiber((fiber) => {
    const reader = Effect.runForkWith(fiber.context)(Effect.exit(pull))
    if (reader.pollUnsafe() !== undefined) return Cause.done()
    return Effect.ensuring(
      Effect.andThen(Effect.yieldNow, Cause.done()),
      Effect.sync(() => reader.interruptUnsafe(fiber.id))
    )
  })

/**
 * The chunks of a stream of events (SSE byte reads, or events an SDK parsed): each event through `feed`, a
 * problem through `failure`, an error of `events` through `lost`, skipped events counted in the
 * `llm_stream_malformed_events` metric, and a clean end that is not complete as `StreamTruncated`. The
 * chunks decoded from one pull of `events` go on as one array; after `Finish`, `events` are read once more
 * but not waited for (see `readPastEnd`).
 *
 * One pull stage instead of a chain of `mapEffect` / `flattenIterable` / `takeUntil` / `concat`: those
 * re-chunk every element and build a stream per batch, which cost a stream of 15 events about a third of
 * its CPU through the toolkit (bench/provider.ts).
 */
export const decodeEvents = <A, E>(
  events: Stream.Stream<A, E>,
  decoder: StreamDecoder,
  options: {
    readonly feed: (event: A, out: Array<LlmResponse.StreamChunk>) => Problem | undefined
    readonly failure: (problem: Problem) => LlmError.ProviderError
    readonly lost: (error: E) => LlmError.ProviderError
    readonly truncated: (message: string) => LlmError.ProviderError
    readonly provider: string
    readonly model: string
  }
): Stream.Stream<LlmResponse.StreamChunk, LlmError.ProviderError> => {
  const counter = Metric.withAttributes(malformedEvents, { provider: options.provider, model: options.model })
  type Chunks = Pull.Pull<NonEmptyReadonlyArray<LlmResponse.StreamChunk>, LlmError.ProviderError>
  return Stream.transformPull(events, (pull) =>
    Effect.sync(() => {
      // "open" until `Finish`; "finished" until the read that follows it; "done" once the events ended
      let state: "open" | "finished" | "done" = "open"
      const decodeBatch = (batch: ReadonlyArray<A>): Chunks => {
        const out: Array<LlmResponse.StreamChunk> = []
        const skipped = decoder.skipped()
        for (const event of batch) {
          const problem = options.feed(event, out)
          if (problem !== undefined) return Effect.fail(options.failure(problem))
        }
        if (out.length > 0 && out[out.length - 1]._tag === "Finish") state = "finished"
        const result: Chunks = isArrayNonEmpty(out) ? Effect.succeed(out) : next
        const newly = decoder.skipped() - skipped
        return newly === 0 ? result : Effect.andThen(Metric.update(counter, newly), result)
      }
      const end = (): Chunks => {
        state = "done"
        const out: Array<LlmResponse.StreamChunk> = []
        if (!decoder.end(out)) {
          return Effect.fail(
            options.truncated(`stream ended before the model finished, after ${decoder.received()} chunks`)
          )
        }
        return isArrayNonEmpty(out) ? Effect.succeed(out) : Cause.done()
      }
      const next: Chunks = Effect.suspend(() => {
        if (state === "done") return Cause.done()
        if (state === "finished") {
          state = "done"
          return readPastEnd(pull)
        }
        return Pull.matchEffect(pull, {
          onSuccess: decodeBatch,
          onFailure: (cause) => Effect.failCause(Cause.map(cause, options.lost)),
          onDone: end
        })
      })
      return next
    })
  )
}

/**
 * What a stream does when it fails after its first chunk: its path's mid-stream mode.
 *
 * - `fail`: the failure reaches the caller (the text already delivered cannot be taken back).
 * - `continue`: the next attempt (a retry of the step, or the plan's next step) carries on with the answer.
 *   On a model declared to accept assistant prefill, the text delivered so far is sent as the end of the
 *   assistant's turn and the new chunks are appended; otherwise the request is sent again and the new
 *   answer is compared with what was delivered: the matching prefix is skipped, a divergence ends the stream
 *   with `StreamDiverged` (carrying the delivered text). An answer that has delivered tool-call pieces is
 *   never prefilled (a prefill carries text only): it is asked again, and the new answer must repeat the
 *   delivered text and calls (same index, name and arguments) before anything new passes. A prefilled
 *   attempt that the provider rejects with a `BadRequest` before its first chunk is restarted without
 *   prefill, so that the rejection never hides the failure being recovered from.
 * - `buffer`: chunks are held until `Finish`, so that retries and fallbacks act as they do for `complete`.
 *
 * Each layer that carries on (the retry of one step, the walk of the plan) keeps its own {@link Transcript}
 * of what it delivered. The layers compose: a step opened with prefill appends its own text to the
 * request's trailing assistant message; a restarted step compares with its own output, and the plan with
 * its own.
 *
 * @internal
 */
import { Effect, Stream } from "effect"
import { StreamDiverged } from "../LlmError.ts"
import type { LlmError, ProviderError } from "../LlmError.ts"
import type { LlmRequest } from "../LlmRequest.ts"
import type { StreamChunk } from "../LlmResponse.ts"

/** A path's mid-stream mode. */
export type Mode = "fail" | "continue" | "buffer"

/** A tool call one layer has delivered (in part): where it started in the text, and its arguments so far. */
export interface DeliveredCall {
  readonly index: number
  readonly name: string | undefined
  /** The length of the transcript's text when the call started. */
  readonly at: number
  arguments: string
}

/** What one layer has delivered so far (its text and tool calls), and the failure it is carrying on from. */
export class Transcript {
  text = ""
  /** The tool calls delivered, in the order they started. */
  readonly calls: Array<DeliveredCall> = []
  /** Whether any chunk has been delivered. */
  delivered = false
  /** The failure the current continuation recovers from (carried by a `StreamDiverged`). */
  cause: unknown = undefined

  add(chunk: StreamChunk): void {
    if (chunk._tag === "TextDelta") this.text += chunk.text
    else if (chunk._tag === "ToolCallDelta") {
      const call = this.calls.findLast((c) => c.index === chunk.index)
      if (call !== undefined) call.arguments += chunk.arguments
      else this.calls.push({ index: chunk.index, name: chunk.name, at: this.text.length, arguments: chunk.arguments })
    }
  }
}

/** `self`, adding its chunks to `transcript`. */
export const record = <E, R>(self: Stream.Stream<StreamChunk, E, R>, transcript: Transcript) =>
  Stream.mapArray(self, (chunks) => {
    transcript.delivered = true
    for (const chunk of chunks) transcript.add(chunk)
    return chunks
  })

/** `request` with `delivered` as the end of the assistant's turn (appended to a trailing assistant message). */
export const prefilled = (request: LlmRequest, delivered: string): LlmRequest => {
  const messages = request.messages
  const last = messages[messages.length - 1]
  return {
    ...request,
    messages:
      last?.role === "assistant"
        ? [...messages.slice(0, -1), { role: "assistant", content: last.content + delivered }]
        : [...messages, { role: "assistant", content: delivered }]
  }
}

const providerErrorOf = (cause: unknown): ProviderError | undefined =>
  typeof cause === "object" && cause !== null && "message" in cause && "_tag" in cause
    ? (cause as ProviderError)
    : undefined

/**
 * `self` without what `delivered` holds: its text and tool calls are compared with the delivered ones, in
 * order, and the matching part dropped (a tool call matches on its index, name and arguments; its new id is
 * dropped with its first piece, the client keeps the delivered one). On a mismatch (or a `Finish` before
 * everything delivered came back) it fails with `diverged()`, or, without `diverged`, stops comparing and
 * passes the rest on.
 */
const dropDelivered = <E, R>(
  self: Stream.Stream<StreamChunk, E, R>,
  delivered: Pick<Transcript, "text" | "calls">,
  diverged: ((provider: string | undefined) => StreamDiverged) | undefined
): Stream.Stream<StreamChunk, E | StreamDiverged, R> =>
  Stream.suspend(() => {
    // a snapshot: the layer's transcript goes on growing with what this stream passes on
    const text = delivered.text
    const calls = delivered.calls.map((c) => ({ ...c }))
    let at = 0 // characters of text matched
    let t = 0 // the delivered call matched next, or being matched when `inCall`
    let inCall = false
    let argsAt = 0 // characters of the current call's arguments matched
    let comparing = true
    const done = () =>
      !comparing ||
      (at >= text.length &&
        (t >= calls.length || (t === calls.length - 1 && inCall && argsAt >= calls[t].arguments.length)))
    // the current call is complete: the answer goes on after it
    const leaveCall = (): boolean => {
      if (!inCall) return true
      if (argsAt < calls[t].arguments.length) return false
      t++
      inCall = false
      return true
    }
    const mismatch = (rest: StreamChunk | undefined): Stream.Stream<StreamChunk, StreamDiverged> => {
      if (diverged !== undefined) return Stream.fail(diverged(undefined))
      comparing = false
      return rest === undefined ? Stream.empty : Stream.succeed(rest)
    }
    return Stream.flatMap(
      self,
      (chunk): Stream.Stream<StreamChunk, StreamDiverged> => {
        if (done()) return Stream.succeed(chunk)
        if (chunk._tag === "Finish")
          return diverged === undefined ? Stream.succeed(chunk) : Stream.fail(diverged(chunk.provider))
        if (chunk._tag === "TextDelta") {
          const s = chunk.text
          if (!leaveCall()) return mismatch(chunk)
          const end = t < calls.length ? calls[t].at : text.length
          const n = Math.min(s.length, end - at)
          let i = 0
          while (i < n && s.charCodeAt(i) === text.charCodeAt(at + i)) i++
          at += i
          const rest: StreamChunk | undefined = i === s.length ? undefined : { _tag: "TextDelta", text: s.slice(i) }
          // more text than was delivered before the next call is a mismatch too
          if (i < n || (i < s.length && t < calls.length)) return mismatch(rest)
          return rest === undefined ? Stream.empty : Stream.succeed(rest)
        }
        if (inCall && chunk.index !== calls[t].index && !leaveCall()) return mismatch(chunk)
        if (!inCall) {
          const call = calls[t]
          if (call === undefined || at < call.at || chunk.index !== call.index) return mismatch(chunk)
          if (chunk.name !== undefined && call.name !== undefined && chunk.name !== call.name) return mismatch(chunk)
          inCall = true
          argsAt = 0
        }
        const args = calls[t].arguments
        const s = chunk.arguments
        const n = Math.min(s.length, args.length - argsAt)
        let i = 0
        while (i < n && s.charCodeAt(i) === args.charCodeAt(argsAt + i)) i++
        argsAt += i
        const rest: StreamChunk | undefined =
          i === s.length ? undefined : { _tag: "ToolCallDelta", index: chunk.index, arguments: s.slice(i) }
        // arguments past the delivered ones are a mismatch unless this is the last thing delivered
        if (i < n || (i < s.length && !done())) return mismatch(rest)
        return rest === undefined ? Stream.empty : Stream.succeed(rest)
      },
      { concurrency: 1 }
    )
  })

/** A restarted answer without what was delivered, or `StreamDiverged` when it is another answer. */
const restarted = <E, R>(self: Stream.Stream<StreamChunk, E, R>, transcript: Transcript, request: LlmRequest) => {
  const delivered = transcript.text
  const lastError = providerErrorOf(transcript.cause)
  return dropDelivered(
    self,
    transcript,
    (provider) =>
      new StreamDiverged({
        delivered,
        model: request.model,
        ...(provider === undefined ? {} : { provider }),
        ...(lastError === undefined ? {} : { lastError })
      })
  )
}

/**
 * The attempt that carries on after `transcript`: `open(request)` itself when nothing was delivered; with
 * `prefill` and no tool call delivered, the request prefilled with the delivered text (restarted without it
 * on a `BadRequest` before its first chunk); else the restarted answer without its delivered prefix. The caller records what it
 * delivers (see {@link record}).
 *
 * Providers refuse a prefill that ends in whitespace (Anthropic: "final assistant content cannot end with
 * trailing whitespace"), so the prefill is sent trimmed, and whitespace the continuation repeats from the
 * trimmed tail is dropped.
 */
export const carryOn = <E extends { readonly _tag: string }, R>(
  open: (request: LlmRequest) => Stream.Stream<StreamChunk, E, R>,
  request: LlmRequest,
  transcript: Transcript,
  prefill: boolean
): Stream.Stream<StreamChunk, E | StreamDiverged, R> =>
  Stream.suspend(() => {
    const text = transcript.text
    const calls = transcript.calls.length > 0
    if (text === "" && !calls) return open(request)
    const restart = () => restarted(open(request), transcript, request)
    const trimmed = text.trimEnd()
    // a prefill carries text only: an answer that made tool calls is asked again
    if (!prefill || trimmed === "" || calls) return restart()
    let started = false
    const withPrefill = Stream.mapArray(open(prefilled(request, trimmed)), (chunks) => {
      started = true
      return chunks
    })
    return Stream.catch(
      dropDelivered(withPrefill, { text: text.slice(trimmed.length), calls: [] }, undefined),
      (error): Stream.Stream<StreamChunk, E | StreamDiverged, R> =>
        !started && error._tag === "BadRequest" ? restart() : Stream.fail(error)
    )
  })

/** `self` with its chunks held until its `Finish`: nothing reaches the caller before the answer is whole. */
export const buffered = <E, R>(self: Stream.Stream<StreamChunk, E, R>): Stream.Stream<StreamChunk, E, R> =>
  Stream.unwrap(Effect.map(Stream.runCollect(self), (chunks) => Stream.fromIterable(chunks)))

/**
 * A provider step's stream under `mode`, with `retry` around its attempts (`open`): `buffer` holds each
 * attempt until its `Finish`; `continue` hands a stream that broke after delivering text to the next attempt
 * through {@link carryOn}; `fail` gives the retry the attempt as it is.
 */
export const withMode = (
  mode: Mode,
  open: (request: LlmRequest) => Stream.Stream<StreamChunk, LlmError>,
  retry: (
    self: Stream.Stream<StreamChunk, LlmError>,
    carryOn?: (error: LlmError) => Stream.Stream<StreamChunk, LlmError>
  ) => Stream.Stream<StreamChunk, LlmError>,
  request: LlmRequest,
  prefill: boolean
): Stream.Stream<StreamChunk, LlmError> => {
  const attempt = mode === "buffer" ? (r: LlmRequest) => buffered(open(r)) : open
  if (mode !== "continue") return retry(attempt(request))
  return Stream.suspend(() => {
    const transcript = new Transcript()
    return record(
      retry(attempt(request), (error) => {
        transcript.cause = error
        return carryOn(attempt, request, transcript, prefill)
      }),
      transcript
    )
  })
}

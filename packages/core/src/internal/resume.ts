/**
 * What a stream does when it fails after its first chunk: its path's mid-stream mode.
 *
 * - `fail`: the failure reaches the caller (the text already delivered cannot be taken back).
 * - `continue`: the next attempt (a retry of the step, or the plan's next step) carries on with the answer.
 *   On a model declared to accept assistant prefill, the text delivered so far is sent as the end of the
 *   assistant's turn and the new chunks are appended; otherwise the request is sent again and the new
 *   answer is compared with what was delivered: the matching prefix is skipped, a divergence ends the stream
 *   with `StreamDiverged` (carrying the delivered text). A prefilled attempt that the provider rejects with a
 *   `BadRequest` before its first chunk is restarted without prefill, so that the rejection never hides the
 *   failure being recovered from.
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

/** The text one layer has delivered so far, and the failure it is carrying on from. */
export class Transcript {
  text = ""
  /** Whether any chunk has been delivered. */
  delivered = false
  /** The failure the current continuation recovers from (carried by a `StreamDiverged`). */
  cause: unknown = undefined
}

/** `self`, appending the text of its chunks to `transcript`. */
export const record = <E, R>(self: Stream.Stream<StreamChunk, E, R>, transcript: Transcript) =>
  Stream.mapArray(self, (chunks) => {
    transcript.delivered = true
    for (const chunk of chunks) if (chunk._tag === "TextDelta") transcript.text += chunk.text
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
 * `self` without its leading `prefix`: its text is compared with `prefix` chunk by chunk and the matching part
 * dropped. On a mismatch (or a `Finish` before the whole prefix came back) it fails with `diverged()`, or,
 * without `diverged`, stops comparing and passes the rest on.
 */
const dropPrefix = <E, R>(
  self: Stream.Stream<StreamChunk, E, R>,
  prefix: string,
  diverged: ((provider: string | undefined) => StreamDiverged) | undefined
): Stream.Stream<StreamChunk, E | StreamDiverged, R> =>
  Stream.suspend(() => {
    let at = 0
    return Stream.flatMap(
      self,
      (chunk): Stream.Stream<StreamChunk, StreamDiverged> => {
        if (at >= prefix.length) return Stream.succeed(chunk)
        if (chunk._tag === "Finish")
          return diverged === undefined ? Stream.succeed(chunk) : Stream.fail(diverged(chunk.provider))
        const text = chunk.text
        const n = Math.min(text.length, prefix.length - at)
        let i = 0
        while (i < n && text.charCodeAt(i) === prefix.charCodeAt(at + i)) i++
        if (i < n) {
          if (diverged !== undefined) return Stream.fail(diverged(undefined))
          at = prefix.length
        } else at += i
        return i === text.length ? Stream.empty : Stream.succeed({ _tag: "TextDelta", text: text.slice(i) })
      },
      { concurrency: 1 }
    )
  })

/** A restarted answer without the delivered text, or `StreamDiverged` when it is another answer. */
const restarted = <E, R>(self: Stream.Stream<StreamChunk, E, R>, transcript: Transcript, request: LlmRequest) => {
  const delivered = transcript.text
  const lastError = providerErrorOf(transcript.cause)
  return dropPrefix(
    self,
    delivered,
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
 * `prefill`, the request prefilled with the delivered text (restarted without it on a `BadRequest` before
 * its first chunk); else the restarted answer without its delivered prefix. The caller records what it
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
    if (text === "") return open(request)
    const restart = () => restarted(open(request), transcript, request)
    const trimmed = text.trimEnd()
    if (!prefill || trimmed === "") return restart()
    let started = false
    const withPrefill = Stream.mapArray(open(prefilled(request, trimmed)), (chunks) => {
      started = true
      return chunks
    })
    return Stream.catch(
      dropPrefix(withPrefill, text.slice(trimmed.length), undefined),
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

/**
 * Timeouts that name their phase, and stream integrity.
 *
 * - `total`: the whole call (`complete`), or the whole stream from its first pull to its end.
 * - `first-token`: a stream's wait for its first chunk.
 * - `idle`: a stream's silence between two chunks. The official SDKs stop timing once response headers
 *   arrive, so a provider that goes silent mid-stream hangs them forever; here it fails with
 *   `Timeout { phase: "idle" }`.
 *
 * Each fails with {@link LlmError.Timeout} carrying its `phase` and `afterMs`, and the interrupted call's
 * finalizers (token reservations, permits, sockets) have run by the time the failure is seen. A stream that
 * ends without its `Finish` chunk (the provider's end marker) fails with {@link LlmError.StreamTruncated}:
 * it never completes as if it were whole.
 *
 * The limits are set per route (`request.metadata.path`), with defaults for every other path. One
 * {@link Timeouts} value shares a single deadline timer between all its calls: a call runs on the caller's
 * own fiber, forks nothing and arms no timer of its own (see docs/timeouts.md for how, and the measurements
 * against `Effect.timeout`).
 *
 * That timer belongs to the scope that built the stage (the layer's, for {@link layer}). A provider used
 * after that scope closed could no longer time anything out, so rather than run its calls without limits
 * (a stalled one would hang forever) every call and stream dies at once with a defect that says so: this is
 * a wiring bug (a provider kept past its `ManagedRuntime` or `Layer.build` scope), not a runtime condition
 * for callers to handle.
 *
 * @since 0.1.0
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import { Cause, Effect, Layer, Pull, Schema, type Scope, Stream } from "effect"
import { LlmProvider } from "./LlmProvider.ts"
import type { LlmError } from "./LlmError.ts"
import { StreamTruncated, Timeout } from "./LlmError.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { StreamChunk } from "./LlmResponse.ts"
import * as Attempts from "./internal/attempt.ts"
import * as Deadline from "./internal/deadline.ts"
import { millis } from "./internal/duration.ts"
import type { Stage } from "./Stage.ts"

/** Milliseconds, or a duration string such as `"8 seconds"` (the configuration's duration convention). */
const Millis = millis(Schema.Number.check(Schema.isGreaterThan(0)))

/**
 * The limits of one path (and the `timeouts` of a path in `Resilience.Config`). Every field is optional;
 * `Infinity` disables a limit; a limit is milliseconds or a duration string such as `"8 seconds"`.
 *
 * - `totalMs` (default 120 000): the whole call or stream.
 * - `firstTokenMs` (default 15 000): a stream's first chunk (short enough that a silent provider is left for
 *   the next fallback step while the caller still waits).
 * - `idleMs` (default 20 000): between two chunks of a stream.
 *
 * @example
 * ```ts
 * import type { Timeouts } from "@llm-resilience/core"
 * const interactive: Timeouts.Limits = { totalMs: 30_000, firstTokenMs: 5_000, idleMs: 10_000 }
 * ```
 * @since 0.1.0
 */
export const Limits = Schema.Struct({
  totalMs: Schema.optional(Millis),
  firstTokenMs: Schema.optional(Millis),
  idleMs: Schema.optional(Millis)
})

/**
 * @since 0.1.0
 */
export type Limits = typeof Limits.Type

/**
 * The options of {@link make}: default limits, and per-path overrides keyed by `request.metadata.path`
 * (a path's missing fields fall back to the defaults). A non-positive or non-numeric limit fails
 * construction with a `SchemaError` naming the field.
 *
 * @example
 * ```ts
 * import type { Timeouts } from "@llm-resilience/core"
 * const options: Timeouts.Options = {
 *   totalMs: 60_000,
 *   paths: { autocomplete: { totalMs: 2_000, firstTokenMs: 800, idleMs: 500 } }
 * }
 * ```
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  ...Limits.fields,
  paths: Schema.optional(Schema.Record(Schema.String, Limits))
})

/**
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * The limits in force for one request, every field filled in.
 *
 * @example
 * ```ts
 * import type { Timeouts } from "@llm-resilience/core"
 * const limits: Timeouts.Resolved = { totalMs: 60_000, firstTokenMs: 10_000, idleMs: 10_000 }
 * ```
 * @since 0.1.0
 */
export interface Resolved {
  readonly totalMs: number
  readonly firstTokenMs: number
  readonly idleMs: number
}

/**
 * The defaults applied where an option is missing.
 *
 * @example
 * ```ts
 * import { Timeouts } from "@llm-resilience/core"
 * Timeouts.defaults.idleMs // 20000
 * ```
 * @since 0.1.0
 */
export const defaults: Resolved = { totalMs: 120_000, firstTokenMs: 15_000, idleMs: 20_000 }

/**
 * A timeout stage: wraps calls and streams with their path's limits.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmProvider, Timeouts } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const timeouts = yield* Timeouts.make({ totalMs: 30_000 })
 *   const llm = timeouts.wrap(yield* LlmProvider.LlmProvider)
 *   return yield* llm.complete({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] })
 * })
 * ```
 * @since 0.1.0
 */
export interface Timeouts {
  /** The limits that apply to `request`. */
  readonly limitsFor: (request: LlmRequest) => Resolved
  /** Fails with `Timeout { phase: "total" }` when `self` outlives the path's `totalMs`. */
  readonly complete: <A, E, R>(
    self: Effect.Effect<A, E, R>,
    request: LlmRequest,
    provider?: string
  ) => Effect.Effect<A, E | Timeout, R>
  /** First-token, idle and total timeouts, and `StreamTruncated` for a stream without `Finish`. */
  readonly stream: <E, R>(
    self: Stream.Stream<StreamChunk, E, R>,
    request: LlmRequest,
    provider?: string
  ) => Stream.Stream<StreamChunk, E | Timeout | StreamTruncated, R>
  /** The provider with both `complete` and `stream` guarded. */
  readonly wrap: (provider: LlmProvider["Service"]) => LlmProvider["Service"]
  /**
   * The total timeout as a stage ({@link Stage.Stage}): the attempt's path's `totalMs` on the caller's
   * own fiber; an attempt that outlives it is interrupted and fails with `Timeout { phase: "total" }`.
   * `complete` is this stage run alone.
   */
  readonly stage: Stage<unknown>
}

const resolve = (base: Resolved, over: Limits | undefined): Resolved =>
  over === undefined
    ? base
    : {
        totalMs: over.totalMs ?? base.totalMs,
        firstTokenMs: over.firstTokenMs ?? base.firstTokenMs,
        idleMs: over.idleMs ?? base.idleMs
      }

const origin = (request: LlmRequest, provider: string | undefined) =>
  provider === undefined ? { model: request.model } : { provider, model: request.model }

/**
 * Builds a timeout stage. Its shared timer lives in the current `Scope` and follows the `Clock` of the
 * building fiber (so `TestClock` drives it in tests); once that scope closes, the stage's calls die at once
 * (see the module doc).
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { LlmProvider, Timeouts } from "@llm-resilience/core"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const timeouts = yield* Timeouts.make({ firstTokenMs: 5_000, idleMs: 10_000 })
 *   const llm = yield* LlmProvider.LlmProvider
 *   const request = { model: "m", messages: [{ role: "user" as const, content: "Hi" }] }
 *   return yield* Stream.runCollect(timeouts.stream(llm.stream(request), request, llm.name))
 * }))
 * ```
 * @since 0.1.0
 */
export const make: (options?: typeof Options.Encoded) => Effect.Effect<Timeouts, Schema.SchemaError, Scope.Scope> =
  Effect.fnUntraced(function* (options = {}) {
    const decoded = yield* Schema.decodeUnknownEffect(Options)(options)
    const base = resolve(defaults, decoded)
    const paths = new Map<string, Resolved>()
    for (const [path, limits] of Object.entries(decoded.paths ?? {})) paths.set(path, resolve(base, limits))
    const timer = yield* Deadline.makeFor("Timeouts")

    const limitsFor = (request: LlmRequest): Resolved => {
      const path = request.metadata?.path
      return path === undefined ? base : (paths.get(path) ?? base)
    }

    const totalTimeout = (request: LlmRequest, provider: string | undefined, totalMs: number) =>
      new Timeout({
        ...origin(request, provider),
        message: `no response within ${totalMs} ms`,
        phase: "total",
        afterMs: totalMs
      })

    /** The provider's name, when the key is `provider/model`. */
    const providerOf = (key: string, request: LlmRequest): string | undefined =>
      key.length > request.model.length ? key.slice(0, key.length - request.model.length - 1) : undefined

    const stage: Stage<Deadline.Guard | undefined> = {
      name: "timeouts",
      enter: (attempt) => {
        if (timer.released !== undefined) return timer.released
        const totalMs = limitsFor(attempt.request).totalMs
        return totalMs === Infinity ? undefined : timer.guard(attempt.fiber, timer.now() + totalMs)
      },
      exit: (guard, _, attempt) =>
        guard !== undefined && guard.end()
          ? Effect.fail(
              totalTimeout(
                attempt.request,
                providerOf(attempt.key, attempt.request),
                limitsFor(attempt.request).totalMs
              )
            )
          : undefined
    }
    const stages = [stage]

    const complete = <A, E, R>(
      self: Effect.Effect<A, E, R>,
      request: LlmRequest,
      provider?: string
    ): Effect.Effect<A, E | Timeout, R> =>
      Attempts.run(stages, request, provider === undefined ? request.model : `${provider}/${request.model}`, self)

    const stream = <E, R>(
      self: Stream.Stream<StreamChunk, E, R>,
      request: LlmRequest,
      provider?: string
    ): Stream.Stream<StreamChunk, E | Timeout | StreamTruncated, R> =>
      Stream.transformPull(self, (pull) =>
        Effect.sync(() => {
          const limits = limitsFor(request)
          let totalDeadline = Infinity
          let chunks = 0
          let finished = false
          const truncated = Effect.suspend((): Effect.Effect<never, Cause.Done | StreamTruncated> =>
            finished
              ? Cause.done()
              : Effect.fail(
                  new StreamTruncated({
                    ...origin(request, provider),
                    message: `stream ended without its end marker after ${chunks} chunks`,
                    receivedChunks: chunks
                  })
                )
          )
          const onChunks = <T extends ReadonlyArray<StreamChunk>>(arr: T): T => {
            for (const chunk of arr) {
              if (chunk._tag === "Finish") finished = true
              else chunks++
            }
            return arr
          }
          return Effect.suspend((): Pull.Pull<NonEmptyReadonlyArray<StreamChunk>, E | Timeout | StreamTruncated> => {
            if (timer.released !== undefined) return timer.released
            const now = timer.now()
            if (totalDeadline === Infinity) totalDeadline = now + limits.totalMs
            const first = chunks === 0 && !finished
            const phaseMs = first ? limits.firstTokenMs : limits.idleMs
            let deadline = now + phaseMs
            let phase: Timeout["phase"] = first ? "first-token" : "idle"
            let afterMs = phaseMs
            if (totalDeadline <= deadline) {
              deadline = totalDeadline
              phase = "total"
              afterMs = limits.totalMs
            }
            const guarded =
              deadline === Infinity
                ? pull
                : timer.within(
                    pull,
                    deadline,
                    () =>
                      new Timeout({
                        ...origin(request, provider),
                        message:
                          phase === "total"
                            ? `stream not complete within ${afterMs} ms`
                            : phase === "first-token"
                              ? `no first chunk within ${afterMs} ms`
                              : `no chunk for ${afterMs} ms after chunk ${chunks}`,
                        phase,
                        afterMs
                      })
                  )
            return Pull.catchDone(Effect.map(guarded, onChunks), () => truncated)
          })
        })
      ) as Stream.Stream<StreamChunk, E | Timeout | StreamTruncated, R>

    const wrap = (provider: LlmProvider["Service"]): LlmProvider["Service"] => ({
      name: provider.name,
      complete: (request) => complete(provider.complete(request), request, provider.name),
      stream: (request): Stream.Stream<StreamChunk, LlmError> =>
        stream(provider.stream(request), request, provider.name)
    })

    return { limitsFor, complete, stream, wrap, stage }
  })

/**
 * A layer that wraps the `LlmProvider` below it with a timeout stage.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Timeouts } from "@llm-resilience/core"
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const Guarded = Timeouts.layer({ totalMs: 30_000 }).pipe(Layer.provide(FakeProvider.layer()))
 * ```
 * @since 0.1.0
 */
export const layer = (options?: typeof Options.Encoded): Layer.Layer<LlmProvider, Schema.SchemaError, LlmProvider> =>
  Layer.effect(
    LlmProvider,
    Effect.gen(function* () {
      const inner = yield* LlmProvider
      const timeouts = yield* make(options)
      return timeouts.wrap(inner)
    })
  )

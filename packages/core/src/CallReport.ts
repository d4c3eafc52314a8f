/**
 * What one call did, without a tracer: the report that every response of `Resilience` carries
 * (`response.report`) and that a failed call's error carries ({@link of}), and the events of the pipeline's
 * decisions (retry, give-up, fallback move, breaker transition, admission wait, budget refusal) delivered to
 * a listener ({@link Events}).
 *
 * The report is built as the call ends, from what the stages already keep: a call answered by its first
 * attempt without waiting gets one small record. An error gets its report under a symbol key, so every
 * member of `LlmError` keeps its shape and `Effect.catchTag` handlers read it with {@link of}.
 *
 * @since 0.1.0
 */
import { Context, Effect, type Fiber, Layer, Schema } from "effect"

// ---------------------------------------------------------------------------------------------------------
// the report
// ---------------------------------------------------------------------------------------------------------

/**
 * One attempt: the step it ran on (`provider/model`), its outcome (`ok` or the error's tag), how long it
 * waited in the admission queue before the provider was called, and what followed: `answered`, `retry`
 * (after `waitedMs` of backoff, for `reason` `backoff` or `retry-after`), `fallback` (the plan moved on,
 * `reason` is the error's tag, or `CircuitOpen` for a step skipped without a call) or `gave-up` (`reason`:
 * `not-retryable`, `max-retries`, `retry-after-too-long`, `deadline`, `budget`).
 *
 * @since 0.1.0
 */
export const AttemptReport = Schema.Struct({
  step: Schema.String,
  outcome: Schema.String,
  admissionWaitMs: Schema.Finite,
  next: Schema.Literals(["answered", "retry", "fallback", "gave-up"]),
  reason: Schema.optional(Schema.String),
  waitedMs: Schema.optional(Schema.Finite)
})

/**
 * @since 0.1.0
 */
export type AttemptReport = typeof AttemptReport.Type

/**
 * The report of one call: its attempts in order, the step that answered (none for a failed call), and the
 * time it spent in admission queues in all.
 *
 * @example
 * ```ts
 * import type { CallReport } from "@llm-resilience/core"
 * const report: CallReport.Report = {
 *   attempts: [
 *     { step: "openai/gpt-5.4", outcome: "Overloaded", admissionWaitMs: 0, next: "fallback", reason: "Overloaded" },
 *     { step: "anthropic/claude-sonnet-4-6", outcome: "ok", admissionWaitMs: 0, next: "answered" }
 *   ],
 *   answeredBy: "anthropic/claude-sonnet-4-6",
 *   admissionWaitMs: 0
 * }
 * ```
 * @since 0.1.0
 */
export const Report = Schema.Struct({
  attempts: Schema.Array(AttemptReport),
  answeredBy: Schema.optional(Schema.String),
  admissionWaitMs: Schema.Finite
})

/**
 * @since 0.1.0
 */
export type Report = typeof Report.Type

const reportKey: unique symbol = Symbol.for("@llm-resilience/core/CallReport")

/**
 * The report a failed call's error carries, if the pipeline produced it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CallReport, LlmProvider } from "@llm-resilience/core"
 * const request = { model: "gpt-5.4", messages: [{ role: "user" as const, content: "Hi" }] }
 * const program = LlmProvider.LlmProvider.use((llm) => llm.complete(request)).pipe(
 *   Effect.catchTag("RateLimited", (error) =>
 *     Effect.logWarning("rate limited", CallReport.of(error)?.attempts.length).pipe(Effect.andThen(Effect.fail(error)))
 *   )
 * )
 * ```
 * @since 0.1.0
 */
export const of = (error: unknown): Report | undefined =>
  typeof error === "object" && error !== null ? (error as { [reportKey]?: Report })[reportKey] : undefined

/**
 * A copy of `error` carrying `report` (under a symbol key: the copy has the error's prototype, fields, tag
 * and encoding; its stack is the error's, read only when asked for). The error itself is never changed: a
 * provider may fail every call with one error instance, and each call's report must stay with that call.
 * Only failures pay for the copy.
 *
 * @internal
 */
export const attach = <E>(error: E, report: Report): E => {
  if (typeof error !== "object" || error === null) return error
  const fields = Object.getOwnPropertyDescriptors(error)
  const copy = Object.create(Object.getPrototypeOf(error), fields)
  // V8 keeps an error's stack behind an accessor that works on the error only
  if (fields.stack?.get !== undefined) {
    Object.defineProperty(copy, "stack", {
      get: () => (error as { readonly stack?: unknown }).stack,
      set: (stack: unknown) => {
        Object.defineProperty(copy, "stack", { value: stack, writable: true, configurable: true })
      },
      configurable: true,
      enumerable: false
    })
  }
  Object.defineProperty(copy, reportKey, { value: report, configurable: true, enumerable: false })
  return copy
}

// ---------------------------------------------------------------------------------------------------------
// events
// ---------------------------------------------------------------------------------------------------------

/**
 * A retry was decided: `attempt` failed with `error` and the next one starts after `delayMs`.
 *
 * @since 0.1.0
 */
export const Retried = Schema.TaggedStruct("Retried", {
  key: Schema.String,
  attempt: Schema.Finite,
  error: Schema.String,
  reason: Schema.Literals(["backoff", "retry-after"]),
  delayMs: Schema.Finite
})

/**
 * The retry stage stopped and the step fails (`reason` as in {@link AttemptReport}).
 *
 * @since 0.1.0
 */
export const GaveUp = Schema.TaggedStruct("GaveUp", {
  key: Schema.String,
  attempt: Schema.Finite,
  error: Schema.String,
  reason: Schema.String
})

/**
 * The retry budget of `key` refused a retry.
 *
 * @since 0.1.0
 */
export const BudgetRefused = Schema.TaggedStruct("BudgetRefused", {
  key: Schema.String,
  error: Schema.String
})

/**
 * The fallback plan moved from step `from` to step `to` because of `reason` (an error's tag).
 *
 * @since 0.1.0
 */
export const FallbackMoved = Schema.TaggedStruct("FallbackMoved", {
  from: Schema.String,
  to: Schema.String,
  reason: Schema.String
})

/**
 * The circuit of `key` went from `from` to `to`.
 *
 * @since 0.1.0
 */
export const BreakerTransition = Schema.TaggedStruct("BreakerTransition", {
  key: Schema.String,
  from: Schema.String,
  to: Schema.String
})

/**
 * An attempt on `key` waited `waitedMs` in the admission queue and was admitted.
 *
 * @since 0.1.0
 */
export const AdmissionWaited = Schema.TaggedStruct("AdmissionWaited", {
  key: Schema.String,
  waitedMs: Schema.Finite
})

/**
 * Every event of the pipeline, a tagged union.
 *
 * @since 0.1.0
 */
export const Event = Schema.Union([Retried, GaveUp, BudgetRefused, FallbackMoved, BreakerTransition, AdmissionWaited])

/**
 * @since 0.1.0
 */
export type Event = typeof Event.Type

/**
 * A listener of events.
 *
 * @since 0.1.0
 */
export type Listener = (event: Event) => Effect.Effect<void>

/**
 * The listener of the fiber that runs a call (none by default). Each event runs it in a fiber of its own,
 * forked from the call's: a slow listener never delays the call, and a listener that fails or dies is
 * ignored. Provide it where calls run, e.g. with {@link layer} in the application's layer.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CallReport } from "@llm-resilience/core"
 * const program = Effect.void.pipe(
 *   Effect.provideService(CallReport.Events, (event) => Effect.logInfo("llm event", event))
 * )
 * ```
 * @since 0.1.0
 */
export const Events = Context.Reference<Listener | undefined>("@llm-resilience/core/CallReport/Events", {
  defaultValue: () => undefined
})

/**
 * A layer that sets the listener of {@link Events}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CallReport } from "@llm-resilience/core"
 * const EventsLive = CallReport.layer((event) => Effect.logDebug(event._tag, event))
 * ```
 * @since 0.1.0
 */
export const layer = (onEvent: Listener): Layer.Layer<never> => Layer.succeed(Events, onEvent)

/**
 * Delivers `event` to the listener of `fiber`, if any, in a detached fiber whose failure is ignored. `event`
 * is built only when a listener is set.
 *
 * @internal
 */
export const emitUnsafe = (fiber: Fiber.Fiber<unknown, unknown>, event: () => Event): void => {
  const listener = fiber.getRef(Events)
  if (listener === undefined) return
  Effect.runForkWith(fiber.context as Context.Context<never>)(
    Effect.ignoreCause(Effect.suspend(() => listener(event())))
  )
}

/**
 * {@link emitUnsafe} as an effect.
 *
 * @internal
 */
export const emit = (event: () => Event): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    emitUnsafe(fiber, event)
    return Effect.void
  })

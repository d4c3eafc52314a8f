/**
 * A declarative fallback plan: ordered steps, each a provider + model with its own policies, ending, if
 * wanted, in degraded steps (a static answer, a cached answer, or "accepted for later").
 *
 * A call runs the first step. When it fails, the failing step's `moveOn` set decides whether the plan moves
 * on (default `LlmError.fallbackTags`: transient provider errors, circuit open, timeouts, truncated streams,
 * the retry stage's give-ups, admission rejections, invalid output, context length, quota); any other error
 * (a bad request, an authentication failure, a spend guard ...) is returned as is. The next step is the
 * first later one that can help:
 *
 * - after `ContextLengthExceeded`, a step is skipped only when its `contextWindow` is known and no larger
 *   than the largest known window of the steps that overflowed; a step with a larger window, or without a
 *   `contextWindow`, is tried;
 * - after `QuotaExhausted`, only a step of another provider;
 * - a step whose circuit is open is skipped without a call, as if it had failed with `CircuitOpen`;
 * - degraded steps accept every moving-on error: they are there for when no model can answer.
 *
 * Every move from one step to another is an activation: it is logged (warning level, with from, to,
 * reason) and counted once in {@link fallbackActivations} with the attributes `from`, `to` (step labels,
 * `provider/model` by default, or `static`, `cache`, `later`) and `reason` (the error tag, or `CacheMiss` /
 * `QueueFull` when a degraded step could not serve). A dashboard of its rate is the guard against running
 * degraded for weeks without noticing.
 *
 * "Accepted for later" is not an answer, and the caller must not mistake it for one: the plan fails with
 * {@link AcceptedForLater} (a member of the `LlmError` union that is not a failure of the model, carrying the queue ticket), the analogue of an
 * HTTP 202. Static and cached answers are ordinary `LlmResponse`s whose `provider` is `fallback:static` or
 * `fallback:cache`.
 *
 * With `hedge` on a step, the step's call is hedged into the next eligible provider step (see `Hedge`); a
 * hedge is not an activation (it has its own metrics). If both fail, the plan moves on after the hedge
 * step.
 *
 * Streams follow the same plan until their first chunk; after a chunk has been delivered a failure is
 * returned as is (the caller has already seen part of an answer).
 *
 * @since 0.1.0
 */
import { Cause, Context, Effect, type Fiber, Layer, Metric, Option, Queue, Schema, Stream } from "effect"
import type { Hedge } from "./Hedge.ts"
import * as LlmErrors from "./LlmError.ts"
import type { LlmError } from "./LlmError.ts"
import type { CircuitOpen } from "./LlmError.ts"
import type { LlmProvider } from "./LlmProvider.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse, StreamChunk } from "./LlmResponse.ts"
import { TokenEstimator } from "./TokenEstimator.ts"
import * as CallReports from "./CallReport.ts"
import { tagged } from "./internal/metrics.ts"
import { attemptReport, reportOf } from "./internal/report.ts"

// ---------------------------------------------------------------------------------------------------------
// degraded-step services
// ---------------------------------------------------------------------------------------------------------

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

/**
 * The plan's answer when it ended in the {@link acceptForLater} step (defined with the rest of the union in
 * `LlmError`, re-exported here).
 *
 * @since 0.1.0
 */
export const AcceptedForLater = LlmErrors.AcceptedForLater

/**
 * @since 0.1.0
 */
export type AcceptedForLater = LlmErrors.AcceptedForLater

// ---------------------------------------------------------------------------------------------------------
// steps
// ---------------------------------------------------------------------------------------------------------

/**
 * The circuit-breaker check the plan needs: fail with `CircuitOpen` when a call to `key` would be
 * rejected now, without admitting one. `CircuitBreaker` satisfies it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { FallbackPlan } from "@llm-resilience/core"
 * const alwaysClosed: FallbackPlan.CircuitCheck = { check: () => Effect.void }
 * ```
 * @since 0.1.0
 */
export interface CircuitCheck {
  readonly check: (key: string) => Effect.Effect<void, CircuitOpen>
}

/**
 * A provider + model step.
 *
 * @since 0.1.0
 */
export interface ProviderStep {
  readonly _tag: "Provider"
  /** `provider/model` unless given: the step's name in metrics and logs. */
  readonly label: string
  /** Always `provider/model`: the key its circuit is checked under, whatever the label. */
  readonly key: string
  readonly provider: LlmProvider["Service"]
  readonly model: string
  readonly contextWindow: number | undefined
  readonly moveOn: ReadonlySet<string>
  readonly hedge: Hedge | undefined
}

/**
 * A degraded step answering with a fixed text.
 *
 * @since 0.1.0
 */
export interface StaticStep {
  readonly _tag: "Static"
  readonly label: "static"
  readonly text: (request: LlmRequest) => string
}

/**
 * A degraded step answering from the {@link ResponseCache}.
 *
 * @since 0.1.0
 */
export interface CachedStep {
  readonly _tag: "Cached"
  readonly label: "cache"
}

/**
 * A degraded step that puts the request on the {@link LaterQueue}.
 *
 * @since 0.1.0
 */
export interface LaterStep {
  readonly _tag: "Later"
  readonly label: "later"
}

/**
 * One step of a plan.
 *
 * @since 0.1.0
 */
export type Step = ProviderStep | StaticStep | CachedStep | LaterStep

/**
 * The services a plan's steps need: a {@link ResponseCache} for {@link cached}, a {@link LaterQueue} for
 * {@link acceptForLater}.
 *
 * @since 0.1.0
 */
export type StepServices<S> = S extends CachedStep ? ResponseCache : S extends LaterStep ? LaterQueue : never

/**
 * A provider + model step. `policy` wraps the provider with this step's own stages (timeouts, retry,
 * breaker, admission ...); `moveOn` replaces `LlmError.fallbackTags`; `contextWindow` (tokens) is what a
 * `ContextLengthExceeded` is routed by; `hedge` hedges this step into the next eligible provider step.
 *
 * @example
 * ```ts
 * import type { LlmProvider } from "@llm-resilience/core"
 * import { FallbackPlan } from "@llm-resilience/core"
 *
 * declare const openai: LlmProvider.LlmProvider["Service"]
 * const primary = FallbackPlan.step(openai, { model: "gpt-5.4-mini", contextWindow: 128_000 })
 * ```
 * @since 0.1.0
 */
export const step = (
  provider: LlmProvider["Service"],
  options: {
    readonly model: string
    readonly label?: string | undefined
    readonly contextWindow?: number | undefined
    readonly moveOn?: ReadonlyArray<LlmError["_tag"]> | undefined
    readonly policy?: ((provider: LlmProvider["Service"]) => LlmProvider["Service"]) | undefined
    readonly hedge?: Hedge | undefined
  }
): ProviderStep => ({
  _tag: "Provider",
  label: options.label ?? `${provider.name}/${options.model}`,
  key: `${provider.name}/${options.model}`,
  provider: options.policy === undefined ? provider : options.policy(provider),
  model: options.model,
  contextWindow: options.contextWindow,
  moveOn: new Set(options.moveOn ?? LlmErrors.fallbackTags),
  hedge: options.hedge
})

/**
 * A degraded step answering `text` (or a text computed from the request).
 *
 * @example
 * ```ts
 * import { FallbackPlan } from "@llm-resilience/core"
 * const sorry = FallbackPlan.staticAnswer("The assistant is busy; please try again in a minute.")
 * ```
 * @since 0.1.0
 */
export const staticAnswer = (text: string | ((request: LlmRequest) => string)): StaticStep => ({
  _tag: "Static",
  label: "static",
  text: typeof text === "string" ? () => text : text
})

/**
 * A degraded step answering from the {@link ResponseCache}; a miss moves on (reason `CacheMiss`).
 *
 * @example
 * ```ts
 * import { FallbackPlan } from "@llm-resilience/core"
 * const steps = [FallbackPlan.cached, FallbackPlan.staticAnswer("Try again later.")]
 * ```
 * @since 0.1.0
 */
export const cached: CachedStep = { _tag: "Cached", label: "cache" }

/**
 * A degraded step queueing the request on the {@link LaterQueue}; the plan then fails with
 * {@link AcceptedForLater}. A full queue moves on (reason `QueueFull`).
 *
 * @example
 * ```ts
 * import { FallbackPlan } from "@llm-resilience/core"
 * const last = FallbackPlan.acceptForLater
 * ```
 * @since 0.1.0
 */
export const acceptForLater: LaterStep = { _tag: "Later", label: "later" }

// ---------------------------------------------------------------------------------------------------------
// the plan
// ---------------------------------------------------------------------------------------------------------

/**
 * Fallback activations, by `from`, `to` and `reason`: exactly one per move between steps.
 *
 * @since 0.1.0
 */
export const fallbackActivations = Metric.counter("fallback_activations", {
  description: "moves from one fallback step to the next, by from, to and reason",
  incremental: true
})

/**
 * A plan is invalid: `field` names the offending step or option.
 *
 * @since 0.1.0
 */
export class InvalidPlan extends Schema.TaggedError<InvalidPlan>()("InvalidPlan", {
  field: Schema.String,
  issue: Schema.String
}) {
  override get message(): string {
    return `invalid fallback plan: ${this.field} ${this.issue}`
  }
}

/**
 * A validated plan, ready to run.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { FallbackPlan } from "@llm-resilience/core"
 *
 * const ask = (plan: FallbackPlan.FallbackPlan<never>) =>
 *   plan.complete({ model: "any", messages: [{ role: "user", content: "Hi" }] })
 * ```
 * @since 0.1.0
 */
export interface FallbackPlan<R> {
  readonly steps: ReadonlyArray<Step>
  /** Runs the plan; `request.model` is replaced by each step's model. */
  readonly complete: (request: LlmRequest) => Effect.Effect<LlmResponse, LlmError | AcceptedForLater, R>
  /** The plan for a stream; it moves on only before the first chunk. */
  readonly stream: (request: LlmRequest) => Stream.Stream<StreamChunk, LlmError | AcceptedForLater, R>
}

interface Failure {
  readonly from: string
  readonly reason: string
  readonly error: LlmError
}

/** Constraints accumulated over a run: what a later step must offer to be worth trying. */
/** What one walk through the steps learned so far, and its request. */
class Needs {
  minWindow = 0
  exhausted: Set<string> | undefined = undefined
  /** The attempts of the steps moved on from (none until the first move), and the last report taken in. */
  moved: Array<CallReports.AttemptReport> | undefined = undefined
  taken: CallReports.Report | undefined = undefined
  readonly request: LlmRequest
  constructor(request: LlmRequest) {
    this.request = request
  }
}

type Degraded =
  { readonly _tag: "Answer"; readonly response: LlmResponse } | { readonly _tag: "Next"; readonly failure: Failure }

class StepFailed {
  readonly index: number
  readonly error: LlmError
  constructor(index: number, error: LlmError) {
    this.index = index
    this.error = error
  }
}

type Services = ResponseCache | LaterQueue
type Outcome = Effect.Effect<LlmResponse, LlmError | AcceptedForLater, Services>
type Chunks = Stream.Stream<StreamChunk, LlmError | AcceptedForLater, Services>

/** The request's input tokens, by the `TokenEstimator` in context (what a hedge weighs its cost with). */
const inputTokensOf = (fiber: Fiber.Fiber<unknown, unknown>, request: LlmRequest): number =>
  fiber.getRef(TokenEstimator).estimate(request).inputTokens

const staticResponse = (text: string, model: string): LlmResponse => ({
  text,
  finishReason: "stop",
  usage: { inputTokens: 0, outputTokens: 0 },
  provider: "fallback:static",
  model
})

const responseChunks = (response: LlmResponse): Array<StreamChunk> => [
  { _tag: "TextDelta", text: response.text },
  {
    _tag: "Finish",
    finishReason: response.finishReason,
    usage: response.usage,
    provider: response.provider,
    model: response.model
  }
]

/**
 * Validates `steps` into a plan: at least one step, the first a provider step, degraded steps only after
 * every provider step, `moveOn` tags that exist, positive context windows. `circuit` (e.g. the
 * `CircuitBreaker`) lets the plan skip a step whose circuit is open without calling it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { LlmProvider } from "@llm-resilience/core"
 * import { FallbackPlan } from "@llm-resilience/core"
 *
 * declare const openai: LlmProvider.LlmProvider["Service"]
 * declare const anthropic: LlmProvider.LlmProvider["Service"]
 *
 * const program = Effect.gen(function*() {
 *   const plan = yield* FallbackPlan.make([
 *     FallbackPlan.step(openai, { model: "gpt-5.4-mini", contextWindow: 128_000 }),
 *     FallbackPlan.step(anthropic, { model: "claude-sonnet-4-6", contextWindow: 200_000 }),
 *     FallbackPlan.staticAnswer("We are busy; please retry shortly.")
 *   ])
 *   return yield* plan.complete({ model: "default", messages: [{ role: "user", content: "Hi" }] })
 * })
 * ```
 * @since 0.1.0
 */
export const make = <const S extends ReadonlyArray<Step>>(
  steps: S,
  options: { readonly circuit?: CircuitCheck | undefined } = {}
): Effect.Effect<FallbackPlan<StepServices<S[number]>>, InvalidPlan> =>
  Effect.suspend(() => {
    const invalid = (field: string, issue: string) => Effect.fail(new InvalidPlan({ field, issue }))
    if (steps.length === 0) return invalid("steps", "must hold at least one step")
    if (steps[0]._tag !== "Provider") return invalid("steps[0]", "must be a provider step")
    const known = new Set<string>(
      LlmErrors.fallbackTags.concat([
        "BadRequest",
        "Authentication",
        "PermissionDenied",
        "ModelNotFound",
        "ContentFiltered",
        "BudgetExceeded",
        "TurnLimitExceeded",
        "LoopDetected"
      ])
    )
    let degradedSeen = false
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i]
      if (s._tag !== "Provider") {
        degradedSeen = true
        continue
      }
      if (degradedSeen) return invalid(`steps[${i}]`, "is a provider step after a degraded step")
      for (const tag of s.moveOn) {
        if (!known.has(tag)) return invalid(`steps[${i}].moveOn`, `names an unknown error tag: ${tag}`)
      }
      if (s.contextWindow !== undefined && !(s.contextWindow > 0)) {
        return invalid(`steps[${i}].contextWindow`, "must be a positive number of tokens")
      }
    }
    return Effect.succeed(makePlan(steps, options.circuit) as FallbackPlan<StepServices<S[number]>>)
  })

const makePlan = (steps: ReadonlyArray<Step>, circuit: CircuitCheck | undefined): FallbackPlan<Services> => {
  const activate = (failure: Failure, to: string) =>
    Effect.andThen(
      Effect.andThen(
        Metric.update(tagged(fallbackActivations, { from: failure.from, to, reason: failure.reason }), 1),
        CallReports.emit(() => ({ _tag: "FallbackMoved", from: failure.from, to, reason: failure.reason }))
      ),
      Effect.logWarning("fallback activated").pipe(
        Effect.annotateLogs({ "fallback.from": failure.from, "fallback.to": to, "fallback.reason": failure.reason })
      )
    )

  /** Whether `s` can help after `failure`, given what earlier failures ruled out. */
  const eligible = (s: Step, needs: Needs): boolean => {
    if (s._tag !== "Provider") return true
    if (needs.minWindow > 0 && s.contextWindow !== undefined && s.contextWindow <= needs.minWindow) return false
    if (needs.exhausted?.has(s.provider.name)) return false
    return true
  }

  const learn = (needs: Needs, s: ProviderStep, error: LlmError) => {
    if (error._tag === "ContextLengthExceeded") {
      needs.minWindow = Math.max(needs.minWindow, s.contextWindow ?? 0)
    } else if (error._tag === "QuotaExhausted") {
      if (needs.exhausted === undefined) needs.exhausted = new Set()
      needs.exhausted.add(s.provider.name)
    }
  }

  const nextEligible = (from: number, needs: Needs): number => {
    for (let j = from; j < steps.length; j++) if (eligible(steps[j], needs)) return j
    return -1
  }

  const circuitOpen = (s: ProviderStep): Effect.Effect<Option.Option<CircuitOpen>> =>
    circuit === undefined
      ? Effect.succeedNone
      : Effect.match(circuit.check(s.key), { onFailure: Option.some, onSuccess: () => Option.none() })

  /** The next provider step after `j` a hedge could race, if it is eligible and its circuit admits. */
  const hedgePartner = (j: number, needs: Needs): number => {
    const k = nextEligible(j + 1, needs)
    return k !== -1 && steps[k]._tag === "Provider" ? k : -1
  }

  /** Runs a degraded step: an answer, or the failure to move on with (a cache miss, a full queue). */
  const degraded = (
    s: StaticStep | CachedStep | LaterStep,
    failure: Failure,
    request: LlmRequest
  ): Effect.Effect<Degraded, AcceptedForLater, Services> => {
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

  // ------------------------------------------------------------------ complete

  // The walk's functions take the walk's state (`w`) instead of closing over it: a call in flight keeps that
  // one object and the handler of its current step, not a closure per function of the walk.
  const call = (w: Needs, j: number) => {
    const s = steps[j] as ProviderStep
    const request = w.request
    return s.provider.complete(s.model === request.model ? request : { ...request, model: s.model })
  }

  const onError = (w: Needs, j: number, error: LlmError): Outcome => {
    const s = steps[j] as ProviderStep
    if (!s.moveOn.has(error._tag)) return Effect.fail(error)
    learn(w, s, error)
    return moved(w, s, error, runFrom(w, j + 1, { from: s.label, reason: error._tag, error }))
  }

  /** `Effect.catch`'s rule, in the one handler a step in flight keeps: a failure (no defect) moves on. */
  const onCause = (w: Needs, j: number, cause: Cause.Cause<LlmError>): Outcome => {
    if (Cause.hasDies(cause)) return Effect.failCause(cause)
    const error = Cause.findErrorOption(cause)
    return error._tag === "Some" ? onError(w, j, error.value) : Effect.failCause(cause)
  }

  const attempt = (w: Needs, j: number): Outcome => {
    const s = steps[j] as ProviderStep
    const k = s.hedge === undefined ? -1 : hedgePartner(j, w)
    if (k === -1) return Effect.catchCause(call(w, j), (cause) => onCause(w, j, cause))
    const partner = steps[k] as ProviderStep
    const hedged = Effect.withFiber((fiber) =>
      s.hedge!.race(
        Effect.mapError(call(w, j), (e) => new StepFailed(j, e)),
        Effect.flatMap(circuitOpen(partner), (open) =>
          Option.isSome(open)
            ? Effect.fail(new StepFailed(k, open.value))
            : Effect.mapError(call(w, k), (e) => new StepFailed(k, e))
        ),
        { primary: s.label, hedge: partner.label, inputTokens: inputTokensOf(fiber, w.request) }
      )
    )
    return Effect.catch(hedged, (f) => {
      const failed = steps[f.index] as ProviderStep
      if (!failed.moveOn.has(f.error._tag)) return Effect.fail(f.error)
      learn(w, failed, f.error)
      return moved(
        w,
        failed,
        f.error,
        runFrom(w, Math.max(j, k) + 1, { from: failed.label, reason: f.error._tag, error: f.error })
      )
    })
  }

  const runProvider = (w: Needs, j: number): Outcome => {
    if (circuit === undefined) return attempt(w, j)
    return Effect.flatMap(circuitOpen(steps[j] as ProviderStep), (open) =>
      Option.isSome(open) ? onError(w, j, open.value) : attempt(w, j)
    )
  }

  const runFrom = (w: Needs, from: number, failure: Failure): Outcome => {
    const j = nextEligible(from, w)
    if (j === -1) return Effect.fail(failure.error)
    const s = steps[j]
    return Effect.andThen(activate(failure, s.label), runStep(w, j, failure))
  }

  const runStep = (w: Needs, j: number, failure: Failure): Outcome => {
    const s = steps[j]
    if (s._tag === "Provider") return runProvider(w, j)
    return Effect.flatMap(degraded(s, failure, w.request), (r) =>
      r._tag === "Answer" ? Effect.succeed(r.response) : runFrom(w, j + 1, r.failure)
    )
  }

  /**
   * Takes the attempts of step `s`, which failed with `error`, into the walk's report (its last attempt moved
   * on); the first move also wraps what follows so that the answer or the final error gets the whole report.
   */
  const moved = (w: Needs, s: ProviderStep, error: LlmError, rest: Outcome): Outcome => {
    const first = w.moved === undefined
    const attempts = (w.moved ??= [])
    const report = CallReports.of(error)
    w.taken = report
    const own = report?.attempts ?? [attemptReport(s.key, error._tag, 0, "fallback")]
    for (let i = 0; i < own.length - 1; i++) attempts.push(own[i])
    const last = own[own.length - 1]
    if (last !== undefined) attempts.push({ ...last, next: "fallback", reason: error._tag })
    if (!first) return rest
    return Effect.mapBoth(rest, {
      onSuccess: (response) => {
        const answeredBy = response.report?.answeredBy ?? `${response.provider}/${response.model}`
        const own = response.report?.attempts ?? []
        return { ...response, report: reportOf(attempts.concat(own), answeredBy) }
      },
      onFailure: (e) => {
        const own = CallReports.of(e)
        return CallReports.attach(
          e,
          reportOf(own === undefined || own === w.taken ? attempts : attempts.concat(own.attempts), undefined)
        )
      }
    })
  }

  // suspended: what a frame around the call keeps of it while in flight is this one effect, not the first step's
  const complete = (request: LlmRequest) => Effect.suspend(() => runProvider(new Needs(request), 0))

  // ------------------------------------------------------------------ stream

  const stream = (request: LlmRequest): Chunks =>
    Stream.suspend(() => {
      const needs = new Needs(request)
      let delivered = false
      const open = (j: number) => {
        const s = steps[j] as ProviderStep
        return s.provider.stream(s.model === request.model ? request : { ...request, model: s.model })
      }
      const tagged = (j: number) => Stream.mapError(open(j), (e) => new StepFailed(j, e))

      const onFailure = (f: StepFailed, resumeAt: number): Chunks => {
        const s = steps[f.index] as ProviderStep
        if (delivered || !s.moveOn.has(f.error._tag)) return Stream.fail(f.error)
        learn(needs, s, f.error)
        return fromStep(resumeAt, { from: s.label, reason: f.error._tag, error: f.error })
      }

      const providerStream = (j: number): Chunks => {
        const s = steps[j] as ProviderStep
        const k = s.hedge === undefined ? -1 : hedgePartner(j, needs)
        const body =
          k === -1
            ? Stream.catch(tagged(j), (f) => onFailure(f, j + 1))
            : Stream.catch(
                Stream.unwrap(
                  Effect.withFiber((fiber) =>
                    Effect.succeed(
                      s.hedge!.raceStream(tagged(j), tagged(k), {
                        primary: s.label,
                        hedge: (steps[k] as ProviderStep).label,
                        inputTokens: inputTokensOf(fiber, request)
                      })
                    )
                  )
                ),
                (f) => onFailure(f, k + 1)
              )
        const guarded = Stream.mapArray(body, (chunks) => {
          delivered = true
          return chunks
        })
        if (circuit === undefined) return guarded
        return Stream.unwrap(
          Effect.map(circuitOpen(s), (o) => (Option.isSome(o) ? onFailure(new StepFailed(j, o.value), j + 1) : guarded))
        )
      }

      const fromStep = (from: number, failure: Failure): Chunks => {
        const j = nextEligible(from, needs)
        if (j === -1) return Stream.fail(failure.error)
        const s = steps[j]
        const body: Chunks =
          s._tag === "Provider"
            ? providerStream(j)
            : Stream.unwrap(
                Effect.map(degraded(s, failure, request), (r) =>
                  r._tag === "Answer" ? Stream.fromIterable(responseChunks(r.response)) : fromStep(j + 1, r.failure)
                )
              )
        return Stream.concat(Stream.fromEffectDrain(activate(failure, s.label)), body)
      }
      return providerStream(0)
    })

  return { steps, complete, stream }
}

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
 * step; if the step fails before its hedge started, the plan moves on as usual, to the step it hedges into.
 *
 * Streams walk the same steps, by the same rules. After a chunk has been delivered, what a failure does is
 * the plan's {@link MidStream} mode: returned as is (`fail`, the default), carried on by the next step
 * without duplicating or splicing text (`continue`), or never seen past a step's `Finish` (`buffer`).
 *
 * @since 0.1.0
 */
import { Effect, Metric, Schema, type Stream } from "effect"
import type { Hedge } from "./Hedge.ts"
import * as LlmErrors from "./LlmError.ts"
import type { LlmError } from "./LlmError.ts"
import type { CircuitOpen } from "./LlmError.ts"
import type { LlmProvider } from "./LlmProvider.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse, StreamChunk } from "./LlmResponse.ts"
import type { LaterQueue, ResponseCache } from "./internal/degraded.ts"
import * as Walk from "./internal/fallbackWalk.ts"
import type { Mode } from "./internal/resume.ts"

export {
  /** @since 0.1.0 */
  type Accepted,
  /** @since 0.1.0 */
  LaterQueue,
  /** @since 0.1.0 */
  LaterQueueFull,
  /** @since 0.1.0 */
  layerLaterQueueMemory,
  /** @since 0.1.0 */
  ResponseCache
} from "./internal/degraded.ts"

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
  /** The model accepts assistant prefill: a stream carried on by this step continues the delivered text. */
  readonly prefill: boolean
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
 * `ContextLengthExceeded` is routed by; `hedge` hedges this step into the next eligible provider step;
 * `prefill` declares that the model continues a trailing assistant message (see {@link MidStream}).
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
    readonly prefill?: boolean | undefined
  }
): ProviderStep => ({
  _tag: "Provider",
  label: options.label ?? `${provider.name}/${options.model}`,
  key: `${provider.name}/${options.model}`,
  provider: options.policy === undefined ? provider : options.policy(provider),
  model: options.model,
  contextWindow: options.contextWindow,
  moveOn: new Set(options.moveOn ?? LlmErrors.fallbackTags),
  hedge: options.hedge,
  prefill: options.prefill === true
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
  /** The plan for a stream; after its first chunk it moves on as its {@link MidStream} mode says. */
  readonly stream: (request: LlmRequest) => Stream.Stream<StreamChunk, LlmError | AcceptedForLater, R>
}

/**
 * What a stream does when a step fails after its first chunk:
 *
 * - `"fail"` (default): the failure reaches the caller, as it is.
 * - `"continue"`: the next step carries on with the answer: a step declared with `prefill: true` is sent
 *   the delivered text as the end of the assistant's turn and its chunks are appended; any other step is
 *   asked again and its answer is compared with what was delivered, the matching prefix skipped, a
 *   divergence ending the stream with `StreamDiverged` (carrying the delivered text). A prefilled step that
 *   answers `BadRequest` before its first chunk is asked again without prefill. Degraded steps are not
 *   used once text was delivered.
 * - `"buffer"`: each step's chunks are held until its `Finish`, so the plan moves on as for `complete`.
 *
 * @example
 * ```ts
 * import type { FallbackPlan } from "@llm-resilience/core"
 * const mode: FallbackPlan.MidStream = "continue"
 * ```
 * @since 0.1.0
 */
export type MidStream = Mode

/**
 * The options of {@link make}: `circuit` (e.g. the `CircuitBreaker`) lets the plan skip a step whose
 * circuit is open without calling it; `midStream` (default `"fail"`) is what a stream does after a failure
 * past its first chunk ({@link MidStream}).
 *
 * @example
 * ```ts
 * import type { FallbackPlan } from "@llm-resilience/core"
 * const options: FallbackPlan.Options = { midStream: "continue" }
 * ```
 * @since 0.1.0
 */
export interface Options {
  readonly circuit?: CircuitCheck | undefined
  readonly midStream?: MidStream | undefined
}

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
  options: Options = {}
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
        "LoopDetected",
        "StreamDiverged"
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
    return Effect.succeed(makePlan(steps, options) as FallbackPlan<StepServices<S[number]>>)
  })

const makePlan = (steps: ReadonlyArray<Step>, options: Options): FallbackPlan<ResponseCache | LaterQueue> => {
  const walk: Walk.Options = {
    steps,
    circuit: options.circuit,
    midStream: options.midStream ?? "fail",
    activations: fallbackActivations
  }
  return { steps, complete: Walk.complete(walk), stream: Walk.stream(walk) }
}

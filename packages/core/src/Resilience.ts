/**
 * `Resilience`: every stage of the toolkit composed into one resilient `LlmProvider`, from one configuration
 * object validated by Schema.
 *
 * The order of the stages is fixed by the flow of a call (docs/architecture.md):
 *
 * ```
 * agent guard -> fallback plan -> retry (budget, deadline) -> circuit breaker -> admission
 *             -> spend guard -> timeouts -> raw provider
 * ```
 *
 * - the agent guard counts one turn per caller request (never per retry or fallback step);
 * - the fallback plan of the request's path tries its steps in order (a step whose breaker is open is
 *   skipped without a call; hedging races a step with the next);
 * - each provider step retries at this one layer (inner retry stages pass errors through), with the path's
 *   retry profile, a retry budget shared per `provider/model` key and the profile's deadline;
 * - the breaker records every attempt (outcome and latency, slow calls while still in flight);
 * - admission reserves requests and tokens per key and reconciles them with the reported usage;
 * - the spend guard checks budgets before and charges the reported usage after every attempt;
 * - timeouts bound each attempt (total; first token and idle for streams) and detect truncated streams.
 *
 * Start with one line: `Resilience.layer()` turns the `LlmProvider` in context into a resilient one with
 * documented defaults. Replace any one stage by providing its service (`CircuitBreaker`, `Admission`,
 * `SpendGuard`, `AgentGuard`) to the layer: the provided one is used instead of one built from the
 * configuration, and the other stages are untouched. Add stages of your own (see `Stage`) with
 * {@link CustomStages}: they run inside the spend guard, around the timeouts.
 *
 * Every attempt runs its stages (breaker, admission, spend guard, your stages, timeouts) as one frame
 * (`Stage`), whichever stages are configured or provided; a stream's attempt runs the same stages around
 * the stream (the timeouts bound the stream itself: first token, idle, total). A path's `midStream` mode
 * decides what a stream does after a failure past its first chunk (`fail`, `continue`, `buffer`), and a
 * timeout of an attempt that received nothing moves on to the next provider step instead of retrying the
 * silent route (`onSilentTimeout`).
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Option, type Scope, Stream } from "effect"
import * as Admission from "./Admission.ts"
import * as AgentGuard from "./AgentGuard.ts"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import * as FallbackPlan from "./FallbackPlan.ts"
import * as Hedge from "./Hedge.ts"
import type { LlmError } from "./LlmError.ts"
import { LlmProvider } from "./LlmProvider.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse, StreamChunk } from "./LlmResponse.ts"
import * as Retry from "./Retry.ts"
import * as SpendGuard from "./SpendGuard.ts"
import * as Telemetry from "./Telemetry.ts"
import type { Stage } from "./Stage.ts"
import * as config from "./internal/config.ts"
import * as Attempts from "./internal/attempt.ts"
import { memo } from "./internal/keyedState.ts"
import { keyLabel, SeriesCache } from "./internal/metrics.ts"
import * as Pipeline from "./internal/pipeline.ts"
import * as Resume from "./internal/resume.ts"
import * as Retrying from "./internal/retry.ts"

export {
  /** @since 0.1.0 */
  Config,
  /** @since 0.1.0 */
  defaults,
  /** @since 0.1.0 */
  InvalidConfig,
  /** @since 0.1.0 */
  invalidConfigAt,
  /** @since 0.1.0 */
  ModelConfig,
  /** @since 0.1.0 */
  PathConfig,
  /** @since 0.1.0 */
  StepConfig,
  /** @since 0.1.0 */
  StoreConfig,
  /** @since 0.1.0 */
  Stores,
  /** @since 0.1.0 */
  type StoresShape
} from "./internal/config.ts"

// ---------------------------------------------------------------------------------------------------------
// the service
// ---------------------------------------------------------------------------------------------------------

/**
 * The stages a resilient provider was built from, for inspection and manual control (breaker state,
 * admission stats, spend so far).
 *
 * @since 0.1.0
 */
export interface Stages {
  readonly breaker: CircuitBreaker.CircuitBreaker
  readonly admission: Admission.AdmissionShape
  readonly spend: SpendGuard.SpendGuard | undefined
  readonly agent: AgentGuard.AgentGuard
}

/**
 * The resilient provider with the stages it was built from.
 *
 * @since 0.1.0
 */
export class Resilience extends Context.Service<
  Resilience,
  {
    readonly provider: LlmProvider["Service"]
    readonly stages: Stages
  }
>()("@llm-resilience/core/Resilience") {}

/**
 * Stages of your own, run by every attempt inside the spend guard and around the timeouts (see `Stage`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Resilience, type Stage } from "@llm-resilience/core"
 *
 * const audit: Stage.Stage<number> = { name: "audit", enter: (a) => a.startMs, exit: () => undefined }
 * const withAudit = Effect.provideService(Resilience.CustomStages, [audit])
 * ```
 * @since 0.1.0
 */
export const CustomStages = Context.Reference<ReadonlyArray<Stage<unknown>>>(
  "@llm-resilience/core/Resilience/CustomStages",
  {
    defaultValue: () => []
  }
)

/** What one path resolves to at construction. */
interface PathPlan {
  readonly complete: (request: LlmRequest) => Effect.Effect<LlmResponse, LlmError>
  readonly stream: (request: LlmRequest) => Stream.Stream<StreamChunk, LlmError>
}

/**
 * Builds the resilient provider from raw providers (by their `name`) and a configuration. Stages found in
 * the context (`CircuitBreaker`, `Admission`, `SpendGuard`, `AgentGuard`) are used as they are; the others
 * are built from the configuration, over the stores found in the context (an `AdmissionStore`, e.g. the
 * shared ones of `RedisStore.layer` for a configuration with `store`), else in memory. Fails with {@link InvalidConfig} naming the field when the
 * configuration is invalid.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmProvider, Resilience } from "@llm-resilience/core"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const raw = yield* LlmProvider.LlmProvider
 *   const { provider } = yield* Resilience.make({ paths: { chat: { retry: "interactive" } } }, [raw])
 *   return yield* provider.complete({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }], metadata: { path: "chat" } })
 * }))
 * ```
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (
  configuration: config.Config,
  providers: ReadonlyArray<LlmProvider["Service"]>
): Effect.fn.Return<Resilience["Service"], config.InvalidConfig, Scope.Scope> {
  if (providers.length === 0) return yield* config.invalid("providers", "at least one provider is required")
  const byName = new Map<string, LlmProvider["Service"]>()
  for (const p of providers) byName.set(p.name, p)
  const atField = (field: string) => Effect.mapError(config.issueAt(field))
  const { c, breaker, admission, spend, agent, budget, defaultPath, pathConfigs, profiles, timeouts, knownModels } =
    yield* config.build(
      configuration,
      providers.map((p) => p.name)
    )

  // Metric series are cached by this instance: they are released with it.
  const series = new SeriesCache()

  // The stages of every attempt, outermost first. The gate refuses an open circuit before admission can
  // queue the attempt; the breaker itself records the attempt inside admission, so that time spent waiting
  // in the admission queue never counts as a slow call.
  const customStages = yield* CustomStages
  const stages: ReadonlyArray<Stage<unknown>> = [
    breaker.gate,
    admission.stage,
    breaker.stage,
    ...(spend === undefined ? [] : [spend.stage]),
    ...customStages,
    timeouts.stage
  ]

  // A stream's attempt runs the same stages, but for the total timeout: `Timeouts.stream` bounds the stream
  // itself (first token, idle, total), as it is pulled.
  const streamStages = stages.slice(0, -1)

  /**
   * One provider step: the attempt's stages with retry, and the call's telemetry when `observe` names it.
   * `failOver`: a silent timeout gives up at once (a later provider step will be tried).
   */
  const guarded = (
    raw: LlmProvider["Service"],
    profile: Retry.Profile | undefined,
    observe: Telemetry.Labels | undefined,
    path: { readonly midStream: Resume.Mode; readonly failOver: boolean }
  ): LlmProvider["Service"] => {
    const timed = timeouts.wrap(raw)
    const attempt = (request: LlmRequest) =>
      Attempts.runStream(streamStages, request, `${raw.name}/${request.model}`, timed.stream(request))
    // the retry of each model's streams, built once per model (as `Pipeline.make` does for calls)
    const retryOf = memo((key): ReturnType<typeof Retrying.retryStreamWith> =>
      profile === undefined
        ? (self) => self
        : Retrying.retryStreamWith(Retrying.configFor(profile, budget, key, keyLabel(knownModels, key), path.failOver))
    )
    const stream = (request: LlmRequest): Stream.Stream<StreamChunk, LlmError> => {
      const key = `${raw.name}/${request.model}`
      return Resume.withMode(path.midStream, attempt, retryOf(key), request, c.models?.[key]?.prefill === true)
    }
    return {
      name: raw.name,
      complete: Pipeline.make({
        provider: raw,
        callStages: observe === undefined ? [] : [agent.stage],
        stages,
        profile,
        budget,
        observe,
        models: knownModels,
        failOverOnSilence: path.failOver
      }),
      stream
    }
  }

  const buildPath = Effect.fnUntraced(function* (name: string, p: config.PathDecoded) {
    const field = `paths.${name}`
    const profile = profiles.get(name)
    const steps = p.fallback ?? c.fallback
    const stepsField = p.fallback === undefined ? "fallback" : `${field}.fallback`
    const labels: Telemetry.Labels = { path: name, models: knownModels, series }
    const observeStream = (request: LlmRequest, self: Stream.Stream<StreamChunk, LlmError>) =>
      Telemetry.observeStream(request, labels)(Stream.unwrap(Effect.as(agent.turn(request), self)))
    const midStream = p.midStream ?? "fail"
    const silence = p.onSilentTimeout ?? "next-step"
    if (steps === undefined) {
      // No plan: the request's own model on the first provider, observed by the step itself.
      const only = guarded(providers[0], profile, labels, { midStream, failOver: false })
      return {
        complete: only.complete,
        stream: (request: LlmRequest) => observeStream(request, only.stream(request))
      } satisfies PathPlan
    }
    const hedge = p.hedge === undefined ? undefined : yield* Hedge.make(p.hedge).pipe(atField(`${field}.hedge`))
    const built: Array<FallbackPlan.Step> = []
    for (let i = 0; i < steps.length; i++) {
      const s: config.StepDecoded = steps[i]
      if ("provider" in s) {
        const raw = byName.get(s.provider)
        if (raw === undefined) {
          return yield* config.invalid(`${stepsField}[${i}].provider`, `no provider named ${s.provider}`)
        }
        // a silent timeout moves on to the next step only when a later provider step exists
        const failOver = silence === "next-step" && steps.slice(i + 1).some((later) => "provider" in later)
        const model = c.models?.[`${s.provider}/${s.model}`]
        built.push(
          FallbackPlan.step(guarded(raw, profile, undefined, { midStream, failOver }), {
            model: s.model,
            contextWindow: model?.contextWindow,
            prefill: model?.prefill,
            hedge
          })
        )
      } else if ("staticAnswer" in s) built.push(FallbackPlan.staticAnswer(s.staticAnswer))
      else if ("cached" in s) {
        if (Option.isNone(yield* Effect.serviceOption(FallbackPlan.ResponseCache))) {
          return yield* config.invalid(
            `${stepsField}[${i}]`,
            "a cached step needs a FallbackPlan.ResponseCache in the context"
          )
        }
        built.push(FallbackPlan.cached)
      } else built.push(FallbackPlan.acceptForLater)
    }
    const plan = yield* FallbackPlan.make(built, { circuit: breaker, midStream }).pipe(
      Effect.mapError(
        (e) => new config.InvalidConfig({ field: `${stepsField}${e.field.replace(/^steps/, "")}`, issue: e.issue })
      )
    )
    // an accept-for-later step uses the LaterQueue in the context, else an in-memory one; a cached step, the
    // ResponseCache in the context (a plan without either needs no services of its own)
    const degraded = steps.some((s) => !("provider" in s) && !("staticAnswer" in s))
    const laterQueue = yield* Effect.serviceOption(FallbackPlan.LaterQueue)
    const services = Option.isSome(laterQueue)
      ? yield* Effect.context<never>()
      : Context.merge(
          yield* Effect.context<never>(),
          yield* Layer.build(FallbackPlan.layerLaterQueueMemory()).pipe(atField(stepsField))
        )
    // (a stream's context is provided on each of its pulls: never without a reason)
    const provide = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E> =>
      degraded ? Effect.provideContext(self, services as Context.Context<R>) : (self as Effect.Effect<A, E>)
    const provideStream = <A, E, R>(self: Stream.Stream<A, E, R>): Stream.Stream<A, E> =>
      degraded ? Stream.provideContext(self, services as Context.Context<R>) : (self as Stream.Stream<A, E>)
    return {
      complete: (request: LlmRequest) =>
        Telemetry.observeCall(request, labels)(agent.protect(request)(provide(plan.complete(request)))),
      stream: (request: LlmRequest) => observeStream(request, provideStream(plan.stream(request)))
    } satisfies PathPlan
  })

  const paths = new Map<string, PathPlan>()
  for (const [name, p] of Object.entries(pathConfigs)) paths.set(name, yield* buildPath(name, p))
  const fallbackPath = paths.get(defaultPath)!
  const pathOf = (request: LlmRequest): PathPlan => {
    const name = request.metadata?.path
    return (name === undefined ? undefined : paths.get(name)) ?? fallbackPath
  }

  const provider: LlmProvider["Service"] = {
    name: providers.map((p) => p.name).join("+"),
    complete: (request) => pathOf(request).complete(request),
    stream: (request) => pathOf(request).stream(request)
  }
  return { provider, stages: { breaker, admission, spend, agent } }
})

/**
 * A layer providing the resilient `LlmProvider` (and {@link Resilience}, for inspection). With no provider
 * layers it wraps the `LlmProvider` already in context: `Resilience.layer()` is the one line that makes an
 * existing provider resilient with the {@link defaults}. With provider layers, each is built and the
 * configuration's fallback steps name them by `provider` (their `name`).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { Resilience } from "@llm-resilience/core"
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * // One line of defaults around an existing provider:
 * const Live = Resilience.layer().pipe(Layer.provide(FakeProvider.layer()))
 * ```
 * @since 0.1.0
 */
export const layer: {
  /** Wraps the `LlmProvider` already in context. */
  (config?: config.Config): Layer.Layer<LlmProvider | Resilience, config.InvalidConfig, LlmProvider>
  /** Builds each provider layer; fallback steps name them by `provider`. */
  <E, R>(
    config: config.Config,
    first: Layer.Layer<LlmProvider, E, R>,
    ...rest: ReadonlyArray<Layer.Layer<LlmProvider, E, R>>
  ): Layer.Layer<LlmProvider | Resilience, config.InvalidConfig | E, R>
} = (
  configuration: config.Config = config.defaults,
  ...providers: ReadonlyArray<Layer.Layer<LlmProvider, unknown, unknown>>
) =>
  Layer.effectContext(
    Effect.gen(function* () {
      const raws: Array<LlmProvider["Service"]> = []
      if (providers.length === 0) raws.push(yield* LlmProvider)
      for (const l of providers) {
        const context = yield* Layer.build(l)
        raws.push(Context.get(context, LlmProvider))
      }
      const built = yield* make(configuration, raws)
      return Context.make(LlmProvider, built.provider).pipe(Context.add(Resilience, built))
    })
  ) as never

/**
 * Completes a request through the resilient provider in context.
 *
 * @example
 * ```ts
 * import { Resilience } from "@llm-resilience/core"
 * const answer = Resilience.call({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] })
 * ```
 * @since 0.1.0
 */
export const call = (request: LlmRequest): Effect.Effect<LlmResponse, LlmError, LlmProvider> =>
  Effect.flatMap(LlmProvider, (p) => p.complete(request))

/**
 * Streams a request through the resilient provider in context.
 *
 * @example
 * ```ts
 * import { Resilience } from "@llm-resilience/core"
 * const chunks = Resilience.stream({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] })
 * ```
 * @since 0.1.0
 */
export const stream = (request: LlmRequest): Stream.Stream<StreamChunk, LlmError, LlmProvider> =>
  Stream.unwrap(Effect.map(LlmProvider, (p) => p.stream(request)))

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
 * configuration, and the other stages are untouched.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Exit, Layer, Option, Schedule, Schema, type Scope, Stream } from "effect"
import * as Admission from "./Admission.ts"
import * as AdmissionStore from "./AdmissionStore.ts"
import * as AgentGuard from "./AgentGuard.ts"
import * as CircuitBreaker from "./CircuitBreaker.ts"
import * as FallbackPlan from "./FallbackPlan.ts"
import * as Hedge from "./Hedge.ts"
import type { LlmError } from "./LlmError.ts"
import { LlmProvider } from "./LlmProvider.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse, StreamChunk } from "./LlmResponse.ts"
import * as PriceTable from "./PriceTable.ts"
import * as Retry from "./Retry.ts"
import * as RetryBudget from "./RetryBudget.ts"
import * as SpendGuard from "./SpendGuard.ts"
import * as Telemetry from "./Telemetry.ts"
import * as Timeouts from "./Timeouts.ts"
import { FastPath } from "./internal/fastPath.ts"
import * as Step from "./internal/step.ts"

// ---------------------------------------------------------------------------------------------------------
// configuration
// ---------------------------------------------------------------------------------------------------------

const Positive = Schema.Finite.check(Schema.isGreaterThan(0))
const NonNegative = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const Fraction = Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))

/**
 * Limits and facts of one `provider/model`.
 *
 * @since 0.1.0
 */
export const ModelConfig = Schema.Struct({
  requestsPerMinute: Schema.optional(PositiveInt),
  tokensPerMinute: Schema.optional(Positive),
  inputTokensPerMinute: Schema.optional(Positive),
  outputTokensPerMinute: Schema.optional(Positive),
  /** Calls in flight at once (bulkhead). */
  maxConcurrency: Schema.optional(PositiveInt),
  /** Context window in tokens: a `ContextLengthExceeded` moves on only to a step with a larger one. */
  contextWindow: Schema.optional(PositiveInt)
})

/**
 * A retry profile: a built-in name, or a profile extending one (durations in milliseconds).
 *
 * @since 0.1.0
 */
export const RetryConfig = Schema.Union([
  Schema.Literals(["interactive", "background", "none"]),
  Schema.Struct({
    extends: Schema.optional(Schema.Literals(["interactive", "background"])),
    maxRetries: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 100 }))),
    jitter: Schema.optional(Schema.Literals(["none", "full", "equal", "decorrelated"])),
    baseMs: Schema.optional(NonNegative),
    capMs: Schema.optional(NonNegative),
    deadlineMs: Schema.optional(Positive),
    maxRetryAfterMs: Schema.optional(NonNegative)
  })
])

/**
 * One step of a fallback plan: a provider and model, or a degraded answer.
 *
 * @since 0.1.0
 */
export const StepConfig = Schema.Union([
  Schema.Struct({ provider: Schema.String, model: Schema.String }),
  Schema.Struct({ staticAnswer: Schema.String }),
  Schema.Struct({ cached: Schema.Literal(true) }),
  Schema.Struct({ acceptForLater: Schema.Literal(true) })
])

/**
 * The timeouts of a path, in milliseconds.
 *
 * @since 0.1.0
 */
export const TimeoutConfig = Schema.Struct({
  totalMs: Schema.optional(Positive),
  firstTokenMs: Schema.optional(Positive),
  idleMs: Schema.optional(Positive)
})

/**
 * How one path (a route or feature: `chat`, `summarize-batch` ...) is served.
 *
 * @since 0.1.0
 */
export const PathConfig = Schema.Struct({
  /** Retry profile. Default `interactive`. */
  retry: Schema.optional(RetryConfig),
  timeouts: Schema.optional(TimeoutConfig),
  /** Longest wait in the admission queue. */
  maxWaitMs: Schema.optional(NonNegative),
  /** Steps tried in order. Default: the top-level `fallback`, else the request's own model. */
  fallback: Schema.optional(Schema.Array(StepConfig)),
  /** Hedge each provider step into the next one after a delay. */
  hedge: Schema.optional(
    Schema.Struct({
      delayMs: Schema.optional(NonNegative),
      percentile: Schema.optional(Schema.Finite.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(100))),
      maxRatio: Schema.optional(Fraction),
      maxPerMinute: Schema.optional(NonNegativeInt)
    })
  )
})

/**
 * Circuit-breaker settings (durations in milliseconds).
 *
 * @since 0.1.0
 */
export const BreakerConfig = Schema.Struct({
  consecutiveFailures: Schema.optional(NonNegativeInt),
  failureRateThreshold: Schema.optional(Fraction),
  slowCallThresholdMs: Schema.optional(Positive),
  slowCallRateThreshold: Schema.optional(Fraction),
  windowMs: Schema.optional(Positive),
  minimumCalls: Schema.optional(PositiveInt),
  openDurationMs: Schema.optional(Positive),
  maxOpenDurationMs: Schema.optional(Positive),
  halfOpenProbes: Schema.optional(PositiveInt),
  probeTimeoutMs: Schema.optional(Positive),
  countRateLimited: Schema.optional(Schema.Boolean),
  mode: Schema.optional(Schema.Literals(["enforce", "metrics-only"]))
})

/**
 * The whole configuration. Every field is optional; see {@link defaults} for what an empty one means.
 *
 * @example
 * ```ts
 * import type { Resilience } from "@llm-resilience/core"
 * const config: Resilience.Config = {
 *   models: { "openai/gpt-5.4-mini": { requestsPerMinute: 500, tokensPerMinute: 200_000, contextWindow: 128_000 } },
 *   paths: {
 *     chat: { retry: "interactive", timeouts: { totalMs: 8_000, firstTokenMs: 3_000, idleMs: 5_000 } },
 *     batch: { retry: "background", maxWaitMs: 300_000 }
 *   },
 *   fallback: [
 *     { provider: "openai", model: "gpt-5.4-mini" },
 *     { provider: "anthropic", model: "claude-haiku-4-5" },
 *     { staticAnswer: "The assistant is busy; please try again shortly." }
 *   ],
 *   breaker: { failureRateThreshold: 0.2, windowMs: 60_000, slowCallThresholdMs: 3_000 }
 * }
 * ```
 * @since 0.1.0
 */
export const Config = Schema.Struct({
  /** Limits per `provider/model`. */
  models: Schema.optional(Schema.Record(Schema.String, ModelConfig)),
  /** Per-path settings; requests name their path in `metadata.path`. */
  paths: Schema.optional(Schema.Record(Schema.String, PathConfig)),
  /** The path of requests without one (or with an unknown one). Default `"default"`. */
  defaultPath: Schema.optional(Schema.String),
  /** The fallback plan of paths that do not set their own. */
  fallback: Schema.optional(Schema.Array(StepConfig)),
  breaker: Schema.optional(BreakerConfig),
  retryBudget: Schema.optional(
    Schema.Struct({
      ratio: Schema.optional(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 10 }))),
      windowMs: Schema.optional(Positive),
      minRetriesPerSecond: Schema.optional(NonNegative)
    })
  ),
  admission: Schema.optional(
    Schema.Struct({
      maxQueueLength: Schema.optional(NonNegativeInt),
      maxWaitMs: Schema.optional(NonNegative),
      agingMs: Schema.optional(NonNegative)
    })
  ),
  /** Prices per model (see `PriceTable`); without them no cost is accounted. */
  prices: Schema.optional(PriceTable.PriceTable),
  spend: Schema.optional(
    Schema.Struct({
      budgets: Schema.optional(
        Schema.Array(
          Schema.Struct({
            scope: Schema.Literals(["global", "key", "tenant", "conversation"]),
            limitUsd: Positive,
            windowMs: Schema.optional(Positive)
          })
        )
      ),
      expensiveRequestUsd: Schema.optional(Positive)
    })
  ),
  agent: Schema.optional(
    Schema.Struct({
      maxTurns: Schema.optional(PositiveInt),
      loopRepeats: Schema.optional(PositiveInt),
      loopWindowMs: Schema.optional(Positive)
    })
  )
})

/**
 * @since 0.1.0
 */
export type Config = typeof Config.Encoded

/**
 * The defaults an empty configuration means: the `interactive` retry profile, a breaker that opens at 50%
 * failures over 60 s (10 calls minimum) or 5 consecutive failures, a 10% retry budget with a floor of one
 * retry per second, the timeout defaults of `Timeouts`, no rate limits, no fallback, a 20-turn agent guard.
 *
 * @since 0.1.0
 */
export const defaults: Config = {}

/**
 * The configuration is invalid: `field` is the path of the offending field.
 *
 * @since 0.1.0
 */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  field: Schema.String,
  issue: Schema.String
}) {
  override get message(): string {
    return `invalid Resilience configuration at ${this.field}: ${this.issue}`
  }
}

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

type Decoded = typeof Config.Type
type PathDecoded = typeof PathConfig.Type
type StepDecoded = typeof StepConfig.Type

/** Turns a `SchemaError` into an {@link InvalidConfig} whose field is the path of the issue under `prefix`. */
const issueAt =
  (prefix: string | undefined) =>
  (error: Schema.SchemaError): InvalidConfig => {
    const text = error.message
    const at = /at \[(.*)\]\s*$/m.exec(text)
    const path =
      at === null
        ? undefined
        : at[1]
            .split("][")
            .map((segment, i) =>
              /^\d+$/.test(segment) ? `[${segment}]` : `${i === 0 ? "" : "."}${segment.replace(/"/g, "")}`
            )
            .join("")
    const field = prefix === undefined ? (path ?? "config") : path === undefined ? prefix : `${prefix}.${path}`
    return new InvalidConfig({ field, issue: text.split("\n")[0] })
  }

const invalid = (field: string, issue: string) => Effect.fail(new InvalidConfig({ field, issue }))

const breakerOptions = (b: typeof BreakerConfig.Type | undefined): CircuitBreaker.Options => {
  if (b === undefined) return {}
  const ms = (n: number | undefined) => (n === undefined ? undefined : `${n} millis`)
  return {
    consecutiveFailures: b.consecutiveFailures,
    failureRateThreshold: b.failureRateThreshold,
    slowCallThreshold: ms(b.slowCallThresholdMs),
    slowCallRateThreshold: b.slowCallRateThreshold,
    window: ms(b.windowMs),
    minimumCalls: b.minimumCalls,
    // the first opening lasts openDurationMs, each further consecutive one twice the last (up to the cap)
    openDuration: b.openDurationMs === undefined ? undefined : Schedule.exponential(Duration.millis(b.openDurationMs)),
    maxOpenDuration: ms(b.maxOpenDurationMs),
    halfOpenProbes: b.halfOpenProbes,
    probeTimeout: ms(b.probeTimeoutMs),
    countRateLimited: b.countRateLimited,
    mode: b.mode
  } as CircuitBreaker.Options
}

const retryProfile = (r: PathDecoded["retry"]): Effect.Effect<Retry.Profile | undefined, Schema.SchemaError> => {
  if (r === undefined || r === "interactive") return Effect.succeed(Retry.interactive)
  if (r === "background") return Effect.succeed(Retry.background)
  if (r === "none") return Effect.succeed(undefined)
  const ms = (n: number | undefined) => (n === undefined ? undefined : (`${n} millis` as const))
  return Retry.profile({
    extends: r.extends,
    maxRetries: r.maxRetries,
    jitter: r.jitter,
    base: ms(r.baseMs),
    cap: ms(r.capMs),
    deadline: ms(r.deadlineMs),
    maxRetryAfter: ms(r.maxRetryAfterMs)
  })
}

/** What one path resolves to at construction. */
interface PathPlan {
  readonly name: string
  /** The call as one step (a path without a fallback plan, stages built here): observed by the step itself. */
  readonly step: Step.Step | undefined
  readonly complete: (request: LlmRequest) => Effect.Effect<LlmResponse, LlmError | FallbackPlan.AcceptedForLater>
  readonly stream: (request: LlmRequest) => Stream.Stream<StreamChunk, LlmError | FallbackPlan.AcceptedForLater>
}

const outcomeOfExit = (failureTags: ReadonlySet<string>) => (exit: Exit.Exit<unknown, unknown>) => {
  if (Exit.isSuccess(exit)) return CircuitBreaker.success
  const error = Option.getOrUndefined(Exit.findErrorOption(exit))
  if (error === undefined) return CircuitBreaker.ignored
  const tag = (error as { readonly _tag?: string })._tag
  return tag !== undefined && failureTags.has(tag) ? CircuitBreaker.failure() : CircuitBreaker.ignored
}

/**
 * Builds the resilient provider from raw providers (by their `name`) and a configuration. Stages found in
 * the context (`CircuitBreaker`, `Admission`, `SpendGuard`, `AgentGuard`) are used as they are; the others
 * are built from the configuration. Fails with {@link InvalidConfig} naming the field when the
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
  config: Config,
  providers: ReadonlyArray<LlmProvider["Service"]>
): Effect.fn.Return<Resilience["Service"], InvalidConfig, Scope.Scope> {
  const c: Decoded = yield* Schema.decodeUnknownEffect(Config)(config ?? {}, { errors: "first" }).pipe(
    Effect.mapError(issueAt(undefined))
  )
  if (providers.length === 0) return yield* invalid("providers", "at least one provider is required")
  const byName = new Map<string, LlmProvider["Service"]>()
  for (const p of providers) byName.set(p.name, p)
  const atField = (field: string) => Effect.mapError(issueAt(field))

  // ---- shared stages: from the context when provided, else from the configuration
  const breaker = yield* Effect.serviceOption(CircuitBreaker.CircuitBreaker).pipe(
    Effect.flatMap(
      Option.match({
        onSome: Effect.succeed,
        onNone: () => CircuitBreaker.make(breakerOptions(c.breaker)).pipe(atField("breaker"))
      })
    )
  )
  const failureTags = new Set<string>(CircuitBreaker.defaultFailureTags)
  if (c.breaker?.countRateLimited === true) failureTags.add("RateLimited")
  const classifyExit = outcomeOfExit(failureTags)

  const keys: Record<string, Admission.KeyLimits> = {}
  for (const [key, m] of Object.entries(c.models ?? {})) {
    if (!key.includes("/")) return yield* invalid(`models.${key}`, "keys are provider/model")
    const { contextWindow: _, ...limits } = m
    keys[key] = limits
  }
  const maxWaitPaths: Record<string, { readonly maxWaitMs: number }> = {}
  for (const [name, p] of Object.entries(c.paths ?? {})) {
    if (p.maxWaitMs !== undefined) maxWaitPaths[name] = { maxWaitMs: p.maxWaitMs }
  }
  const admission = yield* Effect.serviceOption(Admission.Admission).pipe(
    Effect.flatMap(
      Option.match({
        onSome: Effect.succeed,
        onNone: () =>
          Admission.make({ ...c.admission, keys, paths: maxWaitPaths }).pipe(
            Effect.provide(AdmissionStore.layerMemory),
            atField("admission")
          )
      })
    )
  )
  if (c.spend !== undefined && c.prices === undefined) {
    return yield* invalid("spend", "spend budgets need `prices` to turn usage into cost")
  }
  const spend = yield* Effect.serviceOption(SpendGuard.SpendGuard).pipe(
    Effect.flatMap(
      Option.match({
        onSome: (s) => Effect.succeed<SpendGuard.SpendGuard | undefined>(s),
        onNone: () =>
          c.prices === undefined
            ? Effect.succeed(undefined)
            : SpendGuard.make({
                prices: c.prices,
                budgets: c.spend?.budgets?.map((b) => ({
                  scope: b.scope,
                  limitUsd: b.limitUsd,
                  window: b.windowMs === undefined ? undefined : (`${b.windowMs} millis` as const)
                })),
                expensiveRequestUsd: c.spend?.expensiveRequestUsd,
                breaker
              }).pipe(atField("spend"))
      })
    )
  )
  const agent = yield* Effect.serviceOption(AgentGuard.AgentGuard).pipe(
    Effect.flatMap(
      Option.match({
        onSome: Effect.succeed,
        onNone: () =>
          AgentGuard.make({
            maxTurns: c.agent?.maxTurns,
            loopRepeats: c.agent?.loopRepeats,
            loopWindow: c.agent?.loopWindowMs === undefined ? undefined : `${c.agent.loopWindowMs} millis`
          }).pipe(atField("agent"))
      })
    )
  )
  const budget = yield* RetryBudget.make({
    ratio: c.retryBudget?.ratio,
    window: c.retryBudget?.windowMs === undefined ? undefined : `${c.retryBudget.windowMs} millis`,
    minRetriesPerSecond: c.retryBudget?.minRetriesPerSecond
  }).pipe(atField("retryBudget"))

  // ---- per-path pipelines
  const defaultPath = c.defaultPath ?? "default"
  const pathConfigs: Record<string, PathDecoded> = { ...c.paths }
  if (pathConfigs[defaultPath] === undefined) pathConfigs[defaultPath] = {}

  // A path without its own total timeout bounds each attempt by its retry profile's deadline: the deadline is
  // checked between attempts, so without this a hung attempt would run for the stage default (120 s).
  const profiles = new Map<string, Retry.Profile | undefined>()
  const timeoutPaths: Record<string, typeof TimeoutConfig.Type> = {}
  for (const [name, p] of Object.entries(pathConfigs)) {
    const profile = yield* retryProfile(p.retry).pipe(atField(`paths.${name}.retry`))
    profiles.set(name, profile)
    const deadlineMs = profile?.deadlineMs ?? Number.POSITIVE_INFINITY
    const totalMs = p.timeouts?.totalMs ?? (deadlineMs < Timeouts.defaults.totalMs ? deadlineMs : undefined)
    if (p.timeouts !== undefined || totalMs !== undefined) timeoutPaths[name] = { ...p.timeouts, totalMs }
  }
  // requests without a known path are served by the default path, so its limits are also the stage's base
  const timeouts = yield* Timeouts.make({ ...timeoutPaths[defaultPath], paths: timeoutPaths }).pipe(atField("paths"))

  const firstProvider = providers[0]

  // The stages built here offer their synchronous hooks, and a provider step then runs as one frame per
  // call (internal/step.ts); a stage provided by the user (or a spend guard) is composed as an Effect.
  const breakerHooks = breaker[FastPath]
  const admissionHooks = admission[FastPath]
  const timeoutHooks = timeouts[FastPath]
  const agentHooks = agent[FastPath]
  const fast =
    breakerHooks !== undefined &&
    admissionHooks !== undefined &&
    spend === undefined &&
    budget.depositUnsafe !== undefined

  /** The stages of one provider step, innermost first. */
  const guarded = (
    raw: LlmProvider["Service"],
    profile: Retry.Profile | undefined
  ): LlmProvider["Service"] & { readonly step: Step.Step | undefined } => {
    // What depends only on the model (the key, the breaker and retry stages of the key) is built once per model,
    // not per call: the retry stage builds its backoff schedule when it is configured.
    type Recorder = ReturnType<CircuitBreaker.CircuitBreaker["protect"]>
    interface PerModel extends Step.Model {
      readonly record: Recorder
    }
    const perModel = new Map<string, PerModel>()
    const of = (model: string): PerModel => {
      let m = perModel.get(model)
      if (m === undefined) {
        if (perModel.size >= 1_000) perModel.clear()
        const key = `${raw.name}/${model}`
        m = {
          key,
          record: breaker.protect(key, { classify: classifyExit }),
          retry: profile === undefined ? undefined : Retry.stage({ profile, budget, key })
        }
        perModel.set(model, m)
      }
      return m
    }
    const timed = timeouts.wrap(raw)
    const charged: LlmProvider["Service"] =
      spend === undefined
        ? timed
        : {
            name: raw.name,
            complete: (request) => spend.protect(`${raw.name}/${request.model}`, request)(timed.complete(request)),
            stream: (request) => chargeStream(spend, raw.name, request, timed.stream(request))
          }
    // The breaker is consulted before admission, so that an open circuit never queues, and records the attempt
    // inside admission, so that time spent waiting in the admission queue never counts as a slow call.
    const recorded: LlmProvider["Service"] = {
      name: raw.name,
      complete: (request) => of(request.model).record(charged.complete(request)),
      stream: (request) => breakerStream(breaker, `${raw.name}/${request.model}`, classifyExit, charged.stream(request))
    }
    const broken: LlmProvider["Service"] = {
      name: raw.name,
      complete: (request) => {
        const key = of(request.model).key
        return Effect.andThen(
          breaker.check(key),
          admission.run(request, key, recorded.complete(request), settleResponse)
        )
      },
      stream: (request) => {
        const key = `${raw.name}/${request.model}`
        return Stream.unwrap(Effect.as(breaker.check(key), admission.runStream(request, key, recorded.stream(request))))
      }
    }
    const composed: LlmProvider["Service"]["complete"] =
      profile === undefined ? broken.complete : (request) => of(request.model).retry!.retry(broken.complete(request))
    const step = fast
      ? Step.make({
          provider: raw,
          model: of,
          breaker: breakerHooks,
          classify: classifyExit,
          admission: admissionHooks,
          timeouts: timeoutHooks,
          attempt: broken.complete,
          composed
        })
      : undefined
    const retryOptions = (request: LlmRequest): Retry.Options => ({
      profile,
      budget,
      key: `${raw.name}/${request.model}`
    })
    return {
      name: raw.name,
      complete: step === undefined ? composed : (request) => step(request, undefined),
      stream:
        profile === undefined
          ? broken.stream
          : (request) => Retry.retryStream(retryOptions(request))(broken.stream(request)),
      step
    }
  }

  const buildPath = Effect.fnUntraced(function* (name: string, p: PathDecoded) {
    const field = `paths.${name}`
    const profile = profiles.get(name)
    const steps = p.fallback ?? c.fallback
    const stepsField = p.fallback === undefined ? "fallback" : `${field}.fallback`
    if (steps === undefined) {
      // No plan: the request's own model on the first provider.
      const only = guarded(firstProvider, profile)
      return { name, complete: only.complete, stream: only.stream, step: only.step } satisfies PathPlan
    }
    const hedge = p.hedge === undefined ? undefined : yield* Hedge.make(p.hedge).pipe(atField(`${field}.hedge`))
    const built: Array<FallbackPlan.Step> = []
    for (let i = 0; i < steps.length; i++) {
      const s: StepDecoded = steps[i]
      if ("provider" in s) {
        const raw = byName.get(s.provider)
        if (raw === undefined) {
          return yield* invalid(`${stepsField}[${i}].provider`, `no provider named ${s.provider}`)
        }
        built.push(
          FallbackPlan.step(guarded(raw, profile), {
            model: s.model,
            contextWindow: c.models?.[`${s.provider}/${s.model}`]?.contextWindow,
            hedge
          })
        )
      } else if ("staticAnswer" in s) built.push(FallbackPlan.staticAnswer(s.staticAnswer))
      else if ("cached" in s) {
        if (Option.isNone(yield* Effect.serviceOption(FallbackPlan.ResponseCache))) {
          return yield* invalid(
            `${stepsField}[${i}]`,
            "a cached step needs a FallbackPlan.ResponseCache in the context"
          )
        }
        built.push(FallbackPlan.cached)
      } else built.push(FallbackPlan.acceptForLater)
    }
    const plan = yield* FallbackPlan.make(built, { circuit: breaker }).pipe(
      Effect.mapError(
        (e) => new InvalidConfig({ field: `${stepsField}${e.field.replace(/^steps/, "")}`, issue: e.issue })
      )
    )
    // an accept-for-later step uses the LaterQueue in the context, else an in-memory one
    const laterQueue = yield* Effect.serviceOption(FallbackPlan.LaterQueue)
    const services = Option.isSome(laterQueue)
      ? yield* Effect.context<never>()
      : Context.merge(
          yield* Effect.context<never>(),
          yield* Layer.build(FallbackPlan.layerLaterQueueMemory()).pipe(atField(stepsField))
        )
    return {
      name,
      step: undefined,
      complete: (request: LlmRequest) => Effect.provideContext(plan.complete(request), services as never),
      stream: (request: LlmRequest) => Stream.provideContext(plan.stream(request), services as never)
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
    complete: (request) => {
      const path = pathOf(request)
      if (path.step !== undefined && agentHooks?.counts(request) === false) return path.step(request, path.name)
      return Telemetry.observeCall(
        request,
        path.name
      )(agent.protect(request)(path.complete(request) as Effect.Effect<LlmResponse, LlmError>))
    },
    stream: (request) => {
      const path = pathOf(request)
      return Telemetry.observeStream(
        request,
        path.name
      )(Stream.unwrap(Effect.as(agent.turn(request), path.stream(request) as Stream.Stream<StreamChunk, LlmError>)))
    }
  }
  return { provider, stages: { breaker, admission, spend, agent } }
})

const settleResponse = (r: LlmResponse): Admission.Settlement => r

const chargeStream = (
  spend: SpendGuard.SpendGuard,
  providerName: string,
  request: LlmRequest,
  self: Stream.Stream<StreamChunk, LlmError>
): Stream.Stream<StreamChunk, LlmError> => {
  const payer = {
    key: `${providerName}/${request.model}`,
    tenant: request.metadata?.tenant,
    conversationId: request.metadata?.conversationId
  }
  return Stream.unwrap(
    Effect.as(
      spend.check(payer),
      Stream.tap(self, (chunk) =>
        chunk._tag === "Finish" ? spend.charge(payer, chunk.model, chunk.usage, chunk.provider) : Effect.void
      )
    )
  )
}

const breakerStream = (
  breaker: CircuitBreaker.CircuitBreaker,
  key: string,
  classify: (exit: Exit.Exit<unknown, unknown>) => CircuitBreaker.Outcome,
  self: Stream.Stream<StreamChunk, LlmError>
): Stream.Stream<StreamChunk, LlmError> =>
  Stream.unwrap(
    Effect.map(breaker.admit(key), (permit) =>
      Stream.onExit(self, (exit) =>
        breaker.complete(permit, Exit.hasInterrupts(exit) ? CircuitBreaker.ignored : classify(exit))
      )
    )
  )

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
  (config?: Config): Layer.Layer<LlmProvider | Resilience, InvalidConfig, LlmProvider>
  /** Builds each provider layer; fallback steps name them by `provider`. */
  <E, R>(
    config: Config,
    first: Layer.Layer<LlmProvider, E, R>,
    ...rest: ReadonlyArray<Layer.Layer<LlmProvider, E, R>>
  ): Layer.Layer<LlmProvider | Resilience, InvalidConfig | E, R>
} = (config: Config = defaults, ...providers: ReadonlyArray<Layer.Layer<LlmProvider, unknown, unknown>>) =>
  Layer.effectContext(
    Effect.gen(function* () {
      const raws: Array<LlmProvider["Service"]> = []
      if (providers.length === 0) raws.push(yield* LlmProvider)
      for (const l of providers) {
        const context = yield* Layer.build(l)
        raws.push(Context.get(context, LlmProvider))
      }
      const built = yield* make(config, raws)
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

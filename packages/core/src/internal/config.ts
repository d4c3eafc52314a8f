/**
 * The configuration of `Resilience`: its schema, its defaults and how its sections become the stages'
 * options.
 *
 * @internal
 */
import { Context, Duration, Effect, Option, Schema, type Scope } from "effect"
import * as Admission from "../Admission.ts"
import * as AdmissionStore from "../AdmissionStore.ts"
import * as AgentGuard from "../AgentGuard.ts"
import * as CircuitBreaker from "../CircuitBreaker.ts"
import * as Hedge from "../Hedge.ts"
import * as PriceTable from "../PriceTable.ts"
import * as Retry from "../Retry.ts"
import * as RetryBudget from "../RetryBudget.ts"
import * as SpendGuard from "../SpendGuard.ts"
import * as Timeouts from "../Timeouts.ts"
import { fromMillis, millis } from "./duration.ts"

const NonNegative = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
/** Durations: milliseconds or a Duration string such as "10 seconds" (internal/duration.ts). */
const NonNegativeMs = millis(NonNegative)
const PositiveMs = millis(Schema.Finite.check(Schema.isGreaterThan(0)))

/**
 * Limits and facts of one `provider/model`.
 *
 * @since 0.1.0
 */
export const ModelConfig = Schema.Struct({
  /** Admission's limits of the key, as `Admission.KeyLimits` declares them (with `maxConcurrencyQueue`). */
  ...Admission.KeyLimits.fields,
  /** Context window in tokens: after a `ContextLengthExceeded` the plan skips steps known to be no larger. */
  contextWindow: Schema.optional(PositiveInt),
  /** The model continues a trailing assistant message: a stream carried on here is sent the delivered text. */
  prefill: Schema.optional(Schema.Boolean)
})

/**
 * A retry profile: a built-in name, or a profile extending one (`Retry.Config`).
 *
 * @since 0.1.0
 */
export const RetryConfig = Retry.Config

/**
 * One step of a fallback plan: a provider and model, or a degraded answer.
 *
 * @since 0.1.0
 */
export const StepConfig = Schema.Union([
  Schema.Struct({ provider: Schema.NonEmptyString, model: Schema.NonEmptyString }),
  Schema.Struct({ staticAnswer: Schema.String }),
  Schema.Struct({ cached: Schema.Literal(true) }),
  Schema.Struct({ acceptForLater: Schema.Literal(true) })
])

/**
 * The timeouts of a path (`Timeouts.Limits`).
 *
 * @since 0.1.0
 */
export const TimeoutConfig = Timeouts.Limits

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
  maxWaitMs: Schema.optional(NonNegativeMs),
  /** Steps tried in order. Default: the top-level `fallback`, else the request's own model. */
  fallback: Schema.optional(Schema.Array(StepConfig)),
  /**
   * What a stream does after a failure past its first chunk: `fail` (default), `continue` (the next attempt
   * carries on with the answer) or `buffer` (chunks held until `Finish`). See `FallbackPlan.MidStream`.
   */
  midStream: Schema.optional(Schema.Literals(["fail", "continue", "buffer"])),
  /**
   * What follows a timeout of an attempt that received nothing (no first token, no response): `next-step`
   * (default) moves on to the plan's next provider step at once, `retry` retries the same route first.
   */
  onSilentTimeout: Schema.optional(Schema.Literals(["next-step", "retry"])),
  /** Hedge each provider step into the next one after a delay. */
  hedge: Schema.optional(Hedge.Config)
})

/**
 * Where state shared by every instance lives: a Redis server (the stores come from `RedisStore.layer` of
 * `@llm-resilience/redis`, given the same configuration).
 *
 * @since 0.1.0
 */
export const StoreConfig = Schema.Struct({
  /** The Redis server, `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). */
  url: Schema.String.check(
    Schema.isPattern(/^rediss?:\/\//, { message: "a Redis URL starts with redis:// or rediss://" })
  ),
  /** Prefix of every key, so that several applications can share one Redis. Default `llm:`. */
  prefix: Schema.optional(Schema.String),
  /**
   * What happens while Redis fails or does not answer within `timeoutMs`: `local` (default) serves from each
   * instance's memory at its share of every limit (`limit / expectedInstances`); `reject` refuses calls that
   * need shared state.
   */
  onStoreFailure: Schema.optional(Schema.Literals(["local", "reject"])),
  /** How many instances share the limits (for the local share). Default 1. */
  expectedInstances: Schema.optional(PositiveInt),
  /** The longest one Redis call may take. Default 250 ms. */
  timeoutMs: Schema.optional(millis(Schema.Finite.check(Schema.isGreaterThan(0)))),
  /** While Redis fails, how often it is tried again. Default 1 s. */
  retryIntervalMs: Schema.optional(millis(Schema.Finite.check(Schema.isGreaterThan(0))))
})

/**
 * The stores of the stages `Resilience` builds from the configuration, where they are not in memory: the
 * breaker's, the retry budget's, the spend guard's and the agent guard's (the admission store is the
 * `AdmissionStore` service). `RedisStore.layer(config)` of `@llm-resilience/redis` provides them with the
 * admission store, so that one `store` entry makes every stage's state shared.
 *
 * @since 0.1.0
 */
export interface StoresShape {
  readonly breaker?: CircuitBreaker.Store | undefined
  readonly retryBudget?: RetryBudget.Store | undefined
  readonly spend?: SpendGuard.Store | undefined
  readonly turns?: AgentGuard.Store | undefined
}

/**
 * The stores service (see {@link StoresShape}); empty by default: every stage keeps its state in memory.
 *
 * @since 0.1.0
 */
export const Stores = Context.Reference<StoresShape>("@llm-resilience/core/Resilience/Stores", {
  defaultValue: () => ({})
})

/**
 * Circuit-breaker settings (`CircuitBreaker.Config`).
 *
 * @since 0.1.0
 */
export const BreakerConfig = CircuitBreaker.Config

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
  /** Limit groups that models join with `groups`: budgets shared by several models (a regional quota). */
  limitGroups: Schema.optional(Schema.Record(Schema.String, Admission.GroupLimits)),
  /** Shared state across instances (Redis). Default: every instance keeps its own state in memory. */
  store: Schema.optional(StoreConfig),
  /** Per-path settings; requests name their path in `metadata.path`. */
  paths: Schema.optional(Schema.Record(Schema.String, PathConfig)),
  /** The path of requests without one (or with an unknown one). Default `"default"`. */
  defaultPath: Schema.optional(Schema.String),
  /** The fallback plan of paths that do not set their own. */
  fallback: Schema.optional(Schema.Array(StepConfig)),
  breaker: Schema.optional(BreakerConfig),
  retryBudget: Schema.optional(RetryBudget.Config),
  /**
   * Bounds on the state kept per `provider/model` key (breaker circuits, retry-budget slices): at most
   * `maxKeys` keys [10,000]; a key unused for `idleMs` [10 minutes] is forgotten. The caller chooses the model
   * string, so without bounds each new name would hold memory for good.
   */
  keys: Schema.optional(Schema.Struct({ maxKeys: Schema.optional(PositiveInt), idleMs: Schema.optional(PositiveMs) })),
  admission: Schema.optional(Admission.Config),
  /** Prices per model (see `PriceTable`); without them no cost is accounted. */
  prices: Schema.optional(PriceTable.PriceTable),
  spend: Schema.optional(SpendGuard.Config),
  agent: Schema.optional(AgentGuard.Config)
})

/**
 * @since 0.1.0
 */
export type Config = typeof Config.Encoded

/**
 * The defaults an empty configuration means: the `interactive` retry profile, a breaker that opens at 50%
 * failures over 60 s (10 calls minimum) or 5 consecutive failures, a 10% retry budget with a floor of five
 * retries per minute, the timeout defaults of `Timeouts`, no rate limits, no fallback, a 20-turn agent guard.
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

export type Decoded = typeof Config.Type
export type PathDecoded = typeof PathConfig.Type
export type StepDecoded = typeof StepConfig.Type

/**
 * Turns a `SchemaError` into an {@link InvalidConfig} whose field is the path of the issue under `prefix`;
 * `input`, when given, is what was decoded (to say more about the offending value).
 */
export const issueAt =
  (prefix: string | undefined, input?: unknown) =>
  (error: Schema.SchemaError): InvalidConfig => {
    const text = error.message
    const at = /at \[(.*)\]\s*$/m.exec(text)
    const segments = at === null ? undefined : at[1].split("][").map((segment) => segment.replace(/"/g, ""))
    const path = segments
      ?.map((segment, i) => (/^\d+$/.test(segment) ? `[${segment}]` : `${i === 0 ? "" : "."}${segment}`))
      .join("")
    const field = prefix === undefined ? (path ?? "config") : path === undefined ? prefix : `${prefix}.${path}`
    let value = input
    for (const segment of segments ?? []) value = (value as Record<string, unknown> | undefined)?.[segment]
    return new InvalidConfig({ field, issue: explain(text.split("\n")[0], value) })
  }

/**
 * Turns a `SchemaError` from decoding a configuration into an {@link InvalidConfig} whose `field` is the path
 * of the offending field under `prefix` (for configurations that embed these sections in a larger file).
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { Resilience } from "@llm-resilience/core"
 *
 * const checked = Schema.decodeUnknownEffect(Resilience.Config)({ breaker: { windowMs: -1 } }).pipe(
 *   Effect.mapError(Resilience.invalidConfigAt("resilience"))
 * ) // fails with field "resilience.breaker.windowMs"
 * ```
 * @since 0.1.0
 */
export const invalidConfigAt: (
  prefix: string | undefined,
  input?: unknown
) => (error: Schema.SchemaError) => InvalidConfig = issueAt

/** Says what is wrong where a schema's first line alone would not. */
const explain = (issue: string, value: unknown): string => {
  if (issue === "Expected no excess property") return "unknown field (misspelt, or not a setting of this section)"
  if (!issue.startsWith("Expected an integer") || typeof value !== "number") return issue
  return Number.isInteger(value)
    ? `${issue}: ${value} is beyond the largest exact integer (${Number.MAX_SAFE_INTEGER})`
    : `${issue}: ${value} is not a whole number`
}

const STEP_SHAPES =
  'a step is { provider, model }, { staticAnswer: "..." }, { cached: true } or { acceptForLater: true }'

/** Whether `step` has one of the accepted shapes (a provider step's own fields are checked by the schema). */
const isStepShape = (step: unknown): boolean => {
  if (typeof step !== "object" || step === null) return false
  if ("provider" in step || "model" in step) return true
  const keys = Object.keys(step)
  if (keys.length !== 1) return false
  const value = (step as Record<string, unknown>)[keys[0]]
  return keys[0] === "staticAnswer"
    ? typeof value === "string"
    : keys[0] in { cached: 0, acceptForLater: 0 } && value === true
}

/** The first fallback step, at the top level or in a path, that has none of the accepted shapes. */
const misshapenStep = (configuration: unknown): string | undefined => {
  if (typeof configuration !== "object" || configuration === null) return undefined
  const lists: Array<[string, unknown]> = [["fallback", (configuration as Config).fallback]]
  const paths = (configuration as Config).paths
  if (typeof paths === "object" && paths !== null) {
    for (const [name, p] of Object.entries(paths)) {
      if (typeof p === "object" && p !== null) lists.push([`paths.${name}.fallback`, p.fallback])
    }
  }
  for (const [field, steps] of lists) {
    if (!Array.isArray(steps)) continue
    const i = steps.findIndex((s) => !isStepShape(s))
    if (i >= 0) return `${field}[${i}]`
  }
  return undefined
}

export const invalid = (field: string, issue: string) => Effect.fail(new InvalidConfig({ field, issue }))

export const breakerOptions = (b: typeof BreakerConfig.Type | undefined): CircuitBreaker.Options => {
  if (b === undefined) return {}
  const { openDurationMs, ...rest } = b
  // a configured openDurationMs is fixed; without it the breaker's default schedule grows up to the cap
  return openDurationMs === undefined
    ? fromMillis(rest)
    : { ...fromMillis(rest), openDuration: Duration.millis(openDurationMs) }
}

export const retryProfile = (r: PathDecoded["retry"]): Effect.Effect<Retry.Profile | undefined, Schema.SchemaError> => {
  if (r === undefined || r === "interactive") return Effect.succeed(Retry.interactive)
  if (r === "background") return Effect.succeed(Retry.background)
  if (r === "none") return Effect.succeed(undefined)
  return Retry.profile(fromMillis(r))
}

/**
 * Decodes a configuration and builds the stages it describes, each from the context when a service for it is
 * provided, else from its section: the shared stages, the retry profile and timeouts of every path.
 */
export const build = Effect.fnUntraced(function* (configuration: Config, providers: ReadonlyArray<string>) {
  const seen = new Set<string>()
  for (let i = 0; i < providers.length; i++) {
    if (seen.has(providers[i])) {
      return yield* invalid(
        `providers[${i}]`,
        `a second provider named ${providers[i]}: names must be unique (they key breakers, limits and fallback steps)`
      )
    }
    seen.add(providers[i])
  }
  const misshapen = misshapenStep(configuration)
  if (misshapen !== undefined) return yield* invalid(misshapen, `not a fallback step: ${STEP_SHAPES}`)
  const c: Decoded = yield* Schema.decodeUnknownEffect(Config)(configuration ?? {}, {
    errors: "first",
    onExcessProperty: "error"
  }).pipe(Effect.mapError(issueAt(undefined, configuration)))
  const atField = (field: string) => Effect.mapError(issueAt(field))
  /** The stage service in context, else the one built from the configuration. */
  const provided = <I, S, E>(service: Context.Key<I, S>, build: () => Effect.Effect<S, E, Scope.Scope>) =>
    Effect.flatMap(Effect.serviceOption(service), Option.match({ onSome: Effect.succeed, onNone: build }))

  // Metric series are labelled with configured models only (any other model string is `other`).
  const knownModels = new Set<string>(Object.keys(c.prices ?? {}))
  for (const key of Object.keys(c.models ?? {})) knownModels.add(key.slice(key.indexOf("/") + 1))
  for (const steps of [c.fallback, ...Object.values(c.paths ?? {}).map((p) => p.fallback)]) {
    for (const step of steps ?? []) if ("model" in step) knownModels.add(step.model)
  }

  // ---- shared stages: from the context when provided, else from the configuration (over the stores in context)
  const stores = yield* Stores
  const breaker = yield* provided(CircuitBreaker.CircuitBreaker, () =>
    CircuitBreaker.make({
      ...breakerOptions(c.breaker),
      keys: c.keys,
      metricModels: knownModels,
      store: stores.breaker
    }).pipe(atField("breaker"))
  )
  const keys: Record<string, Admission.KeyLimits> = {}
  for (const [key, m] of Object.entries(c.models ?? {})) {
    if (!key.includes("/")) return yield* invalid(`models.${key}`, "keys are provider/model")
    const provider = key.slice(0, key.indexOf("/"))
    if (!seen.has(provider)) {
      return yield* invalid(`models.${key}`, `no provider named ${provider} (providers: ${providers.join(", ")})`)
    }
    const { contextWindow: _, prefill: __, ...limits } = m
    const unknownGroup = (m.groups ?? []).findIndex((g) => !Object.hasOwn(c.limitGroups ?? {}, g))
    if (unknownGroup >= 0) {
      return yield* invalid(
        `models.${key}.groups[${unknownGroup}]`,
        `no limit group named ${m.groups![unknownGroup]} (declare it in limitGroups)`
      )
    }
    keys[key] = limits
  }
  // Requests without a path, or with an unknown one, are served by the default path: its `maxWaitMs` is
  // admission's default, and every other path without its own waits `admission.maxWaitMs`.
  const defaultPathName = c.defaultPath ?? "default"
  const admissionWaitMs = c.admission?.maxWaitMs ?? 60_000
  const maxWaitPaths: Record<string, { readonly maxWaitMs: number }> = {}
  for (const [name, p] of Object.entries(c.paths ?? {})) {
    maxWaitPaths[name] = { maxWaitMs: p.maxWaitMs ?? admissionWaitMs }
  }
  // a shared store comes from the context (RedisStore.layer of @llm-resilience/redis); without one, memory
  const sharedStore = yield* Effect.serviceOption(AdmissionStore.AdmissionStore)
  if (c.store !== undefined && Option.isNone(sharedStore)) {
    return yield* invalid(
      "store",
      "a shared store needs its layer: provide RedisStore.layer(config) of @llm-resilience/redis to Resilience.layer"
    )
  }
  const admission = yield* provided(Admission.Admission, () =>
    Admission.make({
      ...c.admission,
      maxWaitMs: c.paths?.[defaultPathName]?.maxWaitMs ?? admissionWaitMs,
      keys,
      limitGroups: c.limitGroups,
      paths: maxWaitPaths
    }).pipe(
      Effect.provideService(
        AdmissionStore.AdmissionStore,
        Option.getOrElse(sharedStore, () => AdmissionStore.makeMemory())
      ),
      atField("admission")
    )
  )
  if (c.spend !== undefined && c.prices === undefined) {
    return yield* invalid("spend", "spend budgets need `prices` to turn usage into cost")
  }
  const prices = c.prices
  const spend = yield* provided(
    SpendGuard.SpendGuard as Context.Key<SpendGuard.SpendGuard, SpendGuard.SpendGuard | undefined>,
    () =>
      prices === undefined
        ? Effect.succeed(undefined)
        : SpendGuard.make({
            prices,
            budgets: c.spend?.budgets?.map(fromMillis),
            expensiveRequestUsd: c.spend?.expensiveRequestUsd,
            breaker,
            store: stores.spend
          }).pipe(atField("spend"))
  )
  const agent = yield* provided(AgentGuard.AgentGuard, () =>
    AgentGuard.make({ ...fromMillis(c.agent ?? {}), store: stores.turns }).pipe(atField("agent"))
  )
  const budget = yield* RetryBudget.make({
    ...fromMillis(c.retryBudget ?? {}),
    keys: c.keys,
    store: stores.retryBudget
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
    if (profile !== undefined && profile.capMs < profile.baseMs) {
      const field = typeof p.retry === "object" && p.retry.capMs !== undefined ? "capMs" : "baseMs"
      return yield* invalid(
        `paths.${name}.retry.${field}`,
        `the backoff cap (${profile.capMs} ms) is below its base (${profile.baseMs} ms): capMs must be at least baseMs`
      )
    }
    const steps = p.fallback ?? c.fallback ?? []
    if (p.hedge !== undefined && steps.filter((s) => "provider" in s).length < 2) {
      return yield* invalid(
        `paths.${name}.hedge`,
        "hedging needs a later provider step to hedge into: give the path's fallback at least two provider steps"
      )
    }
    profiles.set(name, profile)
    const deadlineMs = profile?.deadlineMs ?? Number.POSITIVE_INFINITY
    const totalMs = p.timeouts?.totalMs ?? (deadlineMs < Timeouts.defaults.totalMs ? deadlineMs : undefined)
    if (p.timeouts !== undefined || totalMs !== undefined) timeoutPaths[name] = { ...p.timeouts, totalMs }
  }
  // requests without a known path are served by the default path, so its limits are also the stage's base
  const timeouts = yield* Timeouts.make({ ...timeoutPaths[defaultPath], paths: timeoutPaths }).pipe(atField("paths"))

  return { c, breaker, admission, spend, agent, budget, defaultPath, pathConfigs, profiles, timeouts, knownModels }
})

/**
 * Spend guard: turns each response's token usage into dollars with a {@link PriceTable} and keeps
 * budgets, so that a runaway caller stops at a known cost instead of at the monthly invoice.
 *
 * - Budgets are kept per scope: `global`, per breaker `key` (`provider/model`), per `tenant`
 *   (`request.metadata.tenant`) and per `conversation` (`request.metadata.conversationId`), each with a
 *   limit in US dollars and an optional fixed window (e.g. `"1 hour"`; windows start on multiples of
 *   their length; no window = a lifetime budget, the usual choice for a conversation).
 * - Before a call, a scope whose spend has reached its limit fails the call fast with
 *   {@link LlmError.BudgetExceeded} `{ scope, spentUsd, limitUsd, retryAfterMs }` (when the window
 *   turns over). The check is a map lookup per scope: no call is made.
 * - After a call, its cost is computed from the reported usage (cached input at its own price) and added
 *   to every scope it belongs to. A call in flight when the limit is crossed is still charged, so spend
 *   can overshoot a limit by at most the calls already in flight.
 * - A request costing more than `expensiveRequestUsd` also counts as a circuit-breaker failure for its key
 *   (`CircuitBreaker.downgrade`: the success the breaker recorded becomes a failure): a model that
 *   suddenly writes 10x longer answers is a fault too.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, type Fiber, Layer, Metric, Schema } from "effect"
import type { CircuitBreaker } from "./CircuitBreaker.ts"
import * as Attempts from "./internal/attempt.ts"
import { BudgetExceeded } from "./LlmError.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse, Usage } from "./LlmResponse.ts"
import * as PriceTable from "./PriceTable.ts"
import type { Stage } from "./Stage.ts"
import { DurationInput, millis } from "./internal/duration.ts"
import { SeriesCache, tagged } from "./internal/metrics.ts"

/**
 * What a budget is kept per.
 *
 * @example
 * ```ts
 * import type { SpendGuard } from "@llm-resilience/core"
 * const scope: SpendGuard.BudgetScope = "tenant"
 * ```
 * @since 0.1.0
 */
export const BudgetScope = Schema.Literals(["global", "key", "tenant", "conversation"])

/**
 * @since 0.1.0
 */
export type BudgetScope = typeof BudgetScope.Type

/**
 * One budget: `limitUsd` per `window` (or for the lifetime of the scope when there is no window).
 *
 * @example
 * ```ts
 * import type { SpendGuard } from "@llm-resilience/core"
 * const perTenantHourly: SpendGuard.Budget = { scope: "tenant", limitUsd: 5, window: "1 hour" }
 * const perConversation: SpendGuard.Budget = { scope: "conversation", limitUsd: 0.5 }
 * ```
 * @since 0.1.0
 */
export interface Budget {
  readonly scope: BudgetScope
  readonly limitUsd: number
  readonly window?: Duration.Input | undefined
}

const BudgetSchema = Schema.Struct({
  scope: BudgetScope,
  limitUsd: Schema.Finite.check(Schema.isGreaterThan(0)),
  window: Schema.optional(DurationInput)
})

const OptionsSchema = Schema.Struct({
  prices: PriceTable.PriceTable,
  budgets: Schema.optional(Schema.Array(BudgetSchema)),
  expensiveRequestUsd: Schema.optional(Schema.Finite.check(Schema.isGreaterThan(0))),
  idleTimeToLive: Schema.optional(DurationInput)
})

/**
 * The `spend` section of `Resilience.Config`: the guard's budgets and expensive-request threshold as plain
 * data, a budget's window as `windowMs` (milliseconds, or a duration string such as `"1 day"`). The prices
 * come from the configuration's `prices`.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { SpendGuard } from "@llm-resilience/core"
 * const section = Schema.decodeUnknownSync(SpendGuard.Config)({
 *   budgets: [{ scope: "tenant", limitUsd: 50, windowMs: "1 day" }]
 * })
 * ```
 * @since 0.1.0
 */
export const Config = Schema.Struct({
  budgets: Schema.optional(
    Schema.Array(
      Schema.Struct({
        scope: BudgetSchema.fields.scope,
        limitUsd: BudgetSchema.fields.limitUsd,
        windowMs: Schema.optional(millis(Schema.Finite.check(Schema.isGreaterThan(0))))
      })
    )
  ),
  expensiveRequestUsd: OptionsSchema.fields.expensiveRequestUsd
})

/**
 * Spend guard configuration.
 *
 * @example
 * ```ts
 * import { PriceTable, type SpendGuard } from "@llm-resilience/core"
 * const options: SpendGuard.Options = {
 *   prices: PriceTable.examplePrices,
 *   budgets: [
 *     { scope: "tenant", limitUsd: 20, window: "1 hour" },
 *     { scope: "conversation", limitUsd: 1 }
 *   ],
 *   expensiveRequestUsd: 0.5
 * }
 * ```
 * @since 0.1.0
 */
export interface Options {
  readonly prices: PriceTable.PriceTable
  /** [none: costs are only accounted] */
  readonly budgets?: ReadonlyArray<Budget> | undefined
  /** A single request costing more than this counts as a failure for `breaker` (`downgrade`). [off] */
  readonly expensiveRequestUsd?: number | undefined
  /** Where expensive requests are reported. */
  readonly breaker?: CircuitBreaker | undefined
  /** Scopes idle this long are forgotten (their lifetime budgets start over). ["1 day"] */
  readonly idleTimeToLive?: Duration.Input | undefined
}

/**
 * Who a call is charged to.
 *
 * @example
 * ```ts
 * import type { SpendGuard } from "@llm-resilience/core"
 * const who: SpendGuard.Payer = { key: "openai/gpt-5.4", tenant: "acme", conversationId: "c-42" }
 * ```
 * @since 0.1.0
 */
export interface Payer {
  /** The breaker key, `provider/model`. */
  readonly key: string
  readonly tenant?: string | undefined
  readonly conversationId?: string | undefined
}

/**
 * The spend guard service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PriceTable, SpendGuard } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const spend = yield* SpendGuard.make({ prices: PriceTable.examplePrices, budgets: [{ scope: "global", limitUsd: 10, window: "1 hour" }] })
 *   const costUsd = yield* spend.charge({ key: "openai/gpt-5.4" }, "gpt-5.4", { inputTokens: 1000, outputTokens: 500 })
 *   return costUsd // 0.0075
 * })
 * ```
 * @since 0.1.0
 */
export interface SpendGuard {
  /** Fails with `BudgetExceeded` when any budget the payer falls under is used up. */
  readonly check: (payer: Payer) => Effect.Effect<void, BudgetExceeded>
  /** Charges one response's usage to every scope of the payer; returns its cost in dollars. */
  readonly charge: (payer: Payer, model: string, usage: Usage, provider?: string) => Effect.Effect<number>
  /**
   * The stage: checks the budgets of `request` (tenant and conversation from its metadata) under `key`,
   * runs the call, charges its usage.
   */
  readonly protect: (
    key: string,
    request: LlmRequest
  ) => <E, R>(self: Effect.Effect<LlmResponse, E, R>) => Effect.Effect<LlmResponse, E | BudgetExceeded, R>
  /** Dollars charged to a scope since it was last idle, e.g. `global`, `key:openai/gpt-5.4`, `tenant:acme`, `conversation:c1`. */
  readonly spent: (scope: string) => Effect.Effect<number>
  /**
   * The guard as a stage ({@link Stage.Stage}): checks the budgets of the attempt's request under its key
   * before the call and charges a successful response's usage after it. `protect` is this stage run alone.
   */
  readonly stage: Stage<unknown>
}

/**
 * The spend guard as a service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { SpendGuard } from "@llm-resilience/core"
 * const spentToday = Effect.flatMap(SpendGuard.SpendGuard, (s) => s.spent("tenant:acme"))
 * ```
 * @since 0.1.0
 */
export const SpendGuard: Context.Service<SpendGuard, SpendGuard> = Context.Service<SpendGuard>(
  "@llm-resilience/core/SpendGuard"
)

/**
 * Spend metrics: dollars charged, by key; calls refused by a budget, by scope kind.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { SpendGuard } from "@llm-resilience/core"
 * const gpt4oCost = Metric.value(Metric.withAttributes(SpendGuard.metrics.costUsd, { key: "openai/gpt-5.4" }))
 * ```
 * @since 0.1.0
 */
export const metrics = {
  costUsd: Metric.counter("llm_cost_usd", { description: "dollars charged from reported usage", incremental: true }),
  refused: Metric.counter("llm_budget_refused", { description: "calls refused by a spend budget", incremental: true })
}

/** The cost series of one key, its attributes fixed (an update copies no context). */
const costSeries = (metric: Metric.Metric<number, unknown>, attributes: Readonly<Record<string, string>>) =>
  Metric.counter(metric.id, { description: metric.description, incremental: true, attributes })

interface Account {
  windowStart: number
  spent: number
  lastActivity: number
}

interface CompiledBudget {
  readonly scope: BudgetScope
  readonly limitUsd: number
  readonly windowMs: number | undefined
}

const allScopes: ReadonlyArray<BudgetScope> = ["global", "key", "tenant", "conversation"]

const scopeName = (scope: BudgetScope, payer: Payer): string | undefined => {
  switch (scope) {
    case "global":
      return "global"
    case "key":
      return `key:${payer.key}`
    case "tenant":
      return payer.tenant === undefined ? undefined : `tenant:${payer.tenant}`
    case "conversation":
      return payer.conversationId === undefined ? undefined : `conversation:${payer.conversationId}`
  }
}

/**
 * Builds a spend guard. Fails with a `SchemaError` naming the field when the prices or budgets are
 * invalid.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PriceTable, SpendGuard } from "@llm-resilience/core"
 * const guard = SpendGuard.make({
 *   prices: PriceTable.examplePrices,
 *   budgets: [{ scope: "conversation", limitUsd: 0.25 }]
 * })
 * ```
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (options: Options) {
  const { breaker, ...data } = options
  yield* Schema.decodeUnknownEffect(OptionsSchema)(data, { errors: "all" })
  // the cost series of this guard's keys (models with a price only), released with it
  const series = new SeriesCache()
  const budgets: ReadonlyArray<CompiledBudget> = (options.budgets ?? []).map((b) => ({
    scope: b.scope,
    limitUsd: b.limitUsd,
    windowMs: b.window === undefined ? undefined : Duration.toMillis(Duration.fromInputUnsafe(b.window))
  }))
  const idleMs = Duration.toMillis(Duration.fromInputUnsafe(options.idleTimeToLive ?? "1 day"))
  const accounts = new Map<string, Account>()
  const totals = new Map<string, Account>()
  const unknownModels = new Set<string>()
  let lastSweep = 0

  const sweep = (now: number) => {
    if (now - lastSweep < idleMs) return
    lastSweep = now
    for (const map of [accounts, totals]) {
      for (const [name, account] of map) if (now - account.lastActivity >= idleMs) map.delete(name)
    }
  }

  /** The account of a scope, rolled over to the window containing `now`. */
  const accountOf = (name: string, windowMs: number | undefined, now: number): Account => {
    const windowStart = windowMs === undefined ? 0 : Math.floor(now / windowMs) * windowMs
    let account = accounts.get(name)
    if (account === undefined) {
      account = { windowStart, spent: 0, lastActivity: now }
      accounts.set(name, account)
    } else if (account.windowStart !== windowStart) {
      account.windowStart = windowStart
      account.spent = 0
    }
    return account
  }

  const accountKey = (name: string, budget: CompiledBudget) =>
    budget.windowMs === undefined ? name : `${name}@${budget.windowMs}`

  /** The refusal of the first budget of `payer` that is used up at `now`, if any. */
  const refusal = (payer: Payer, now: number, fiber: Fiber.Fiber<unknown, unknown>): BudgetExceeded | undefined => {
    for (const budget of budgets) {
      const name = scopeName(budget.scope, payer)
      if (name === undefined) continue
      const account = accountOf(accountKey(name, budget), budget.windowMs, now)
      if (account.spent >= budget.limitUsd) {
        tagged(metrics.refused, { scope: budget.scope }).updateUnsafe(1, fiber.context)
        return new BudgetExceeded({
          scope: name,
          spentUsd: account.spent,
          limitUsd: budget.limitUsd,
          ...(budget.windowMs === undefined ? {} : { retryAfterMs: account.windowStart + budget.windowMs - now })
        })
      }
    }
    return undefined
  }

  const check = (payer: Payer): Effect.Effect<void, BudgetExceeded> =>
    Effect.withFiber((fiber) => {
      const refused = refusal(payer, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe(), fiber)
      return refused === undefined ? Effect.void : Effect.fail(refused)
    })

  /** Charges `usage` at `now`: its cost, and what is left to run (a warning, a breaker report), if anything. */
  const chargeUnsafe = (
    payer: Payer,
    model: string,
    usage: Usage,
    provider: string | undefined,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>
  ): readonly [number, Effect.Effect<void> | undefined] => {
    sweep(now)
    const price = PriceTable.priceOf(options.prices, model, provider)
    if (price === undefined) {
      if (unknownModels.has(model)) return [0, undefined]
      // warned once per model; the caller chooses model strings, so the memory of them is bounded
      if (unknownModels.size >= 1_000) unknownModels.clear()
      unknownModels.add(model)
      return [0, Effect.logWarning(`SpendGuard: no price for model ${model}; its calls are charged $0`)]
    }
    const costUsd = PriceTable.cost(price, usage)
    const charged = new Set<string>()
    for (const budget of budgets) {
      const name = scopeName(budget.scope, payer)
      if (name === undefined) continue
      const key = accountKey(name, budget)
      if (charged.has(key)) continue
      charged.add(key)
      const account = accountOf(key, budget.windowMs, now)
      account.spent += costUsd
      account.lastActivity = now
    }
    for (const scope of allScopes) {
      const name = scopeName(scope, payer)
      if (name === undefined) continue
      const total = totals.get(name)
      if (total === undefined) totals.set(name, { windowStart: 0, spent: costUsd, lastActivity: now })
      else {
        total.spent += costUsd
        total.lastActivity = now
      }
    }
    series.tagged(metrics.costUsd, { key: payer.key }, "llm_cost_usd", costSeries).updateUnsafe(costUsd, fiber.context)
    if (breaker !== undefined && options.expensiveRequestUsd !== undefined && costUsd > options.expensiveRequestUsd) {
      return [costUsd, breaker.downgrade(payer.key)]
    }
    return [costUsd, undefined]
  }

  const charge = (payer: Payer, model: string, usage: Usage, provider?: string): Effect.Effect<number> =>
    Effect.withFiber((fiber) => {
      const [costUsd, rest] = chargeUnsafe(
        payer,
        model,
        usage,
        provider,
        fiber.getRef(Clock.Clock).currentTimeMillisUnsafe(),
        fiber
      )
      return rest === undefined ? Effect.succeed(costUsd) : Effect.as(rest, costUsd)
    })

  const payerOf = (key: string, request: LlmRequest): Payer => ({
    key,
    tenant: request.metadata?.tenant,
    conversationId: request.metadata?.conversationId
  })

  const stage: Stage<Payer> = {
    name: "spend-guard",
    enter: (attempt) => {
      const payer = payerOf(attempt.key, attempt.request)
      const refused = refusal(payer, attempt.fiber.getRef(Clock.Clock).currentTimeMillisUnsafe(), attempt.fiber)
      return refused === undefined ? payer : Effect.fail(refused)
    },
    exit: (payer, exit, attempt) => {
      if (exit._tag !== "Success") return undefined
      const r = exit.value
      return chargeUnsafe(payer, r.model, r.usage, r.provider, attempt.endMs, attempt.fiber)[1]
    }
  }
  const stages = [stage]

  const protect: SpendGuard["protect"] = (key, request) => (self) => Attempts.run(stages, request, key, self)

  const spent = (scope: string): Effect.Effect<number> => Effect.sync(() => totals.get(scope)?.spent ?? 0)

  return SpendGuard.of({ check, charge, protect, spent, stage })
})

/**
 * A layer providing {@link SpendGuard}.
 *
 * @example
 * ```ts
 * import { PriceTable, SpendGuard } from "@llm-resilience/core"
 * const SpendLive = SpendGuard.layer({ prices: PriceTable.examplePrices, budgets: [{ scope: "global", limitUsd: 100, window: "1 day" }] })
 * ```
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<SpendGuard, Schema.SchemaError> =>
  Layer.effect(SpendGuard, make(options))

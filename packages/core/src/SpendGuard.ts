/**
 * Spend guard: turns each response's token usage into dollars with a {@link PriceTable} and keeps
 * budgets, so that a runaway caller stops at a known cost instead of at the monthly invoice.
 *
 * - Budgets are kept per scope: `global`, per breaker `key` (`provider/model`), per `tenant`
 *   (`request.metadata.tenant`) and per `conversation` (`request.metadata.conversationId`), each with a
 *   limit in US dollars and an optional fixed window (e.g. `"1 hour"`; windows start on multiples of
 *   their length; no window = a lifetime budget, the usual choice for a conversation).
 * - Before a call, its estimated cost (input tokens from the {@link TokenEstimator}, output at the request's
 *   cap) is reserved in every budget it falls under; a budget whose spend plus reservations has reached its
 *   limit fails the call fast with {@link LlmError.BudgetExceeded} `{ scope, spentUsd, limitUsd,
 *   retryAfterMs }` (when the window turns over). No call is made.
 * - After the call, the reservation is replaced by the cost of the reported usage (cached input at its own
 *   price; nothing for a failed call). So concurrent calls, in one process or many, overshoot a limit by at
 *   most the estimates of the calls in flight (plus what their estimates missed).
 * - Budgets live in a {@link Store}: {@link memoryStore} in the process (the default), or a shared one
 *   (Redis) so that every instance spends from the same budgets.
 * - A request costing more than `expensiveRequestUsd` also counts as a circuit-breaker failure for its key
 *   (`CircuitBreaker.downgrade`: the success the breaker recorded becomes a failure): a model that
 *   suddenly writes 10x longer answers is a fault too.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer, Schema } from "effect"
import type { CircuitBreaker } from "./CircuitBreaker.ts"
import type { BudgetExceeded } from "./LlmError.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse, Usage } from "./LlmResponse.ts"
import * as PriceTable from "./PriceTable.ts"
import type { Stage } from "./Stage.ts"
import { DurationInput, millis } from "./internal/duration.ts"
import * as internal from "./internal/spend.ts"
import * as Guard from "./internal/spendGuard.ts"

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
  idleTimeToLive: Schema.optional(DurationInput),
  reservationTimeToLive: Schema.optional(DurationInput)
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
  /** A reservation not settled this long after it was made (a crashed caller) stops counting. ["10 minutes"] */
  readonly reservationTimeToLive?: Duration.Input | undefined
  /** Where budgets are kept. [a {@link memoryStore} of this guard] */
  readonly store?: Store | undefined
}

/**
 * One budget of one scope, as a {@link Store} keeps it: `name` is the scope (`tenant:acme`), `windowMs`
 * its window (none: a lifetime budget).
 *
 * @since 0.1.0
 */
export interface Account {
  readonly name: string
  readonly limitUsd: number
  readonly windowMs: number | undefined
}

/**
 * The estimate of one call held in its accounts, in the window each was reserved in (epoch ms of the
 * window's start; 0 without a window).
 *
 * @since 0.1.0
 */
export interface Reservation {
  readonly id: string
  readonly accounts: ReadonlyArray<Account>
  readonly windows: ReadonlyArray<number>
}

/**
 * The answer of {@link Store.reserve}: the reservation, or the first account whose spend plus reservations
 * has reached its limit.
 *
 * @since 0.1.0
 */
export type Reserved =
  | { readonly _tag: "Reserved"; readonly reservation: Reservation }
  | {
      readonly _tag: "Refused"
      readonly account: Account
      readonly spentUsd: number
      readonly retryAfterMs: number | undefined
    }

/**
 * Where budgets live. Each operation is atomic: `reserve` checks every account and, when none has reached
 * its limit, holds `estimateUsd` in each under `id` (until `settle`, or until the store's reservation
 * time-to-live ends); `settle` drops the reservation and adds the actual cost to each account and to the
 * running totals of `scopes`. An in-process store answers directly, a remote one with an `Effect`. `nowMs`
 * is the caller's clock; a shared store may use its own.
 *
 * @example
 * ```ts
 * import { SpendGuard } from "@llm-resilience/core"
 * const store: SpendGuard.Store = SpendGuard.memoryStore()
 * ```
 * @since 0.1.0
 */
export interface Store {
  readonly reserve: (
    id: string,
    accounts: ReadonlyArray<Account>,
    estimateUsd: number,
    nowMs: number
  ) => Reserved | Effect.Effect<Reserved>
  readonly settle: (
    reservation: Reservation,
    costUsd: number,
    scopes: ReadonlyArray<string>,
    nowMs: number
  ) => void | Effect.Effect<void>
  readonly spent: (scope: string, nowMs: number) => number | Effect.Effect<number>
}

/**
 * An in-process {@link Store}. Accounts and totals idle for `idleTimeToLive` ["1 day"] are forgotten; a
 * reservation counts for at most `reservationTimeToLive` ["10 minutes"].
 *
 * @example
 * ```ts
 * import { PriceTable, SpendGuard } from "@llm-resilience/core"
 * const guard = SpendGuard.make({ prices: PriceTable.examplePrices, store: SpendGuard.memoryStore() })
 * ```
 * @since 0.1.0
 */
export const memoryStore = (options?: {
  readonly idleTimeToLive?: Duration.Input | undefined
  readonly reservationTimeToLive?: Duration.Input | undefined
}): Store =>
  internal.memoryStore(
    Duration.toMillis(Duration.fromInputUnsafe(options?.idleTimeToLive ?? "1 day")),
    Duration.toMillis(Duration.fromInputUnsafe(options?.reservationTimeToLive ?? "10 minutes"))
  )

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
export const metrics = Guard.metrics

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
  const { breaker: _, store: __, ...data } = options
  yield* Schema.decodeUnknownEffect(OptionsSchema)(data, { errors: "all" })
  return SpendGuard.of(yield* Guard.make(options))
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

/**
 * The engine behind `SpendGuard`: the accounts a payer spends from, reservation before a call and settlement
 * after it through the guard's store, and the cost metrics.
 *
 * @internal
 */
import { Clock, Duration, Effect, type Fiber, Metric, Random } from "effect"
import { BudgetExceeded } from "../LlmError.ts"
import type { LlmRequest } from "../LlmRequest.ts"
import type { Usage } from "../LlmResponse.ts"
import * as PriceTable from "../PriceTable.ts"
import type * as SG from "../SpendGuard.ts"
import type { Stage } from "../Stage.ts"
import { TokenEstimator } from "../TokenEstimator.ts"
import * as Attempts from "./attempt.ts"
import { SeriesCache, tagged } from "./metrics.ts"
import { memoryStore } from "./spend.ts"

type Account = SG.Account
type BudgetScope = SG.BudgetScope
type Payer = SG.Payer
type Reservation = SG.Reservation
type Reserved = SG.Reserved

/** @internal */
export const metrics = {
  costUsd: Metric.counter("llm_cost_usd", { description: "dollars charged from reported usage", incremental: true }),
  refused: Metric.counter("llm_budget_refused", { description: "calls refused by a spend budget", incremental: true })
}

/** The cost series of one key, its attributes fixed (an update copies no context). */
const costSeries = (metric: Metric.Metric<number, unknown>, attributes: Readonly<Record<string, string>>) =>
  Metric.counter(metric.id, { description: metric.description, incremental: true, attributes })

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
 * The guard of `options` (already validated).
 *
 * @internal
 */
export const make = Effect.fnUntraced(function* (options: SG.Options) {
  const { breaker, store: given } = options
  // the cost series of this guard's keys (models with a price only), released with it
  const series = new SeriesCache()
  const budgets: ReadonlyArray<CompiledBudget> = (options.budgets ?? []).map((b) => ({
    scope: b.scope,
    limitUsd: b.limitUsd,
    windowMs: b.window === undefined ? undefined : Duration.toMillis(Duration.fromInputUnsafe(b.window))
  }))
  const store =
    given ??
    memoryStore(
      Duration.toMillis(Duration.fromInputUnsafe(options.idleTimeToLive ?? "1 day")),
      Duration.toMillis(Duration.fromInputUnsafe(options.reservationTimeToLive ?? "10 minutes"))
    )
  const unknownModels = new Set<string>()
  const instance = (yield* Random.nextInt).toString(36)
  let sequence = 0

  /** The accounts `payer` spends from (each budget once), the budget scope of each, and its totals' names. */
  const accountsOf = (payer: Payer) => {
    const accounts: Array<Account> = []
    const kinds: Array<BudgetScope> = []
    for (const budget of budgets) {
      const name = scopeName(budget.scope, payer)
      if (name === undefined) continue
      if (accounts.some((a) => a.name === name && a.windowMs === budget.windowMs)) continue
      accounts.push({ name, limitUsd: budget.limitUsd, windowMs: budget.windowMs })
      kinds.push(budget.scope)
    }
    const scopes: Array<string> = []
    for (const scope of allScopes) {
      const name = scopeName(scope, payer)
      if (name !== undefined) scopes.push(name)
    }
    return { accounts, kinds, scopes }
  }

  type Held = { readonly payer: Payer; readonly reservation: Reservation; readonly scopes: ReadonlyArray<string> }

  /** Reserves `estimateUsd` for `payer`: what to hand back to `settle`, or the refusal. */
  const reserve = (
    payer: Payer,
    estimateUsd: number,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>
  ): Held | Effect.Effect<Held, BudgetExceeded> => {
    const { accounts, kinds, scopes } = accountsOf(payer)
    const decide = (r: Reserved): Held | BudgetExceeded => {
      if (r._tag === "Reserved") return { payer, reservation: r.reservation, scopes }
      tagged(metrics.refused, { scope: kinds[accounts.indexOf(r.account)] ?? "global" }).updateUnsafe(1, fiber.context)
      return new BudgetExceeded({
        scope: r.account.name,
        spentUsd: r.spentUsd,
        limitUsd: r.account.limitUsd,
        ...(r.retryAfterMs === undefined ? {} : { retryAfterMs: r.retryAfterMs })
      })
    }
    const answer = store.reserve(`${instance}-${++sequence}`, accounts, estimateUsd, now)
    if (Effect.isEffect(answer)) {
      return Effect.flatMap(answer, (r) => {
        const held = decide(r)
        return held instanceof BudgetExceeded ? Effect.fail(held) : Effect.succeed(held)
      })
    }
    const held = decide(answer)
    return held instanceof BudgetExceeded ? Effect.fail(held) : held
  }

  /** The cost of `usage` (zero, with a warning once per model, without a price). */
  const costOf = (model: string, usage: Usage, provider: string | undefined) => {
    const price = PriceTable.priceOf(options.prices, model, provider)
    if (price !== undefined) return [PriceTable.cost(price, usage), undefined] as const
    if (unknownModels.has(model)) return [0, undefined] as const
    // warned once per model; the caller chooses model strings, so the memory of them is bounded
    if (unknownModels.size >= 1_000) unknownModels.clear()
    unknownModels.add(model)
    return [0, Effect.logWarning(`SpendGuard: no price for model ${model}; its calls are charged $0`)] as const
  }

  /** Settles `held` with `costUsd` at `now`: what is left to run (the store's I/O, a warning, a breaker report). */
  const settle = (
    held: Held,
    costUsd: number,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>,
    warning: Effect.Effect<void> | undefined
  ): Effect.Effect<void> | undefined => {
    const rest: Array<Effect.Effect<void>> = []
    const settled = store.settle(held.reservation, costUsd, held.scopes, now)
    if (Effect.isEffect(settled)) rest.push(settled)
    if (warning !== undefined) rest.push(warning)
    if (costUsd > 0) {
      series
        .tagged(metrics.costUsd, { key: held.payer.key }, "llm_cost_usd", costSeries)
        .updateUnsafe(costUsd, fiber.context)
    }
    if (breaker !== undefined && options.expensiveRequestUsd !== undefined && costUsd > options.expensiveRequestUsd) {
      rest.push(breaker.downgrade(held.payer.key))
    }
    return rest.length === 0 ? undefined : rest.length === 1 ? rest[0] : Effect.all(rest, { discard: true })
  }

  const nowOf = (fiber: Fiber.Fiber<unknown, unknown>) => fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()

  const check = (payer: Payer): Effect.Effect<void, BudgetExceeded> =>
    Effect.withFiber((fiber) => {
      const now = nowOf(fiber)
      const held = reserve(payer, 0, now, fiber)
      const release = (h: Held) => settle(h, 0, now, fiber, undefined) ?? Effect.void
      return Effect.isEffect(held) ? Effect.flatMap(held, release) : release(held)
    })

  const charge = (payer: Payer, model: string, usage: Usage, provider?: string): Effect.Effect<number> =>
    Effect.withFiber((fiber) => {
      const now = nowOf(fiber)
      const { accounts, scopes } = accountsOf(payer)
      const [costUsd, warning] = costOf(model, usage, provider)
      const held: Held = { payer, reservation: { id: "", accounts, windows: [] }, scopes }
      const rest = settle(held, costUsd, now, fiber, warning)
      return rest === undefined ? Effect.succeed(costUsd) : Effect.as(rest, costUsd)
    })

  const estimateOf = (request: LlmRequest, key: string, fiber: Fiber.Fiber<unknown, unknown>): number => {
    const price = PriceTable.priceOf(options.prices, request.model, key.slice(0, key.indexOf("/")))
    if (price === undefined) return 0
    const estimate = fiber.getRef(TokenEstimator).estimate(request)
    return PriceTable.cost(price, { inputTokens: estimate.inputTokens, outputTokens: estimate.outputTokens })
  }

  const stage: Stage<Held> = {
    name: "spend-guard",
    enter: (attempt) => {
      const fiber = attempt.fiber
      const payer = payerOf(attempt.key, attempt.request)
      return reserve(payer, estimateOf(attempt.request, attempt.key, fiber), nowOf(fiber), fiber)
    },
    exit: (held, exit, attempt) => {
      if (exit._tag !== "Success") return settle(held, 0, attempt.endMs, attempt.fiber, undefined)
      const r = exit.value
      const [costUsd, warning] = costOf(r.model, r.usage, r.provider)
      return settle(held, costUsd, attempt.endMs, attempt.fiber, warning)
    }
  }
  const stages = [stage]

  const protect: SG.SpendGuard["protect"] = (key, request) => (self) => Attempts.run(stages, request, key, self)

  const spent = (scope: string): Effect.Effect<number> =>
    Effect.withFiber((fiber) => {
      const answer = store.spent(scope, nowOf(fiber))
      return Effect.isEffect(answer) ? answer : Effect.succeed(answer)
    })

  const guard: SG.SpendGuard = { check, charge, protect, spent, stage }
  return guard
})

const payerOf = (key: string, request: LlmRequest): Payer => ({
  key,
  tenant: request.metadata?.tenant,
  conversationId: request.metadata?.conversationId
})

/**
 * Model prices, supplied by the user, that turn a response's token usage into dollars.
 *
 * A table maps a model id to its prices in US dollars per million tokens: input, output, and cached
 * input (the part of the prompt served from the provider's prompt cache, usually much cheaper). Lookups
 * accept the dated ids providers answer with: `gpt-5.4-mini-2026-03-17` finds `gpt-5.4-mini` (the longest
 * key that the id starts with, followed by `-`). Keys may also be `provider/model`.
 *
 * The toolkit ships no authoritative prices. {@link examplePrices} is an example, dated, and will go
 * stale: check your provider's pricing page and pass your own table.
 *
 * @since 0.1.0
 */
import { type Effect, Schema } from "effect"
import type { Usage } from "./LlmResponse.ts"

const UsdPerMillion = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * The prices of one model, in US dollars per million tokens.
 *
 * @example
 * ```ts
 * import type { PriceTable } from "@llm-resilience/core"
 * const price: PriceTable.ModelPrice = { inputPerMillion: 2.5, outputPerMillion: 10, cachedInputPerMillion: 1.25 }
 * ```
 * @since 0.1.0
 */
export const ModelPrice = Schema.Struct({
  inputPerMillion: UsdPerMillion,
  outputPerMillion: UsdPerMillion,
  /** Defaults to the input price when the provider has no cache discount. */
  cachedInputPerMillion: Schema.optional(UsdPerMillion)
})

/**
 * @since 0.1.0
 */
export type ModelPrice = typeof ModelPrice.Type

/**
 * Prices by model id (or `provider/model`).
 *
 * @example
 * ```ts
 * import type { PriceTable } from "@llm-resilience/core"
 * const table: PriceTable.PriceTable = { "my-model": { inputPerMillion: 1, outputPerMillion: 2 } }
 * ```
 * @since 0.1.0
 */
export const PriceTable = Schema.Record(Schema.String, ModelPrice)

/**
 * @since 0.1.0
 */
export type PriceTable = typeof PriceTable.Type

/**
 * Validates a user-supplied table: fails with a `SchemaError` naming the model and field.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { PriceTable } from "@llm-resilience/core"
 * const table = PriceTable.make({ "my-model": { inputPerMillion: 1, outputPerMillion: 4 } })
 * Effect.runSync(table)["my-model"].outputPerMillion // 4
 * ```
 * @since 0.1.0
 */
export const make = (table: unknown): Effect.Effect<PriceTable, Schema.SchemaError> =>
  Schema.decodeUnknownEffect(PriceTable)(table, { errors: "all" })

/**
 * The price of `model`: an exact key, else `provider/model`, else the longest key that `model` starts
 * with followed by `-` (dated snapshots such as `claude-haiku-4-5-20251001`).
 *
 * @example
 * ```ts
 * import { PriceTable } from "@llm-resilience/core"
 * PriceTable.priceOf(PriceTable.examplePrices, "gpt-5.4-mini-2026-03-17")?.inputPerMillion // 0.75
 * ```
 * @since 0.1.0
 */
export const priceOf = (table: PriceTable, model: string, provider?: string): ModelPrice | undefined => {
  const exact = table[model] ?? (provider === undefined ? undefined : table[`${provider}/${model}`])
  if (exact !== undefined) return exact
  let best: string | undefined
  for (const key in table) {
    if (model.startsWith(`${key}-`) && (best === undefined || key.length > best.length)) best = key
  }
  return best === undefined ? undefined : table[best]
}

/**
 * The cost in US dollars of one response's usage at `price`. Cached input tokens are part of
 * `inputTokens` and are charged at the cached price.
 *
 * @example
 * ```ts
 * import { PriceTable } from "@llm-resilience/core"
 * const price = { inputPerMillion: 2.5, outputPerMillion: 10, cachedInputPerMillion: 1.25 }
 * PriceTable.cost(price, { inputTokens: 1_000_000, cachedInputTokens: 400_000, outputTokens: 100_000 })
 * // 0.6 * 2.5 + 0.4 * 1.25 + 0.1 * 10 = 3
 * ```
 * @since 0.1.0
 */
export const cost = (price: ModelPrice, usage: Usage): number => {
  const cached = Math.min(usage.cachedInputTokens ?? 0, usage.inputTokens)
  return (
    ((usage.inputTokens - cached) * price.inputPerMillion +
      cached * (price.cachedInputPerMillion ?? price.inputPerMillion) +
      usage.outputTokens * price.outputPerMillion) /
    1_000_000
  )
}

/**
 * The date the {@link examplePrices} were copied from the providers' public pricing pages.
 *
 * @example
 * ```ts
 * import { PriceTable } from "@llm-resilience/core"
 * console.log(`prices as of ${PriceTable.examplePricesAsOf}, check your provider`)
 * ```
 * @since 0.1.0
 */
export const examplePricesAsOf = "2026-04-30"

/**
 * EXAMPLE prices as of 2026-04-30 (standard tier, US dollars per million tokens), check your provider:
 * prices change, differ by tier, region and batch mode, and Anthropic charges cache writes extra (not
 * modelled here). Use your own table in production.
 *
 * @example
 * ```ts
 * import { PriceTable } from "@llm-resilience/core"
 * const mine: PriceTable.PriceTable = { ...PriceTable.examplePrices, "my-finetune": { inputPerMillion: 3, outputPerMillion: 12 } }
 * ```
 * @since 0.1.0
 */
export const examplePrices: PriceTable = {
  // OpenAI, prices as of 2026-04-30 (context up to 270K tokens), check your provider
  "gpt-5.5": { inputPerMillion: 5, outputPerMillion: 30, cachedInputPerMillion: 0.5 },
  "gpt-5.4": { inputPerMillion: 2.5, outputPerMillion: 15, cachedInputPerMillion: 0.25 },
  "gpt-5.4-mini": { inputPerMillion: 0.75, outputPerMillion: 4.5, cachedInputPerMillion: 0.075 },
  "gpt-5.4-nano": { inputPerMillion: 0.2, outputPerMillion: 1.25, cachedInputPerMillion: 0.02 },
  // Anthropic, prices as of 2026-04-30, check your provider (cached = cache read)
  "claude-opus-4-7": { inputPerMillion: 5, outputPerMillion: 25, cachedInputPerMillion: 0.5 },
  "claude-opus-4-6": { inputPerMillion: 5, outputPerMillion: 25, cachedInputPerMillion: 0.5 },
  "claude-sonnet-4-6": { inputPerMillion: 3, outputPerMillion: 15, cachedInputPerMillion: 0.3 },
  "claude-haiku-4-5": { inputPerMillion: 1, outputPerMillion: 5, cachedInputPerMillion: 0.1 }
}

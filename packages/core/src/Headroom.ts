/**
 * Rate-limit headroom: what a provider says remains of each limit, as a fraction of the limit, exported as
 * the gauge `llm_rate_limit_headroom` by `key` (the toolkit's `provider/model`, never an API key; a model the
 * configuration does not know is `provider/other`) and
 * `limit` (`requests`, `tokens`, `input_tokens`, `output_tokens`).
 *
 * Both header families feed it through {@link RateLimitSnapshot.fromHeaders}: OpenAI's
 * `x-ratelimit-{limit,remaining}-{requests,tokens}` and Anthropic's
 * `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining}`. A window without
 * both a limit and a remaining count is left out (a fraction needs both). `Telemetry` records the snapshot
 * of every call it observes (the answer's, or a rate-limited error's), so the pipeline exports headroom
 * without further wiring; {@link observe} does the same for a call outside it.
 *
 * Alert on it when it stays low, not when it dips once: a busy minute spends most of a per-minute window
 * by design (see the shipped rule `LlmRateLimitHeadroomLow`: below 10% for 10 minutes).
 *
 * @since 0.1.0
 */
import { Effect, Metric } from "effect"
import type * as Context from "effect/Context"
import type { LlmResponse } from "./LlmResponse.ts"
import type { LimitWindow, RateLimitSnapshot } from "./RateLimitSnapshot.ts"
import { keyLabel, type SeriesCache } from "./internal/metrics.ts"

/**
 * Remaining as a fraction of the limit, by `key` and `limit`.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { Headroom } from "@llm-resilience/core"
 * const tokensLeft = Metric.value(Metric.withAttributes(Headroom.headroom, { key: "openai/gpt-5.4", limit: "tokens" }))
 * ```
 * @since 0.1.0
 */
export const headroom = Metric.gauge("llm_rate_limit_headroom", {
  description: "provider-reported remaining as a fraction of the limit, by key and limit"
})

/**
 * The kinds of limit, as the `limit` attribute names them.
 *
 * @since 0.1.0
 */
export type LimitKind = "requests" | "tokens" | "input_tokens" | "output_tokens"

const kinds: ReadonlyArray<readonly [LimitKind, keyof RateLimitSnapshot]> = [
  ["requests", "requests"],
  ["tokens", "tokens"],
  ["input_tokens", "inputTokens"],
  ["output_tokens", "outputTokens"]
]

/**
 * The headroom of each limit in a snapshot, in [0, 1] (a remaining count above the limit counts as 1).
 *
 * @example
 * ```ts
 * import { Headroom, RateLimitSnapshot } from "@llm-resilience/core"
 * const snapshot = RateLimitSnapshot.fromHeaders(
 *   { "x-ratelimit-limit-requests": "500", "x-ratelimit-remaining-requests": "25" },
 *   0
 * )
 * Headroom.fractions(snapshot) // [{ limit: "requests", fraction: 0.05 }]
 * ```
 * @since 0.1.0
 */
export const fractions = (
  snapshot: RateLimitSnapshot
): ReadonlyArray<{ readonly limit: LimitKind; readonly fraction: number }> => {
  const out: Array<{ limit: LimitKind; fraction: number }> = []
  for (const [limit, field] of kinds) {
    const w = snapshot[field] as LimitWindow | undefined
    if (w?.limit === undefined || w.remaining === undefined || w.limit <= 0) continue
    out.push({ limit, fraction: Math.min(1, w.remaining / w.limit) })
  }
  return out
}

const seriesOf = (key: string, limit: LimitKind) =>
  Metric.gauge(headroom.id, { description: headroom.description, attributes: { key, limit } })

/**
 * Sets the gauge from a snapshot, synchronously; `cache` keeps the series for its owner (else they are built
 * for this update).
 *
 * @internal
 */
export const recordUnsafe = (
  key: string,
  snapshot: RateLimitSnapshot,
  context: Context.Context<never>,
  cache?: SeriesCache
): void => {
  for (const { limit, fraction } of fractions(snapshot)) {
    const series =
      cache === undefined ? seriesOf(key, limit) : cache.get(() => seriesOf(key, limit), headroom.id, key, limit)
    series.updateUnsafe(fraction, context)
  }
}

/**
 * Sets the gauge of `key` from a snapshot.
 *
 * @example
 * ```ts
 * import { Headroom } from "@llm-resilience/core"
 * const recorded = Headroom.record("anthropic/claude-sonnet-4-6", { tokens: { limit: 80_000, remaining: 4_000 } })
 * ```
 * @since 0.1.0
 */
export const record = (key: string, snapshot: RateLimitSnapshot): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    recordUnsafe(key, snapshot, fiber.context)
    return Effect.void
  })

/**
 * Records the headroom a call's answer (or its failure's rate-limit snapshot) reports, under
 * `provider/model` of the answer or the error. The caller chooses the model string, so only the names in
 * `models` are kept: any other model is recorded as `provider/other`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Headroom, LlmProvider } from "@llm-resilience/core"
 * const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }
 * const call = Effect.flatMap(LlmProvider.LlmProvider, (llm) =>
 *   llm.complete(request).pipe(Headroom.observe(["gpt-5.4-mini", "gpt-5.4"]))
 * )
 * ```
 * @since 0.1.0
 */
export const observe = (models: Iterable<string>) => {
  const known: ReadonlySet<string> = new Set(models)
  const recordOf = (provider: string, model: string, snapshot: RateLimitSnapshot) =>
    record(keyLabel(known, `${provider}/${model}`), snapshot)
  return <E, R>(self: Effect.Effect<LlmResponse, E, R>): Effect.Effect<LlmResponse, E, R> =>
    self.pipe(
      Effect.tap((response) =>
        response.rateLimit === undefined ? Effect.void : recordOf(response.provider, response.model, response.rateLimit)
      ),
      Effect.tapError((error) => {
        const e = error as {
          readonly provider?: string
          readonly model?: string
          readonly rateLimit?: RateLimitSnapshot
        }
        return e?.rateLimit === undefined || e.provider === undefined || e.model === undefined
          ? Effect.void
          : recordOf(e.provider, e.model, e.rateLimit)
      })
    )
}

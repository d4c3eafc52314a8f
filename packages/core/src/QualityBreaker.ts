/**
 * Quality breaker: while the {@link OutputMonitor} holds a drift for a fallback step's key, the plan skips
 * the step as if its circuit were open, so the path's traffic moves to the next step until the outputs
 * recover.
 *
 * It is a trigger of the same kind as the spend and turn guards: it reads a signal the toolkit measures
 * and turns it away before a call. It plugs into `FallbackPlan.make(steps, { circuit })` as the plan's
 * circuit check, wrapping the circuit breaker when there is one (an open circuit is still skipped). The
 * move is immediate: the first call after the detection goes to the next step.
 *
 * A drifted step keeps a trickle of traffic (`probeRate`, 5% by default): without outputs the monitor could
 * never see the step recover. Set it to 0 to stop the step completely; then recover it by hand with
 * `OutputMonitor.rebaseline`. Probes are drawn with `Random`.
 *
 * @since 0.1.0
 */
import { Effect, Metric, Random, Schema } from "effect"
import type { CircuitCheck } from "./FallbackPlan.ts"
import { CircuitOpen } from "./LlmError.ts"
import type { OutputMonitor } from "./OutputMonitor.ts"

/**
 * Options; defaults in brackets.
 *
 * @example
 * ```ts
 * import type { QualityBreaker } from "@llm-resilience/core"
 * const options: QualityBreaker.Options = { probeRate: 0.05, retryAfterMs: 60_000 }
 * ```
 * @since 0.1.0
 */
export interface Options {
  /** The circuit check to consult first (e.g. the `CircuitBreaker`). */
  readonly circuit?: CircuitCheck | undefined
  /** Fraction of a drifted step's calls still let through, so that the monitor sees it recover. [0.05] */
  readonly probeRate?: number | undefined
  /** The `retryAfterMs` of the `CircuitOpen` a diverted call carries. [60000, one monitor interval] */
  readonly retryAfterMs?: number | undefined
}

const OptionsSchema = Schema.Struct({
  probeRate: Schema.optional(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 }))),
  retryAfterMs: Schema.optional(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)))
})

/**
 * Calls diverted from a step because its outputs drifted, by `key`.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { QualityBreaker } from "@llm-resilience/core"
 * const diverted = Metric.value(Metric.withAttributes(QualityBreaker.diverted, { key: "openai/gpt-5.4-mini" }))
 * ```
 * @since 0.1.0
 */
export const diverted = Metric.counter("llm_quality_breaker_diverted", {
  description: "calls moved off a step whose outputs drifted",
  incremental: true
})

/**
 * Builds the circuit check: `check(key)` fails with `CircuitOpen` when the wrapped circuit does, or when
 * `key` has a drift and the call is not a probe.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { LlmProvider } from "@llm-resilience/core"
 * import { CircuitBreaker, FallbackPlan, OutputMonitor, QualityBreaker } from "@llm-resilience/core"
 *
 * declare const openai: LlmProvider.LlmProvider["Service"]
 * declare const anthropic: LlmProvider.LlmProvider["Service"]
 * const program = Effect.gen(function*() {
 *   const monitor = yield* OutputMonitor.make()
 *   const breaker = yield* CircuitBreaker.make()
 *   const circuit = yield* QualityBreaker.make(monitor, { circuit: breaker })
 *   return yield* FallbackPlan.make(
 *     [
 *       FallbackPlan.step(openai, { model: "gpt-5.4-mini", policy: monitor.policy() }),
 *       FallbackPlan.step(anthropic, { model: "claude-sonnet-4-6", policy: monitor.policy() })
 *     ],
 *     { circuit }
 *   )
 * })
 * ```
 * @since 0.1.0
 */
export const make = (monitor: OutputMonitor, options: Options = {}): Effect.Effect<CircuitCheck, Schema.SchemaError> =>
  Effect.gen(function* () {
    const { circuit, ...data } = options
    yield* Schema.decodeUnknownEffect(OptionsSchema)(data, { errors: "all" })
    const probeRate = options.probeRate ?? 0.05
    const retryAfterMs = options.retryAfterMs ?? 60_000
    const quality = (key: string): Effect.Effect<void, CircuitOpen> =>
      Effect.flatMap(monitor.drifted(key), (signals) => {
        if (signals.length === 0) return Effect.void
        return Effect.flatMap(Random.next, (r) =>
          r < probeRate
            ? Effect.void
            : Effect.andThen(
                Metric.update(Metric.withAttributes(diverted, { key }), 1),
                Effect.fail(new CircuitOpen({ key, retryAfterMs }))
              )
        )
      })
    return {
      check: circuit === undefined ? quality : (key) => Effect.andThen(circuit.check(key), quality(key))
    }
  })

/**
 * Quality hook: a user-supplied judge scores a sampled fraction of responses, and a score below the
 * threshold counts as a circuit-breaker failure for the key that answered.
 *
 * A provider can fail while answering 200: an overloaded model that returns empty or truncated text, a
 * silent model downgrade, a regression that writes refusals. Status codes never show it; a judge can. The
 * toolkit ships no judge: pass any Effect that returns a score (higher is better), e.g. a heuristic, an
 * embedding similarity or a cheaper model grading the answer (see `examples/quality-judge.ts`).
 *
 * Sampling reads `Random`, so tests fix it. The judge runs inline after the response, only for sampled
 * responses; its failures and defects are logged and count as "not judged", never as a failed call.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Metric, Random, Schema } from "effect"
import type { CircuitBreaker } from "./CircuitBreaker.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse } from "./LlmResponse.ts"
import { tagged } from "./internal/metrics.ts"

const OptionsSchema = Schema.Struct({
  threshold: Schema.optional(Schema.Finite),
  sampleRate: Schema.optional(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 })))
})

/**
 * A judge: scores one response to one request. Higher is better.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { QualityJudge } from "@llm-resilience/core"
 * const nonEmpty: QualityJudge.Judge = (_request, response) => Effect.succeed(response.text.trim().length > 0 ? 1 : 0)
 * ```
 * @since 0.1.0
 */
export type Judge<R = never> = (request: LlmRequest, response: LlmResponse) => Effect.Effect<number, unknown, R>

/**
 * Quality hook configuration; defaults in brackets.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import type { QualityJudge } from "@llm-resilience/core"
 * const options: QualityJudge.Options = {
 *   judge: (_req, res) => Effect.succeed(res.finishReason === "stop" ? 1 : 0),
 *   threshold: 0.5,
 *   sampleRate: 0.05
 * }
 * ```
 * @since 0.1.0
 */
export interface Options<R = never> {
  readonly judge: Judge<R>
  /** A score below this is a failure. [0.5] */
  readonly threshold?: number | undefined
  /** Fraction of responses judged, in [0, 1]. [0.1] */
  readonly sampleRate?: number | undefined
  /** Where failing scores count as failures (`downgrade(key)`: the call's recorded success becomes a failure). */
  readonly breaker?: CircuitBreaker | undefined
}

/**
 * What the hook decided about one response.
 *
 * @example
 * ```ts
 * import type { QualityJudge } from "@llm-resilience/core"
 * const v: QualityJudge.Verdict = { _tag: "Judged", score: 0.2, passed: false }
 * ```
 * @since 0.1.0
 */
export type Verdict =
  | { readonly _tag: "NotSampled" }
  | { readonly _tag: "Judged"; readonly score: number; readonly passed: boolean }
  | { readonly _tag: "JudgeFailed" }

/**
 * The quality hook.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { QualityJudge } from "@llm-resilience/core"
 * const program = Effect.gen(function*() {
 *   const quality = yield* QualityJudge.make({ judge: (_q, r) => Effect.succeed(r.text.length > 0 ? 1 : 0), sampleRate: 1 })
 *   return yield* quality.evaluate("openai/gpt-5.4", { model: "gpt-5.4", messages: [] }, {
 *     text: "", finishReason: "stop", usage: { inputTokens: 1, outputTokens: 0 }, provider: "openai", model: "gpt-5.4"
 *   }) // { _tag: "Judged", score: 0, passed: false }
 * })
 * ```
 * @since 0.1.0
 */
export interface QualityJudge {
  /** Samples, judges, and reports a failing score to the breaker. */
  readonly evaluate: (key: string, request: LlmRequest, response: LlmResponse) => Effect.Effect<Verdict>
  /** The stage: runs the call, then `evaluate` on its response; the response is returned unchanged. */
  readonly protect: (
    key: string,
    request: LlmRequest
  ) => <E, R>(self: Effect.Effect<LlmResponse, E, R>) => Effect.Effect<LlmResponse, E, R>
}

/**
 * The quality hook as a service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { QualityJudge } from "@llm-resilience/core"
 * import type { LlmRequest } from "@llm-resilience/core"
 * const stageFor = (key: string, request: LlmRequest.LlmRequest) =>
 *   Effect.map(QualityJudge.QualityJudge, (quality) => quality.protect(key, request))
 * ```
 * @since 0.1.0
 */
export const QualityJudge: Context.Service<QualityJudge, QualityJudge> = Context.Service<QualityJudge>(
  "@llm-resilience/core/QualityJudge"
)

/**
 * Quality metrics: scores (histogram) and failing scores by key.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { QualityJudge } from "@llm-resilience/core"
 * const failures = Metric.value(Metric.withAttributes(QualityJudge.metrics.failures, { key: "openai/gpt-5.4" }))
 * ```
 * @since 0.1.0
 */
export const metrics = {
  score: Metric.histogram("llm_quality_score", {
    description: "scores given by the quality judge",
    boundaries: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]
  }),
  failures: Metric.counter("llm_quality_failures", {
    description: "judged responses scoring below the threshold",
    incremental: true
  })
}

const notSampled: Verdict = { _tag: "NotSampled" }
const judgeFailed: Verdict = { _tag: "JudgeFailed" }

/**
 * Builds a quality hook. The judge's requirements are captured at construction.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, QualityJudge } from "@llm-resilience/core"
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make()
 *   return yield* QualityJudge.make({
 *     judge: (_req, res) => Effect.succeed(/I can't help/i.test(res.text) ? 0 : 1),
 *     threshold: 0.5,
 *     sampleRate: 0.1,
 *     breaker
 *   })
 * })
 * ```
 * @since 0.1.0
 */
export const make = <R = never>(options: Options<R>): Effect.Effect<QualityJudge, Schema.SchemaError, R> =>
  Effect.gen(function* () {
    const { judge, breaker, ...data } = options
    yield* Schema.decodeUnknownEffect(OptionsSchema)(data, { errors: "all" })
    const threshold = options.threshold ?? 0.5
    const sampleRate = options.sampleRate ?? 0.1
    const context = yield* Effect.context<R>()

    const evaluate = (key: string, request: LlmRequest, response: LlmResponse): Effect.Effect<Verdict> =>
      Effect.flatMap(Random.next, (r) => {
        if (r >= sampleRate) return Effect.succeed(notSampled)
        return judge(request, response).pipe(
          Effect.provideContext(context),
          Effect.flatMap((score): Effect.Effect<Verdict> => {
            const passed = score >= threshold
            const verdict: Verdict = { _tag: "Judged", score, passed }
            const recorded = Metric.update(metrics.score, score)
            if (passed) return Effect.as(recorded, verdict)
            return recorded.pipe(
              Effect.andThen(Metric.update(tagged(metrics.failures, { key }), 1)),
              Effect.andThen(breaker === undefined ? Effect.void : breaker.downgrade(key)),
              Effect.as(verdict)
            )
          }),
          Effect.catchCause((cause) =>
            Effect.as(Effect.logWarning("QualityJudge: the judge failed; response not judged", cause), judgeFailed)
          )
        )
      })

    return QualityJudge.of({
      evaluate,
      protect: (key, request) => (self) => Effect.tap(self, (response) => evaluate(key, request, response))
    })
  })

/**
 * A layer providing {@link QualityJudge}; the judge's requirements become the layer's.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { QualityJudge } from "@llm-resilience/core"
 * const QualityLive = QualityJudge.layer({ judge: (_q, r) => Effect.succeed(r.text.length > 20 ? 1 : 0), sampleRate: 0.05 })
 * ```
 * @since 0.1.0
 */
export const layer = <R = never>(options: Options<R>): Layer.Layer<QualityJudge, Schema.SchemaError, R> =>
  Layer.effect(QualityJudge, make(options))

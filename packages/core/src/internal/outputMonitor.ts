/**
 * The output monitor's option schema and its provider middleware (`OutputMonitor.policy`).
 *
 * @internal
 */
import { Duration, Effect, Option, Schema, Stream } from "effect"
import type { LlmProvider } from "../LlmProvider.ts"
import type { LlmRequest } from "../LlmRequest.ts"
import type { LlmResponse } from "../LlmResponse.ts"
import type { Facts } from "../OutputMonitor.ts"
import type { QualityJudge } from "../QualityJudge.ts"

const DurationInput = Schema.Unknown.check(
  Schema.makeFilter(
    (u) =>
      Option.isSome(Duration.fromInput(u as Duration.Input)) ||
      'expected a duration such as "30 minutes" or a number of milliseconds'
  )
)
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
export const OptionsSchema = Schema.Struct({
  window: Schema.optional(DurationInput),
  reference: Schema.optional(DurationInput),
  interval: Schema.optional(DurationInput),
  falseAlarmsPerWeek: Schema.optional(Schema.Finite.check(Schema.isGreaterThan(0))),
  minSamples: Schema.optional(PositiveInt),
  permutations: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(20))),
  samples: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  dimensions: Schema.optional(
    Schema.Int.check(
      Schema.makeFilter(
        (n) => (n >= 16 && n <= 4096 && (n & (n - 1)) === 0) || "expected a power of two from 16 to 4096"
      )
    )
  ),
  embeddingSampleRate: Schema.optional(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 })))
})

/**
 * Observes every answer of `provider` under `provider/model` of the request, streams included (the text is
 * assembled before it is read); with `judge`, sampled answers are judged first; with `validated`, answers
 * count as schema-valid and `OutputInvalid` failures (their text) as invalid.
 */
export const policy = (
  observe: (response: LlmResponse, facts: Facts) => Effect.Effect<void>,
  provider: LlmProvider["Service"],
  options: { readonly judge?: QualityJudge | undefined; readonly validated?: boolean | undefined }
): LlmProvider["Service"] => {
  const base = (request: LlmRequest) => ({
    key: `${provider.name}/${request.model}`,
    ...(options.validated === true ? { schemaValid: true } : {})
  })
  const judged = (request: LlmRequest, response: LlmResponse) => {
    const facts = base(request)
    const judge = options.judge
    if (judge === undefined) return observe(response, facts)
    return Effect.flatMap(judge.evaluate(facts.key, request, response), (verdict) =>
      observe(response, verdict._tag === "Judged" ? { ...facts, judgePassed: verdict.passed } : facts)
    )
  }
  return {
    name: provider.name,
    complete: (request) =>
      provider.complete(request).pipe(
        Effect.tap((response) => judged(request, response)),
        Effect.tapError((error) =>
          options.validated === true && error._tag === "OutputInvalid"
            ? observe(
                {
                  text: error.text,
                  finishReason: "stop",
                  usage: { inputTokens: 0, outputTokens: 0 },
                  provider: provider.name,
                  model: request.model
                },
                { ...base(request), schemaValid: false }
              )
            : Effect.void
        )
      ),
    stream: (request) =>
      Stream.suspend(() => {
        let text = ""
        return provider.stream(request).pipe(
          Stream.tap((chunk) => {
            if (chunk._tag === "TextDelta") text += chunk.text
            if (chunk._tag !== "Finish") return Effect.void
            const { _tag, ...meta } = chunk
            return judged(request, { ...meta, text })
          })
        )
      })
  }
}

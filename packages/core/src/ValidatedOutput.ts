/**
 * Validated output: a call that must answer JSON matching an effect `Schema`.
 *
 * The response text is parsed as JSON (a Markdown code fence around it is tolerated) and decoded with the
 * schema. On failure, one repair attempt (on by default) re-asks the same provider with the conversation
 * extended by the invalid answer and a user message quoting the validation error; if that fails too, the
 * call fails with {@link LlmError.OutputInvalid}, which the fallback plan moves on from by default, so the
 * next step (another model) gets its chance.
 *
 * Every failed validation is counted in {@link schemaFailures} (by provider, model and attempt): a rising
 * rate is an early sign that a model changed under you.
 *
 * Two ways in:
 * - {@link policy}: a provider middleware (a fallback step's `policy`), so each step validates and repairs
 *   its own answers;
 * - {@link generate}: run any `complete` function and get the decoded value with the response.
 *
 * @since 0.1.0
 */
import { Effect, Metric, Schema } from "effect"
import type { LlmError } from "./LlmError.ts"
import { OutputInvalid } from "./LlmError.ts"
import type { LlmProvider } from "./LlmProvider.ts"
import type { LlmRequest, Message } from "./LlmRequest.ts"
import type { LlmResponse } from "./LlmResponse.ts"

/**
 * Options. `repair` (default `true`): re-ask once with the validation error. `repairMessage` builds that
 * user message from the issue (default: a short instruction quoting the issue).
 *
 * @example
 * ```ts
 * import type { ValidatedOutput } from "@llm-resilience/core"
 * const options: ValidatedOutput.Options = { repair: true }
 * ```
 * @since 0.1.0
 */
export interface Options {
  readonly repair?: boolean | undefined
  readonly repairMessage?: ((issue: string) => string) | undefined
}

/**
 * A decoded value with the response it came from.
 *
 * @example
 * ```ts
 * import type { ValidatedOutput } from "@llm-resilience/core"
 * const show = (v: ValidatedOutput.Validated<{ readonly score: number }>) => `${v.value.score} by ${v.response.model}`
 * ```
 * @since 0.1.0
 */
export interface Validated<A> {
  readonly value: A
  readonly response: LlmResponse
  /** Whether the value came from the repair attempt. */
  readonly repaired: boolean
}

/**
 * Failed validations, by `provider`, `model` and `attempt` (`initial` or `repair`).
 *
 * @since 0.1.0
 */
export const schemaFailures = Metric.counter("output_schema_failures", {
  description: "responses that failed their output schema, by provider, model and attempt",
  incremental: true
})

const defaultRepairMessage = (issue: string) =>
  `Your previous answer did not match the required JSON schema:\n${issue}\n` +
  "Reply again with only the corrected JSON, no prose and no code fence."

const fence = /^```[a-zA-Z]*\s*\n([\s\S]*?)\n?```$/

/**
 * Parses `text` as JSON (inside a Markdown code fence or not) and decodes it with `schema`.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { ValidatedOutput } from "@llm-resilience/core"
 *
 * const Score = Schema.Struct({ score: Schema.Number })
 * const program = ValidatedOutput.decode(Score)('{"score": 4}') // Effect<{ score: number }, OutputInvalid>
 * ```
 * @since 0.1.0
 */
export const decode = <A>(schema: Schema.Decoder<A>) => {
  const decoder = Schema.decodeUnknownEffect(schema)
  return (text: string): Effect.Effect<A, OutputInvalid> =>
    Effect.suspend(() => {
      const trimmed = text.trim()
      const inner = fence.exec(trimmed)?.[1] ?? trimmed
      let json: unknown
      try {
        json = JSON.parse(inner)
      } catch (e) {
        return Effect.fail(new OutputInvalid({ issue: `not JSON: ${(e as Error).message}`, text }))
      }
      return Effect.mapError(decoder(json), (error) => new OutputInvalid({ issue: error.message, text }))
    })
}

/**
 * Runs `complete`, validates the answer against `schema`, repairs once if allowed, and returns the decoded
 * value. Fails with `OutputInvalid` when the (repaired) answer is still invalid.
 *
 * @example
 * ```ts
 * import { Effect, Schema } from "effect"
 * import { LlmProvider, ValidatedOutput } from "@llm-resilience/core"
 *
 * const Verdict = Schema.Struct({ label: Schema.Literals(["spam", "ham"]), confidence: Schema.Number })
 * const classify = Effect.gen(function*() {
 *   const llm = yield* LlmProvider.LlmProvider
 *   const { value } = yield* ValidatedOutput.generate(Verdict)(llm.complete)({
 *     model: "gpt-5.4-mini",
 *     messages: [{ role: "user", content: "Classify: 'WIN A PRIZE'. Answer {label, confidence} JSON." }]
 *   })
 *   return value.label
 * })
 * ```
 * @since 0.1.0
 */
export const generate = <A>(schema: Schema.Decoder<A>, options: Options = {}) => {
  const parse = decode(schema)
  const repair = options.repair ?? true
  const repairMessage = options.repairMessage ?? defaultRepairMessage
  const failed = (response: LlmResponse, attempt: "initial" | "repair") =>
    Metric.update(
      Metric.withAttributes(schemaFailures, { provider: response.provider, model: response.model, attempt }),
      1
    )
  return <E, R>(complete: (request: LlmRequest) => Effect.Effect<LlmResponse, E, R>) =>
    (request: LlmRequest): Effect.Effect<Validated<A>, E | OutputInvalid, R> =>
      Effect.flatMap(complete(request), (response) =>
        Effect.matchEffect(parse(response.text), {
          onSuccess: (value) => Effect.succeed({ value, response, repaired: false }),
          onFailure: (invalid) => {
            const counted = failed(response, "initial")
            if (!repair) return Effect.andThen(counted, Effect.fail(invalid))
            const messages: ReadonlyArray<Message> = [
              ...request.messages,
              { role: "assistant", content: response.text },
              { role: "user", content: repairMessage(invalid.issue) }
            ]
            return Effect.andThen(
              counted,
              Effect.flatMap(complete({ ...request, messages }), (second) =>
                Effect.matchEffect(parse(second.text), {
                  onSuccess: (value) => Effect.succeed({ value, response: second, repaired: true }),
                  onFailure: (stillInvalid) => Effect.andThen(failed(second, "repair"), Effect.fail(stillInvalid))
                })
              )
            )
          }
        })
      )
}

/**
 * A provider middleware: `complete` answers only with responses whose text matches `schema` (after one
 * repair if allowed), else fails with `OutputInvalid`. Use it as a fallback step's `policy` so that an
 * invalid answer moves the plan on to the next model. `stream` is passed through unchanged (validate the
 * assembled text with {@link decode}).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import type { LlmProvider } from "@llm-resilience/core"
 * import { FallbackPlan, ValidatedOutput } from "@llm-resilience/core"
 *
 * declare const openai: LlmProvider.LlmProvider["Service"]
 * const Answer = Schema.Struct({ answer: Schema.String })
 * const step = FallbackPlan.step(openai, { model: "gpt-5.4-mini", policy: ValidatedOutput.policy(Answer) })
 * ```
 * @since 0.1.0
 */
export const policy = <A>(schema: Schema.Decoder<A>, options: Options = {}) => {
  const run = generate(schema, options)
  return (provider: LlmProvider["Service"]): LlmProvider["Service"] => {
    const validated = run<LlmError, never>(provider.complete)
    return {
      name: provider.name,
      complete: (request) => Effect.map(validated(request), (v) => v.response),
      stream: provider.stream
    }
  }
}

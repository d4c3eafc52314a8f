import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Schema } from "effect"
import { FallbackPlan, LlmError, ValidatedOutput } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

const Score = Schema.Struct({ score: Schema.Number, label: Schema.String })
const request = { model: "m", messages: [{ role: "user" as const, content: "Rate this." }] }

const isolated = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provideService(self, Metric.MetricRegistry, new Map())

const failures = (provider: string, model: string, attempt: "initial" | "repair") =>
  Effect.map(
    Metric.value(Metric.withAttributes(ValidatedOutput.schemaFailures, { provider, model, attempt })),
    (s) => s.count
  )

describe("ValidatedOutput", () => {
  it.effect("schema repair succeeds: the validation error is sent back once", () =>
    isolated(
      Effect.gen(function* () {
        const fake = yield* FakeProvider.make({
          name: "p",
          default: {
            script: [
              FakeProvider.succeed({ text: '{"score": "high", "label": "good"}' }),
              FakeProvider.succeed({ text: '```json\n{"score": 4, "label": "good"}\n```' })
            ]
          }
        })
        const result = yield* ValidatedOutput.generate(Score)(fake.provider.complete)(request)
        assert.deepStrictEqual(result.value, { score: 4, label: "good" })
        assert.isTrue(result.repaired)
        const calls = yield* fake.calls
        assert.strictEqual(calls.length, 2)
        const repairMessages = calls[1].request.messages
        assert.strictEqual(repairMessages.length, 3)
        assert.strictEqual(repairMessages[1].role, "assistant")
        assert.strictEqual(repairMessages[1].content, '{"score": "high", "label": "good"}')
        assert.strictEqual(repairMessages[2].role, "user")
        assert.include(repairMessages[2].content, "score")
        assert.strictEqual(yield* failures("p", "m", "initial"), 1)
        assert.strictEqual(yield* failures("p", "m", "repair"), 0)
      })
    )
  )

  it.effect("a valid first answer costs one call", () =>
    isolated(
      Effect.gen(function* () {
        const fake = yield* FakeProvider.make({ name: "p", default: { text: '{"score": 1, "label": "x"}' } })
        const result = yield* ValidatedOutput.generate(Score)(fake.provider.complete)(request)
        assert.isFalse(result.repaired)
        assert.strictEqual((yield* fake.calls).length, 1)
      })
    )
  )

  it.effect("without repair, an invalid answer fails at once with OutputInvalid", () =>
    isolated(
      Effect.gen(function* () {
        const fake = yield* FakeProvider.make({ name: "p", default: { text: "Sure! Here is your JSON:" } })
        const error = yield* Effect.flip(
          ValidatedOutput.generate(Score, { repair: false })(fake.provider.complete)(request)
        )
        assert.instanceOf(error, LlmError.OutputInvalid)
        assert.include(error.issue, "not JSON")
        assert.strictEqual((yield* fake.calls).length, 1)
      })
    )
  )

  it.effect("schema failure after repair falls back to the next step", () =>
    isolated(
      Effect.gen(function* () {
        const weak = yield* FakeProvider.make({ name: "weak", default: { text: '{"score": "high"}' } })
        const strong = yield* FakeProvider.make({ name: "strong", default: { text: '{"score": 5, "label": "great"}' } })
        const policy = ValidatedOutput.policy(Score)
        const plan = yield* FallbackPlan.make([
          FallbackPlan.step(weak.provider, { model: "w", policy }),
          FallbackPlan.step(strong.provider, { model: "s", policy })
        ])
        const response = yield* plan.complete(request)
        const value = yield* ValidatedOutput.decode(Score)(response.text)
        assert.deepStrictEqual(value, { score: 5, label: "great" })
        assert.strictEqual((yield* weak.calls).length, 2)
        assert.strictEqual(yield* failures("weak", "w", "initial"), 1)
        assert.strictEqual(yield* failures("weak", "w", "repair"), 1)
        const activation = yield* Metric.value(
          Metric.withAttributes(FallbackPlan.fallbackActivations, {
            from: "weak/w",
            to: "strong/s",
            reason: "OutputInvalid"
          })
        )
        assert.strictEqual(activation.count, 1)
      })
    )
  )
})

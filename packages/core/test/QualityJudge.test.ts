import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric, Random } from "effect"
import { CircuitBreaker, type LlmRequest, type LlmResponse, QualityJudge } from "@llm-resilience/core"

const KEY = "openai/gpt-5.4"
const request: LlmRequest.LlmRequest = { model: "gpt-5.4", messages: [{ role: "user", content: "Summarise" }] }
const answer = (text: string): LlmResponse.LlmResponse => ({
  text,
  finishReason: "stop",
  usage: { inputTokens: 10, outputTokens: 5 },
  provider: "openai",
  model: "gpt-5.4"
})

/** A Random that returns the given doubles in turn, cycling. */
const sequenceRandom = (values: ReadonlyArray<number>): Random.Random => {
  let i = 0
  return { nextDoubleUnsafe: () => values[i++ % values.length], nextIntUnsafe: () => 0 }
}

const lengthJudge: QualityJudge.Judge = (_request, response) => Effect.succeed(Math.min(1, response.text.length / 10))

describe("QualityJudge", () => {
  it.effect("judges only the sampled fraction, read from Random", () =>
    Effect.gen(function* () {
      let judged = 0
      const quality = yield* QualityJudge.make({
        judge: (q, r) =>
          Effect.suspend(() => {
            judged++
            return lengthJudge(q, r)
          }),
        sampleRate: 0.25
      })
      const verdicts: Array<string> = []
      for (let i = 0; i < 8; i++) verdicts.push((yield* quality.evaluate(KEY, request, answer("a fine answer")))._tag)
      assert.strictEqual(judged, 2)
      assert.deepStrictEqual(verdicts.slice(0, 4), ["Judged", "NotSampled", "NotSampled", "NotSampled"])
    }).pipe(Effect.provideService(Random.Random, sequenceRandom([0.1, 0.25, 0.5, 0.9])))
  )

  it.effect("a score below the threshold counts as a breaker failure (judge outside or inside the breaker)", () =>
    Effect.gen(function* () {
      const plain = yield* QualityJudge.make({ judge: lengthJudge, threshold: 0.5, sampleRate: 1 })
      assert.deepStrictEqual(yield* plain.evaluate(KEY, request, answer("ok")), {
        _tag: "Judged",
        score: 0.2,
        passed: false
      })

      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
      const quality = yield* QualityJudge.make({ judge: lengthJudge, threshold: 0.5, sampleRate: 1, breaker })
      const good = Effect.succeed(answer("a long enough answer"))
      const empty = Effect.succeed(answer(""))
      yield* good.pipe(breaker.protect(KEY), quality.protect(KEY, request))
      yield* good.pipe(quality.protect(KEY, request), breaker.protect(KEY))
      assert.strictEqual((yield* breaker.status(KEY))._tag, "Closed")
      // judged after the breaker recorded the call: that success becomes a failure
      const returned = yield* empty.pipe(breaker.protect(KEY), quality.protect(KEY, request))
      assert.strictEqual(returned.text, "") // the response is returned unchanged
      const status = yield* breaker.status(KEY)
      assert.deepStrictEqual(
        status._tag === "Closed" ? [status.calls, status.failures, status.consecutiveFailures] : status._tag,
        [3, 1, 1]
      )
      // judged inside the breaker, before it records the call: the call counts as a failure
      yield* empty.pipe(quality.protect(KEY, request), breaker.protect(KEY))
      assert.strictEqual((yield* breaker.status(KEY))._tag, "Open")
      const failures = yield* Metric.value(Metric.withAttributes(QualityJudge.metrics.failures, { key: KEY }))
      assert.strictEqual(failures.count, 3)
    }).pipe(
      Effect.provideService(Random.Random, sequenceRandom([0.5])),
      Effect.provideService(Metric.MetricRegistry, new Map())
    )
  )

  it.effect("a failing judge is logged and judged nothing: no breaker failure", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
      const quality = yield* QualityJudge.make({
        judge: () => Effect.fail("judge unavailable"),
        sampleRate: 1,
        breaker
      })
      assert.deepStrictEqual(yield* quality.evaluate(KEY, request, answer("")), { _tag: "JudgeFailed" })
      assert.strictEqual((yield* breaker.status(KEY))._tag, "Closed")
    })
  )

  it.effect("sampleRate 0 never judges; an invalid sampleRate fails at construction", () =>
    Effect.gen(function* () {
      const quality = yield* QualityJudge.make({ judge: () => Effect.die("never called"), sampleRate: 0 })
      assert.deepStrictEqual(yield* quality.evaluate(KEY, request, answer("")), { _tag: "NotSampled" })
      const error = yield* Effect.flip(QualityJudge.make({ judge: lengthJudge, sampleRate: 2 }))
      assert.include(error.message, "sampleRate")
    }).pipe(Effect.provideService(Random.Random, sequenceRandom([0])))
  )
})

import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Metric, Random, Stream } from "effect"
import { EmbeddingModel } from "effect/ai"
import { TestClock } from "effect/testing"
import { LlmError, type LlmProvider, type LlmResponse, OutputMonitor } from "@llm-resilience/core"
import * as stats from "../src/internal/driftStats.ts"

const KEY = "p/m"
const minute = 60_000

/** Small windows so that a test feeds a few thousand outputs: 10-minute window, 40-minute reference. */
const options: OutputMonitor.Options = {
  window: "10 minutes",
  reference: "40 minutes",
  minSamples: 20,
  embeddingSampleRate: 1,
  permutations: 50
}

const words = "the invoice lists each line with its price and taxes apply after the discount on every order".split(" ")
const mots = "la facture indique chaque ligne avec son prix et les taxes suivent la remise sur chaque commande".split(
  " "
)

/** A deterministic sentence of 12 words from `vocabulary`, varied by `i`. */
const sentence = (vocabulary: ReadonlyArray<string>, i: number) =>
  Array.from({ length: 12 }, (_, j) => vocabulary[(i * 7 + j * 13 + ((i * j) % 5)) % vocabulary.length]).join(" ") + "."

const response = (text: string, overrides: Partial<LlmResponse.LlmResponse> = {}): LlmResponse.LlmResponse => ({
  text,
  finishReason: "stop",
  usage: { inputTokens: 10, outputTokens: Math.ceil(text.length / 4) },
  provider: "p",
  model: "m",
  ...overrides
})

interface Output {
  readonly response: LlmResponse.LlmResponse
  readonly facts?: OutputMonitor.Facts
}
const healthy = (i: number): Output => ({ response: response(sentence(words, i)) })

/** Feeds `perMinute` outputs per virtual minute for `minutes`, the `i`-th from `output(i)`. */
const feed = (monitor: OutputMonitor.OutputMonitor, minutes: number, output: (i: number) => Output, perMinute = 40) =>
  Effect.gen(function* () {
    for (let m = 0; m < minutes; m++) {
      for (let i = 0; i < perMinute; i++) {
        const o = output(m * perMinute + i)
        yield* monitor.observe(o.response, o.facts)
      }
      yield* TestClock.adjust(minute)
    }
  })

/** A monitor and the events it published, collected as they come. */
const setup = (extra: OutputMonitor.Options = {}) =>
  Effect.gen(function* () {
    const monitor = yield* OutputMonitor.make({ ...options, ...extra })
    const events: Array<OutputMonitor.DriftEvent> = []
    yield* Effect.forkChild(Stream.runForEach(monitor.events, (e) => Effect.sync(() => events.push(e))))
    yield* Effect.yieldNow
    return { monitor, events }
  })

const gauge = (metric: Metric.Metric<number, Metric.GaugeState<number>>, attributes: Record<string, string>) =>
  Effect.map(Metric.value(Metric.withAttributes(metric, attributes)), (s) => s.value)

const seeded = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Random.withSeed(7), Effect.provideService(Metric.MetricRegistry, new Map()))

/** One bad output in `every`, the rest healthy. */
const sometimes = (every: number, bad: (i: number) => Output) => (i: number) => (i % every === 0 ? bad(i) : healthy(i))

describe("OutputMonitor", () => {
  it.effect("a rise of mixed-script outputs is detected within minutes, with evidence, metric and event", () =>
    seeded(
      Effect.gen(function* () {
        const { monitor, events } = yield* setup()
        yield* feed(monitor, 50, healthy)
        assert.deepStrictEqual(events, [])
        // 1 output in 10 with a Thai word
        yield* feed(
          monitor,
          5,
          sometimes(10, (i) => ({ response: response(sentence(words, i).replace("price", "ราคา")) }))
        )
        const detected = events.filter((e) => e._tag === "DriftDetected")
        assert.deepStrictEqual(
          detected.map((e) => e.evidence.signal),
          ["mixed_script"]
        )
        const e = detected[0]
        assert.strictEqual(e.key, KEY)
        assert.isAbove(e.at, 50 * minute)
        assert.isAtMost(e.at, 54 * minute)
        assert.strictEqual(e.evidence.reference, 0)
        assert.isAbove(e.evidence.effect, 0.02)
        assert.isAbove(e.evidence.samples.length, 0)
        for (const s of e.evidence.samples) assert.include(s, "ราคา")
        assert.deepStrictEqual(yield* monitor.drifted(KEY), ["mixed_script"])
        assert.strictEqual(yield* gauge(OutputMonitor.metrics.drift, { key: KEY, signal: "mixed_script" }), 1)
        const detections = yield* Metric.value(
          Metric.withAttributes(OutputMonitor.metrics.detections, { key: KEY, signal: "mixed_script" })
        )
        assert.strictEqual(detections.count, 1)

        // healthy again: the drift ends once the current window no longer shows it
        yield* feed(monitor, 15, healthy)
        assert.deepStrictEqual(
          events.map((x) => x._tag),
          ["DriftDetected", "DriftRecovered"]
        )
        assert.deepStrictEqual(yield* monitor.drifted(KEY), [])
        assert.strictEqual(yield* gauge(OutputMonitor.metrics.drift, { key: KEY, signal: "mixed_script" }), 0)

        // the same bug again: the minutes that showed it the first time never became reference
        yield* feed(
          monitor,
          5,
          sometimes(10, (i) => ({ response: response(sentence(words, i).replace("price", "ราคา")) }))
        )
        const again = events.filter((x) => x._tag === "DriftDetected")
        assert.strictEqual(again.length, 2)
        assert.strictEqual(again[1].evidence.reference, 0)
      })
    )
  )

  it.effect("a larger false-alarm budget detects the same shift sooner", () =>
    seeded(
      Effect.gen(function* () {
        const detectedAt = (falseAlarmsPerWeek: number) =>
          Effect.gen(function* () {
            const { monitor, events } = yield* setup({ falseAlarmsPerWeek })
            const start = yield* Clock.currentTimeMillis
            yield* feed(monitor, 50, healthy)
            yield* feed(
              monitor,
              10,
              sometimes(40, () => ({ response: response("I'm sorry, but I can't help with that.") }))
            )
            return (events.find((e) => e._tag === "DriftDetected")?.at ?? Infinity) - start
          })
        const strict = yield* detectedAt(0.5)
        const lax = yield* detectedAt(500)
        assert.isBelow(lax, strict)
      })
    )
  )

  it.effect("each rate signal has its own detector", () =>
    seeded(
      Effect.gen(function* () {
        const bad: Record<string, (i: number) => Output> = {
          schema_failure: (i) => ({ response: response(sentence(words, i)), facts: { schemaValid: false } }),
          judge_failure: (i) => ({ response: response(sentence(words, i)), facts: { judgePassed: false } }),
          refusal: () => ({ response: response("I'm sorry, but I can't help with that.") }),
          empty: () => ({ response: response("  ") }),
          length_cut: (i) => ({ response: response(sentence(words, i), { finishReason: "length" }) })
        }
        for (const [signal, make] of Object.entries(bad)) {
          const { monitor, events } = yield* setup()
          const facts = (i: number): Output => ({
            response: healthy(i).response,
            facts: { schemaValid: true, judgePassed: true }
          })
          yield* feed(monitor, 50, facts)
          yield* feed(monitor, 6, sometimes(5, make))
          const detected = events.filter((e) => e._tag === "DriftDetected").map((e) => e.evidence.signal)
          assert.include(detected, signal, `${signal} detected`)
          // no other rate signal reacts (length and embedding may, for empty and refusal texts)
          for (const other of Object.keys(bad)) if (other !== signal) assert.notInclude(detected, other, signal)
        }
      })
    )
  )

  it.effect("output length: a halving is a drift, a 5% change is not", () =>
    seeded(
      Effect.gen(function* () {
        const withTokens = (factor: number) => (i: number) => {
          const r = healthy(i).response
          return { response: { ...r, usage: { ...r.usage, outputTokens: Math.round(r.usage.outputTokens * factor) } } }
        }
        const small = yield* setup()
        yield* feed(small.monitor, 50, healthy)
        yield* feed(small.monitor, 15, withTokens(0.95))
        assert.deepStrictEqual(small.events, [])
        const large = yield* setup()
        yield* feed(large.monitor, 50, healthy)
        yield* feed(large.monitor, 5, withTokens(0.5))
        assert.include(
          large.events.map((e) => e.evidence.signal),
          "output_length"
        )
        const e = large.events.find((x) => x.evidence.signal === "output_length")!
        assert.isBelow(e.evidence.effect, 0.9)
      })
    )
  )

  it.effect("embedding: a switch of language in the same script and length is seen by the featuriser", () =>
    seeded(
      Effect.gen(function* () {
        const { monitor, events } = yield* setup()
        yield* feed(monitor, 50, healthy)
        yield* feed(
          monitor,
          8,
          sometimes(3, (i) => ({ response: response(sentence(mots, i)) }))
        )
        const detected = events.filter((e) => e._tag === "DriftDetected")
        assert.deepStrictEqual(
          detected.map((e) => e.evidence.signal),
          ["embedding"]
        )
        const evidence = detected[0].evidence
        assert.isAtLeast(evidence.effect, 2)
        // the samples are the outputs furthest along the shift: French ones first
        assert.include(mots, evidence.samples[0].split(" ")[0])
      })
    )
  )

  it.effect("with an EmbeddingModel, a sample of outputs is embedded by it; its failures only skip the embedding", () =>
    seeded(
      Effect.gen(function* () {
        let calls = 0
        const model = yield* EmbeddingModel.make({
          // a model that tells English from French: one axis each
          embedMany: ({ inputs }) =>
            Effect.sync(() => {
              calls += inputs.length
              return {
                results: inputs.map((text) => (mots.includes(text.split(" ")[0]) ? [0, 1] : [1, 0.1])),
                usage: { inputTokens: undefined }
              }
            })
        })
        const { monitor, events } = yield* setup({ embeddingModel: model, embeddingSampleRate: 0.5 })
        yield* feed(monitor, 50, healthy)
        assert.closeTo(calls / (50 * 40), 0.5, 0.05)
        yield* feed(
          monitor,
          8,
          sometimes(3, (i) => ({ response: response(sentence(mots, i)) }))
        )
        assert.deepStrictEqual(
          events.filter((e) => e._tag === "DriftDetected").map((e) => e.evidence.signal),
          ["embedding"]
        )

        const broken = yield* EmbeddingModel.make({ embedMany: () => Effect.die("embedding service down") })
        const second = yield* setup({ embeddingModel: broken, embeddingSampleRate: 1 })
        yield* feed(second.monitor, 2, healthy)
        const observations = yield* Metric.value(
          Metric.withAttributes(OutputMonitor.metrics.observations, { key: KEY })
        )
        assert.strictEqual(observations.count, 58 * 40 + 2 * 40)
      })
    )
  )

  it.effect("no alarm on stationary traffic over a simulated day", () =>
    seeded(
      Effect.gen(function* () {
        const { monitor, events } = yield* setup({ window: "30 minutes", reference: "6 hours" })
        // healthy traffic with its own background noise: 1% refusals, 1% cut, judge failing 2%
        const noisy = (i: number): Output => {
          const r = healthy(i)
          if (i % 100 === 7) return { response: response("I'm sorry, but I can't help with that.") }
          if (i % 100 === 31) return { response: { ...r.response, finishReason: "length" } }
          return i % 20 === 0 ? { ...r, facts: { judgePassed: (i / 20) % 50 !== 3 } } : r
        }
        yield* feed(monitor, 24 * 60, noisy, 10)
        assert.deepStrictEqual(events, [])
        // the signal values are exported for dashboards
        const refusals = yield* gauge(OutputMonitor.metrics.value, { key: KEY, signal: "refusal", window: "reference" })
        assert.closeTo(refusals, 0.01, 0.002)
      })
    )
  )

  it.effect("nothing is tested before the reference holds a window's worth of buckets", () =>
    seeded(
      Effect.gen(function* () {
        const { monitor, events } = yield* setup()
        // bad from the start: there is no healthy period to compare with
        yield* feed(monitor, 15, () => ({ response: response("I'm sorry, but I can't help with that.") }))
        assert.deepStrictEqual(events, [])
      })
    )
  )

  it.effect("the reference is the last healthy period: a persisting drift never becomes the norm", () =>
    seeded(
      Effect.gen(function* () {
        const { monitor, events } = yield* setup()
        const refusing = () => ({ response: response("I'm sorry, but I can't help with that.") })
        yield* feed(monitor, 50, healthy)
        // far longer than the reference span: still in drift at the end
        yield* feed(monitor, 120, sometimes(4, refusing))
        assert.deepStrictEqual(
          events.map((e) => `${e._tag} ${e.evidence.signal}`).filter((s) => s.endsWith("refusal")),
          ["DriftDetected refusal"]
        )
        assert.include(yield* monitor.drifted(KEY), "refusal")
        // accepted as the new norm: the drift ends, and the refusing outputs become the reference
        yield* monitor.rebaseline(KEY)
        assert.deepStrictEqual(yield* monitor.drifted(KEY), [])
        yield* feed(monitor, 40, sometimes(4, refusing))
        assert.notInclude(yield* monitor.drifted(KEY), "refusal")
      })
    )
  )

  it.effect("the policy observes complete and stream answers, and OutputInvalid as a schema failure", () =>
    seeded(
      Effect.gen(function* () {
        const { monitor } = yield* setup({ samples: 1 })
        let n = 0
        const provider: LlmProvider.LlmProvider["Service"] = {
          name: "p",
          complete: () =>
            Effect.suspend(() =>
              n++ % 4 === 0
                ? Effect.fail(new LlmError.OutputInvalid({ issue: "not JSON", text: "oops" }))
                : Effect.succeed(response("{}"))
            ),
          stream: () =>
            Stream.fromIterable([
              { _tag: "TextDelta" as const, text: "Привет, " },
              { _tag: "TextDelta" as const, text: "world" },
              {
                _tag: "Finish" as const,
                finishReason: "stop" as const,
                usage: { inputTokens: 1, outputTokens: 2 },
                provider: "p",
                model: "m"
              }
            ])
        }
        const observed = monitor.policy({ validated: true })(provider)
        const request = { model: "m", messages: [{ role: "user" as const, content: "Hi" }] }
        for (let m = 0; m < 60; m++) {
          for (let i = 0; i < 40; i++) {
            const exit = yield* Effect.exit(observed.complete(request))
            if (m < 50) assert.isTrue(Exit.isSuccess(exit) || n % 4 === 1)
          }
          if (m >= 50) yield* Stream.runDrain(observed.stream(request))
          yield* TestClock.adjust(minute)
        }
        const observations = yield* Metric.value(
          Metric.withAttributes(OutputMonitor.metrics.observations, { key: "p/m" })
        )
        assert.strictEqual(observations.count, 60 * 40 + 10)
        const schema = yield* gauge(OutputMonitor.metrics.value, {
          key: KEY,
          signal: "schema_failure",
          window: "reference"
        })
        assert.closeTo(schema, 0.25, 0.01)
        // the streamed answers (Cyrillic and Latin) are assembled before they are read
        const mixed = yield* gauge(OutputMonitor.metrics.value, { key: KEY, signal: "mixed_script", window: "current" })
        assert.isAbove(mixed, 0)
      })
    )
  )

  it.effect("invalid options fail with a SchemaError naming the field", () =>
    Effect.gen(function* () {
      const bad = yield* Effect.exit(OutputMonitor.make({ falseAlarmsPerWeek: 0, dimensions: 100 }))
      assert.isTrue(Exit.isFailure(bad))
      const message = String(Exit.isFailure(bad) ? bad.cause : "")
      assert.include(message, "falseAlarmsPerWeek")
      assert.include(message, "dimensions")
    })
  )
})

describe("drift statistics", () => {
  it("Fisher's exact upper tail matches the hypergeometric", () => {
    // 3 of 10 current vs 0 of 10 reference: P(X >= 3) with 3 successes in 20, 10 drawn = C(10,3)/C(20,3)
    assert.closeTo(stats.rateIncrease(3, 10, 0, 10), 120 / 1140, 1e-12)
    assert.strictEqual(stats.rateIncrease(1, 10, 5, 10), 1) // a decrease is never a drift
    assert.isBelow(stats.rateIncrease(40, 1000, 10, 10000), 1e-20)
  })

  it("the normal and gamma tails", () => {
    assert.closeTo(stats.normalSurvival(1.959964), 0.025, 1e-6)
    assert.closeTo(stats.normalSurvival(-1), 0.841345, 1e-5)
    // a chi-square with 4 degrees of freedom (mean 4, variance 8): P(X > 9.4877) = 0.05
    assert.closeTo(stats.gammaSurvival(9.4877, 4, 8), 0.05, 0.003)
  })

  it("the permutation test is calibrated on exchangeable buckets and reads its draws from nextInt", () => {
    let seed = 1
    const next = () => {
      seed = (seed * 16807) % 2147483647
      return seed / 2147483647
    }
    const bucket = (shift: number) => {
      const sum = new Float64Array(8)
      for (let j = 0; j < 10; j++) for (let i = 0; i < 8; i++) sum[i] += next() - 0.5 + (i === 0 ? shift : 0)
      return { n: 10, sum }
    }
    const draws: Array<number> = []
    const nextInt = (n: number) => {
      const k = Math.floor(next() * n)
      draws.push(k)
      return k
    }
    let low = 0
    for (let t = 0; t < 200; t++) {
      const r = stats.centroidShift(
        Array.from({ length: 10 }, () => bucket(0)),
        Array.from({ length: 40 }, () => bucket(0)),
        50,
        nextInt
      )!
      if (r.pValue < 0.05) low++
    }
    assert.isBelow(low, 25) // about 10 expected
    assert.strictEqual(draws.length, 200 * 50 * 10)
    const shifted = stats.centroidShift(
      Array.from({ length: 10 }, () => bucket(0.2)),
      Array.from({ length: 40 }, () => bucket(0)),
      50,
      nextInt
    )!
    assert.isBelow(shifted.pValue, 1e-6)
    assert.isAbove(shifted.direction[0], 0.9)
  })
})

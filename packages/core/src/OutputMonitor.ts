/**
 * Output monitor: watches what each provider/model answers over rolling windows and raises a drift when
 * the answers change, even while every call succeeds.
 *
 * A provider can degrade quality for weeks with normal HTTP success rates: requests routed to servers with
 * another context window, a sampler that makes rare tokens (another script) likely, a compiler bug that
 * drops the most likely token. The monitor reads, for every output:
 *
 * | signal | what | test |
 * | --- | --- | --- |
 * | `schema_failure` | output failed its schema (when validated) | rate went up (Fisher exact) |
 * | `judge_failure` | sampled judge scored below its threshold | rate went up (Fisher exact) |
 * | `refusal` | refusal wording or `content_filter` | rate went up (Fisher exact) |
 * | `empty` | blank text (tool calls excluded) | rate went up (Fisher exact) |
 * | `length_cut` | stopped by the output cap (`length`) | rate went up (Fisher exact) |
 * | `mixed_script` | letters of more than one writing system | rate went up (Fisher exact) |
 * | `output_length` | log of the output tokens | mean moved (Welch) |
 * | `embedding` | the output's embedding | centroid moved (permutation test) |
 *
 * The embedding of a sample of outputs (10%) comes from an `EmbeddingModel` (`effect/ai`) when one is configured, otherwise
 * from a built-in featuriser: hashed character 1- to 3-grams, which needs no download and
 * reacts to a change of language, script or format.
 *
 * Outputs go into one-minute buckets (`interval`). When a bucket ends, each signal of the current window
 * (the last `window`, 30 minutes) is tested against the reference: the most recent healthy buckets before
 * it (`reference`, 6 hours), so a drift never becomes the norm. The significance level of every test is
 * `falseAlarmsPerWeek / (checks per week x signals)`: a Bonferroni bound, conservative because consecutive
 * windows overlap. A drift sets `llm_output_drift` to 1, counts `llm_output_drift_detections`, logs a
 * warning and publishes a {@link DriftEvent} with the evidence; it recovers when the same test's p-value
 * is above 0.05. Time is read from `Clock` and permutations from `Random`.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, type Fiber, Layer, Metric, PubSub, Random, Schema, Stream } from "effect"
import type { EmbeddingModel } from "effect/ai/EmbeddingModel"
import * as features from "./internal/outputFeatures.ts"
import * as internal from "./internal/outputMonitor.ts"
import * as windows from "./internal/outputWindows.ts"
import type { LlmProvider } from "./LlmProvider.ts"
import type { LlmResponse } from "./LlmResponse.ts"
import { KeyedState } from "./internal/keyedState.ts"
import type { QualityJudge } from "./QualityJudge.ts"

/**
 * A monitored signal.
 *
 * @since 0.1.0
 */
export type Signal = windows.Signal

/**
 * Every signal, in a fixed order.
 *
 * @example
 * ```ts
 * import { OutputMonitor } from "@llm-resilience/core"
 * OutputMonitor.signals.includes("mixed_script") // true
 * ```
 * @since 0.1.0
 */
export const signals: ReadonlyArray<Signal> = windows.signals

/**
 * What a test saw: the signal's value in the reference and in the current window, the effect size
 * (difference of rates; ratio for length and embeddings), the p-value, the sample counts and up to
 * `samples` outputs of the current window (flagged ones for rates, those furthest along the shift for
 * embeddings).
 *
 * @since 0.1.0
 */
export type Evidence = windows.Evidence

/**
 * A signal of a key drifting, or recovering.
 *
 * @example
 * ```ts
 * import type { OutputMonitor } from "@llm-resilience/core"
 * const describe = (e: OutputMonitor.DriftEvent) =>
 *   `${e.key} ${e.evidence.signal} ${e._tag === "DriftDetected" ? "drifted" : "recovered"}`
 * ```
 * @since 0.1.0
 */
export interface DriftEvent {
  readonly _tag: "DriftDetected" | "DriftRecovered"
  readonly key: string
  /** Clock time of the check, in milliseconds. */
  readonly at: number
  readonly evidence: Evidence
}

/**
 * Monitor configuration; defaults in brackets.
 *
 * @example
 * ```ts
 * import type { OutputMonitor } from "@llm-resilience/core"
 * const options: OutputMonitor.Options = { window: "30 minutes", reference: "6 hours", falseAlarmsPerWeek: 0.5 }
 * ```
 * @since 0.1.0
 */
export interface Options {
  /** The current window each test reads. ["30 minutes"] */
  readonly window?: Duration.Input | undefined
  /** How much healthy history the reference keeps. ["6 hours"] */
  readonly reference?: Duration.Input | undefined
  /** Bucket length, and how often a key with traffic is tested. ["1 minute"] */
  readonly interval?: Duration.Input | undefined
  /** Expected false alarms per key and week on stationary traffic (an upper bound). [0.5] */
  readonly falseAlarmsPerWeek?: number | undefined
  /** Outputs a signal needs in each of the two windows before it is tested. [30] */
  readonly minSamples?: number | undefined
  /** Permutations fitting the embedding test's null distribution. [100] */
  readonly permutations?: number | undefined
  /** Sample outputs carried in a drift's evidence (0: none, when outputs must not leave the process). [5] */
  readonly samples?: number | undefined
  /** What a refusal looks like. [English refusal phrases, see docs/monitoring.md] */
  readonly refusal?: RegExp | undefined
  /** Dimensions of the built-in featuriser, a power of two. [64] */
  readonly dimensions?: number | undefined
  /** Embed outputs with this model instead of the built-in featuriser. */
  readonly embeddingModel?: EmbeddingModel | undefined
  /** Fraction of outputs embedded (by `embeddingModel` or the featuriser). [0.1] */
  readonly embeddingSampleRate?: number | undefined
}

/**
 * What is known about one output besides its response.
 *
 * @example
 * ```ts
 * import type { OutputMonitor } from "@llm-resilience/core"
 * const facts: OutputMonitor.Facts = { key: "openai/gpt-5.4-mini", schemaValid: true }
 * ```
 * @since 0.1.0
 */
export interface Facts {
  /** The key the output counts for. [`provider/model` of the response] */
  readonly key?: string | undefined
  /** Whether the output matched its schema, when one was checked. */
  readonly schemaValid?: boolean | undefined
  /** Whether a judge passed the output, when it was judged. */
  readonly judgePassed?: boolean | undefined
}

/**
 * The monitor.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { OutputMonitor } from "@llm-resilience/core"
 * const alerts = Effect.gen(function*() {
 *   const monitor = yield* OutputMonitor.make()
 *   return monitor.events.pipe(Stream.filter((e) => e._tag === "DriftDetected"))
 * })
 * ```
 * @since 0.1.0
 */
export interface OutputMonitor {
  /** Records one output; when a bucket has ended, tests the key's signals first. */
  readonly observe: (response: LlmResponse, facts?: Facts) => Effect.Effect<void>
  /** The signals of `key` in drift now. */
  readonly drifted: (key: string) => Effect.Effect<ReadonlyArray<Signal>>
  /** Every detection and recovery. */
  readonly events: Stream.Stream<DriftEvent>
  /**
   * Accepts the outputs of `key` from now on as the norm: its drifts end and its history is forgotten, so its
   * tests resume once the new outputs fill a reference and a window.
   */
  readonly rebaseline: (key: string) => Effect.Effect<void>
  /**
   * A provider middleware (a fallback step's `policy`) observing every answer under `provider/model` of the
   * request, streams included. With `judge`, sampled answers are judged first; with `validated`, place it
   * outside `ValidatedOutput.policy`: answers count as schema-valid and `OutputInvalid` failures as invalid.
   */
  readonly policy: (options?: {
    readonly judge?: QualityJudge | undefined
    readonly validated?: boolean | undefined
  }) => (provider: LlmProvider["Service"]) => LlmProvider["Service"]
}

/**
 * The monitor as a service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { OutputMonitor } from "@llm-resilience/core"
 * const driftedNow = Effect.flatMap(OutputMonitor.OutputMonitor, (m) => m.drifted("openai/gpt-5.4-mini"))
 * ```
 * @since 0.1.0
 */
export const OutputMonitor: Context.Service<OutputMonitor, OutputMonitor> = Context.Service<OutputMonitor>(
  "@llm-resilience/core/OutputMonitor"
)

/**
 * Monitor metrics, by `key` and `signal`: `drift` (gauge, 1 while drifted), `detections` (counter),
 * `value` (gauge of the signal's last tested value, `window` = `current` or `reference`) and
 * `observations` (counter of outputs, by `key`).
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { OutputMonitor } from "@llm-resilience/core"
 * const drifting = Metric.value(Metric.withAttributes(OutputMonitor.metrics.drift, { key: "openai/gpt-5.4", signal: "embedding" }))
 * ```
 * @since 0.1.0
 */
export const metrics = {
  drift: Metric.gauge("llm_output_drift", { description: "1 while a signal of a key is in drift" }),
  detections: Metric.counter("llm_output_drift_detections", {
    description: "drifts detected, by key and signal",
    incremental: true
  }),
  value: Metric.gauge("llm_output_signal", {
    description: "last tested value of an output signal (rate, typical length in tokens, centroid distance)"
  }),
  observations: Metric.counter("llm_output_observations", {
    description: "outputs seen by the output monitor",
    incremental: true
  })
}

/**
 * The default refusal pattern: common English refusal openings.
 *
 * @example
 * ```ts
 * import { OutputMonitor } from "@llm-resilience/core"
 * OutputMonitor.defaultRefusal.test("I'm sorry, but I can't help with that.") // true
 * ```
 * @since 0.1.0
 */
export const defaultRefusal: RegExp =
  /\b(?:I(?:'m| am) sorry,? but|I can(?:'|no)t (?:help|assist|comply)|I(?:'m| am) (?:unable|not able) to (?:help|assist)|As an AI\b)/i

const weekMs = 7 * 24 * 60 * 60 * 1000
const millis = (input: Duration.Input | undefined, fallback: number) =>
  input === undefined ? fallback : Duration.toMillis(Duration.fromInputUnsafe(input))

/**
 * Builds a monitor. Fails with a `SchemaError` naming the field when an option is invalid.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { OutputMonitor } from "@llm-resilience/core"
 * const program = Effect.gen(function*() {
 *   const monitor = yield* OutputMonitor.make({ falseAlarmsPerWeek: 0.5 })
 *   yield* monitor.observe({
 *     text: "Bonjour !", finishReason: "stop", usage: { inputTokens: 5, outputTokens: 3 }, provider: "openai", model: "gpt-5.4-mini"
 *   })
 *   return yield* monitor.drifted("openai/gpt-5.4-mini") // []
 * })
 * ```
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<OutputMonitor, Schema.SchemaError> =>
  Effect.gen(function* () {
    const { refusal: refusalOption, embeddingModel, ...data } = options
    yield* Schema.decodeUnknownEffect(internal.OptionsSchema)(data, { errors: "all" })
    const bucketMs = millis(options.interval, 60_000)
    const windowMs = Math.max(bucketMs, millis(options.window, 30 * 60_000))
    const config: windows.Config = {
      bucketMs,
      windowMs,
      referenceBuckets: Math.max(2, Math.round(millis(options.reference, 6 * 60 * 60_000) / bucketMs)),
      alpha: (options.falseAlarmsPerWeek ?? 0.5) / ((weekMs / bucketMs) * windows.signals.length),
      recoverAlpha: 0.05,
      minSamples: options.minSamples ?? 30,
      permutations: options.permutations ?? 100,
      samples: options.samples ?? 5
    }
    const refusal = refusalOption ?? defaultRefusal
    const dimensions = options.dimensions ?? 64
    const sampleRate = options.embeddingSampleRate ?? 0.1
    // at most 10,000 keys; a key unused for longer than its reference history holds nothing worth keeping;
    // a drifted key is never dropped
    const keys = new KeyedState<{
      readonly state: windows.KeyState
      readonly observations: Metric.Metric<number, unknown>
    }>({ idleMs: (config.referenceBuckets + 1) * bucketMs + windowMs }, (entry) => !windows.isDrifted(entry.state))
    const pubsub = yield* PubSub.sliding<DriftEvent>(1024)

    const embedWithModel = (model: EmbeddingModel, text: string): Effect.Effect<Float64Array | undefined> =>
      model.embed(text).pipe(
        Effect.map((res) => features.normalise(res.vector)),
        Effect.catchCause((cause) =>
          Effect.as(Effect.logWarning("OutputMonitor: embedding failed; output not embedded", cause), undefined)
        )
      )

    const report = (key: string, now: number, changes: ReadonlyArray<windows.Change>) =>
      Effect.forEach(
        changes,
        (change): Effect.Effect<void> => {
          const attributes = { key, signal: change.evidence.signal }
          if (change._tag === "Measured") {
            return Effect.andThen(
              Metric.update(
                Metric.withAttributes(metrics.value, { ...attributes, window: "current" }),
                change.evidence.current
              ),
              Metric.update(
                Metric.withAttributes(metrics.value, { ...attributes, window: "reference" }),
                change.evidence.reference
              )
            )
          }
          const detected = change._tag === "Detected"
          const event: DriftEvent = {
            _tag: detected ? "DriftDetected" : "DriftRecovered",
            key,
            at: now,
            evidence: change.evidence
          }
          return Effect.all([
            Metric.update(Metric.withAttributes(metrics.drift, attributes), detected ? 1 : 0),
            detected ? Metric.update(Metric.withAttributes(metrics.detections, attributes), 1) : Effect.void,
            PubSub.publish(pubsub, event),
            detected
              ? Effect.logWarning(`OutputMonitor: ${key} ${change.evidence.signal} drifted`, change.evidence)
              : Effect.logInfo(`OutputMonitor: ${key} ${change.evidence.signal} recovered`)
          ]).pipe(Effect.asVoid)
        },
        { discard: true }
      )

    // One output, recorded synchronously: an observation allocates no Effect unless a check reports changes
    // or an embedding model is called.
    const record = (
      fiber: Fiber.Fiber<unknown, unknown>,
      response: LlmResponse,
      facts: Facts,
      embedding: Float64Array | undefined
    ): Effect.Effect<void> => {
      const key = facts.key ?? `${response.provider}/${response.model}`
      const text = response.text
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const entry = keys.getOrCreate(key, now, () => ({
        state: windows.make(),
        observations: Metric.counter(metrics.observations.id, {
          description: metrics.observations.description,
          attributes: { key },
          incremental: true
        })
      }))
      let changes: ReadonlyArray<windows.Change> = []
      if (windows.due(entry.state, now, config)) {
        const random = fiber.getRef(Random.Random)
        changes = windows.check(entry.state, now, config, (n) => Math.floor(random.nextDoubleUnsafe() * n))
      }
      const finish = response.finishReason
      windows.add(
        entry.state,
        now,
        {
          flags: [
            facts.schemaValid === undefined ? undefined : !facts.schemaValid,
            facts.judgePassed === undefined ? undefined : !facts.judgePassed,
            finish === "content_filter" || refusal.test(text.slice(0, 400)),
            finish !== "tool_calls" && text.trim() === "",
            finish === "length",
            features.isMixed(features.scripts(text))
          ],
          logLength: Math.log1p(Math.max(0, response.usage.outputTokens)),
          text,
          embedding
        },
        config
      )
      entry.observations.updateUnsafe(1, fiber.context)
      return changes.length === 0 ? Effect.void : report(key, now, changes)
    }

    const observe = (response: LlmResponse, facts: Facts = {}): Effect.Effect<void> =>
      Effect.withFiber((fiber) => {
        const sampled = fiber.getRef(Random.Random).nextDoubleUnsafe() < sampleRate
        if (!sampled) return record(fiber, response, facts, undefined)
        if (embeddingModel === undefined) {
          return record(fiber, response, facts, features.featurise(response.text, dimensions))
        }
        return Effect.flatMap(embedWithModel(embeddingModel, response.text), (embedding) =>
          record(fiber, response, facts, embedding)
        )
      })

    const monitor: OutputMonitor = {
      observe,
      drifted: (key) =>
        Effect.sync(() => {
          const state = keys.get(key)?.state
          return state === undefined ? [] : windows.signals.filter((_, i) => state.drifted[i] !== undefined)
        }),
      events: Stream.fromPubSub(pubsub),
      rebaseline: (key) =>
        Effect.suspend(() => {
          const state = keys.get(key)?.state
          if (state === undefined) return Effect.void
          const was = windows.signals.filter((_, i) => state.drifted[i] !== undefined)
          windows.rebaseline(state)
          return Effect.forEach(
            was,
            (signal) => Metric.update(Metric.withAttributes(metrics.drift, { key, signal }), 0),
            {
              discard: true
            }
          )
        }),
      policy:
        (policyOptions = {}) =>
        (provider) =>
          internal.policy(observe, provider, policyOptions)
    }
    return OutputMonitor.of(monitor)
  })

/**
 * A layer providing {@link OutputMonitor}.
 *
 * @example
 * ```ts
 * import { OutputMonitor } from "@llm-resilience/core"
 * const MonitorLive = OutputMonitor.layer({ falseAlarmsPerWeek: 0.5 })
 * ```
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<OutputMonitor, Schema.SchemaError> =>
  Layer.effect(OutputMonitor, make(options))

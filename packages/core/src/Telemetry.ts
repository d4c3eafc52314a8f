/**
 * Call-level telemetry: one span per call and the metrics a dashboard of LLM calls needs.
 *
 * The stages report their own metrics (retries and budget rejections in `Retry`, breaker state and
 * transitions in `CircuitBreaker`, admission waits and rejections in `Admission`, fallback activations in
 * `FallbackPlan`, hedges in `Hedge`, cost in `SpendGuard`); this module adds what is only known for the
 * whole call:
 *
 * | metric | kind | attributes |
 * | --- | --- | --- |
 * | `llm_requests` | counter | provider, model, path, outcome (`success` or the error tag) |
 * | `llm_request_duration_ms` | histogram | provider, model, path |
 * | `llm_time_to_first_token_ms` | histogram | provider, model, path (streams) |
 * | `llm_tokens` | counter | provider, model, direction (`input` / `output` / `cached_input`) |
 * | `llm_rate_limit_headroom` | gauge | key, limit (see `Headroom`) |
 *
 * The span is `llm.call` with `llm.path`, `llm.model` (requested), `llm.provider` and
 * `llm.response.model` (who answered), `llm.outcome`, `llm.duration_ms`, the usage and, for streams,
 * `llm.ttft_ms` (time to first token, recorded when the stream ends, under the provider that answered); the retry stage adds one `llm.retry`
 * event per failed attempt. Nothing here ever records a request's content or an API key.
 *
 * Export with `effect/observability`: `PrometheusMetrics.format()` / `PrometheusMetrics.layerHttp()` for
 * Prometheus, `OtlpTracer` / `OtlpMetrics` for OpenTelemetry (see docs/telemetry.md).
 *
 * @since 0.1.0
 */
import { Clock, type Context, Effect, Exit, type Fiber, Metric, Option, Stream, Tracer } from "effect"
import * as Headroom from "./Headroom.ts"
import type { LlmError } from "./LlmError.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse, StreamChunk, Usage } from "./LlmResponse.ts"
import * as Metrics from "./internal/metrics.ts"
import type { RateLimitSnapshot } from "./RateLimitSnapshot.ts"

/**
 * Calls by provider, model, path and outcome.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { Telemetry } from "@llm-resilience/core"
 * const failures = Metric.value(Metric.withAttributes(Telemetry.requests, { provider: "openai", model: "gpt-5.4", path: "chat", outcome: "Overloaded" }))
 * ```
 * @since 0.1.0
 */
export const requests = Metric.counter("llm_requests", {
  description: "calls through the resilient provider, by outcome",
  incremental: true
})

/**
 * Latency of whole calls (all retries and fallbacks included), in milliseconds.
 *
 * @since 0.1.0
 */
export const latency = Metric.histogram("llm_request_duration_ms", {
  description: "latency of whole calls in milliseconds",
  boundaries: Metric.exponentialBoundaries({ start: 50, factor: 2, count: 14 })
})
const latencyBoundaries = Metric.exponentialBoundaries({ start: 50, factor: 2, count: 14 })

/**
 * Time to the first streamed text chunk, in milliseconds.
 *
 * @since 0.1.0
 */
export const timeToFirstToken = Metric.histogram("llm_time_to_first_token_ms", {
  description: "time to the first streamed chunk in milliseconds",
  boundaries: Metric.exponentialBoundaries({ start: 25, factor: 2, count: 14 })
})
const timeToFirstTokenBoundaries = Metric.exponentialBoundaries({ start: 25, factor: 2, count: 14 })

/**
 * Tokens reported by providers, by direction.
 *
 * @since 0.1.0
 */
export const tokens = Metric.counter("llm_tokens", {
  description: "tokens reported by providers",
  incremental: true
})

type Attributes = Metrics.Attributes

/**
 * A metric's series with attributes, built the way `Metric.withAttributes` names it (same id, description
 * and attributes, so the same series) but with the attributes fixed at construction: a `withAttributes`
 * metric adds them to a copy of the fiber's context on every update (about a microsecond).
 */
const series = (metric: Metric.Metric<number, unknown>, attributes: Attributes): Metric.Metric<number, unknown> => {
  const options = { description: metric.description, attributes }
  switch (metric) {
    case requests:
    case tokens:
      return Metric.counter(metric.id, { ...options, incremental: true })
    case latency:
      return Metric.histogram(metric.id, { ...options, boundaries: latencyBoundaries })
    case timeToFirstToken:
      return Metric.histogram(metric.id, { ...options, boundaries: timeToFirstTokenBoundaries })
    default:
      return Metric.withAttributes(metric, attributes)
  }
}

/** The series of `metric` with `attributes`, from `cache` when there is one (else built for this update). */
const tagged = <In, Out>(
  cache: Metrics.SeriesCache | undefined,
  metric: Metric.Metric<In, Out>,
  id: string,
  attributes: Attributes
): Metric.Metric<In, Out> => {
  const make = series as unknown as Metrics.Make<In, Out>
  return cache === undefined ? make(metric, attributes) : cache.tagged(metric, attributes, id, make)
}

/**
 * The series of one provider, model and path, resolved once: the end of a call then does three map lookups
 * and no attribute objects (the `requests` series per outcome are resolved on first use).
 */
interface Series {
  readonly outcomes: Map<string, Metric.Metric<number, unknown>>
  readonly latency: Metric.Metric<number, unknown>
  readonly inputTokens: Metric.Metric<number, unknown>
  readonly outputTokens: Metric.Metric<number, unknown>
}
const seriesOf = (cache: Metrics.SeriesCache | undefined, provider: string, model: string, path: string): Series => {
  const make = (): Series => ({
    outcomes: new Map(),
    latency: tagged(cache, latency, "l", { provider, model, path }),
    inputTokens: tagged(cache, tokens, "ti", { provider, model, direction: "input" }),
    outputTokens: tagged(cache, tokens, "to", { provider, model, direction: "output" })
  })
  return cache === undefined ? make() : cache.get(make, "s", provider, model, path)
}
const requestsOf = (
  cache: Metrics.SeriesCache | undefined,
  s: Series,
  provider: string,
  model: string,
  path: string,
  outcome: string
) => {
  let m = s.outcomes.get(outcome)
  if (m === undefined) {
    m = tagged(cache, requests, "r", { provider, model, path, outcome })
    s.outcomes.set(outcome, m)
  }
  return m
}

const recordUsage = (
  cache: Metrics.SeriesCache | undefined,
  s: Series,
  provider: string,
  model: string,
  usage: Usage,
  context: Context.Context<never>
): void => {
  s.inputTokens.updateUnsafe(usage.inputTokens, context)
  s.outputTokens.updateUnsafe(usage.outputTokens, context)
  if (usage.cachedInputTokens !== undefined && usage.cachedInputTokens !== 0) {
    tagged(cache, tokens, "tc", { provider, model, direction: "cached_input" }).updateUnsafe(
      usage.cachedInputTokens,
      context
    )
  }
}

/** Who an error came from; an exit without a typed error (interruption, defect) came from the toolkit. */
const errorOrigin = (error: unknown): { provider: string; model: string | undefined } => {
  if (typeof error !== "object" || error === null) return { provider: "toolkit", model: undefined }
  const e = error as { readonly provider?: unknown; readonly model?: unknown }
  return {
    provider: typeof e.provider === "string" ? e.provider : "toolkit",
    model: typeof e.model === "string" ? e.model : undefined
  }
}

type Answered =
  | {
      readonly provider: string
      readonly model: string
      readonly usage: Usage
      readonly rateLimit?: RateLimitSnapshot | undefined
    }
  | undefined

/**
 * What a call's metrics are recorded under: its path, and the models whose names are kept as the `model`
 * label. The caller chooses the model string, so each new name would add metric series for good; a call
 * whose requested and answered models are both outside `models` is recorded under the model `other`. A bare
 * path string keeps every model name.
 *
 * `series` caches the metric series of these labels for their owner (a `Resilience` instance keeps one, so
 * the series it built are released with it); without it each call builds its series anew.
 *
 * @example
 * ```ts
 * import { Telemetry } from "@llm-resilience/core"
 * const labels: Telemetry.Labels = { path: "chat", models: new Set(["gpt-5.4-mini"]) }
 * ```
 * @since 0.1.0
 */
export interface Labels {
  readonly path: string
  readonly models: ReadonlySet<string>
  /** @internal */
  readonly series?: Metrics.SeriesCache | undefined
}

/**
 * The model label value of calls to models outside {@link Labels.models}.
 *
 * @since 0.1.0
 */
export const otherModel = Metrics.otherModel

const pathOf = (labels: string | Labels): string => (typeof labels === "string" ? labels : labels.path)

const finish = (
  request: LlmRequest,
  path: string | Labels,
  startMs: number,
  exit: Exit.Exit<Answered, unknown>,
  ttftMs?: number
) =>
  Effect.withFiber((fiber) => {
    finishUnsafe(fiber, request, path, startMs, exit, ttftMs)
    return Effect.void
  })

/**
 * The end of a call in one synchronous step: span attributes and metric updates applied directly.
 *
 * @internal
 */
export const finishUnsafe = (
  fiber: Fiber.Fiber<unknown, unknown>,
  request: LlmRequest,
  labels: string | Labels,
  startMs: number,
  exit: Exit.Exit<Answered, unknown>,
  ttftMs?: number,
  at?: number
): void => {
  const now = at ?? fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
  let provider: string
  let model: string
  let outcome: string
  let usage: Usage | undefined
  let rateLimit: RateLimitSnapshot | undefined
  if (Exit.isSuccess(exit) && exit.value !== undefined) {
    provider = exit.value.provider
    model = exit.value.model
    outcome = "success"
    usage = exit.value.usage
    rateLimit = exit.value.rateLimit
  } else if (Exit.isSuccess(exit)) {
    provider = "unknown"
    model = request.model
    outcome = "success"
  } else {
    const error = Option.getOrUndefined(Exit.findErrorOption(exit))
    const origin = errorOrigin(error)
    provider = origin.provider
    model = origin.model ?? request.model
    rateLimit = (error as { readonly rateLimit?: RateLimitSnapshot } | undefined)?.rateLimit
    outcome = error === undefined ? (Exit.hasInterrupts(exit) ? "interrupted" : "defect") : (error as LlmError)._tag
  }
  const elapsed = now - startMs
  const span = fiber.cache.span
  if (span !== undefined && span._tag === "Span" && span.status._tag !== "Ended") {
    span.attribute("llm.provider", provider)
    span.attribute("llm.response.model", model)
    span.attribute("llm.outcome", outcome)
    span.attribute("llm.duration_ms", elapsed)
    if (usage !== undefined) {
      span.attribute("llm.usage.input_tokens", usage.inputTokens)
      span.attribute("llm.usage.output_tokens", usage.outputTokens)
    }
    if (ttftMs !== undefined) span.attribute("llm.ttft_ms", ttftMs)
  }
  const context = fiber.context
  let path: string
  let cache: Metrics.SeriesCache | undefined
  if (typeof labels === "string") path = labels
  else {
    path = labels.path
    cache = labels.series
    model = Metrics.modelLabel(labels.models, model, request.model)
  }
  const s = seriesOf(cache, provider, model, path)
  requestsOf(cache, s, provider, model, path, outcome).updateUnsafe(1, context)
  s.latency.updateUnsafe(elapsed, context)
  if (usage !== undefined) recordUsage(cache, s, provider, model, usage, context)
  if (rateLimit !== undefined) Headroom.recordUnsafe(`${provider}/${model}`, rateLimit, context, cache)
  // recorded at the end, with the provider and model that answered (unknown at the first chunk)
  if (ttftMs !== undefined) {
    tagged(cache, timeToFirstToken, "t", { provider, model, path }).updateUnsafe(ttftMs, context)
  }
}

// No stack trace: `withSpan` would capture one per call (several microseconds), and it would only point here.
const spanOptions = (request: LlmRequest, labels: string | Labels) => ({
  kind: "client" as const,
  attributes: { "llm.path": pathOf(labels), "llm.model": request.model },
  captureStackTrace: false
})

/**
 * Observes a whole completion: a `llm.call` span, and the request, latency and token metrics.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmProvider, Telemetry } from "@llm-resilience/core"
 *
 * const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }
 * const observed = Effect.flatMap(LlmProvider.LlmProvider, (llm) =>
 *   llm.complete(request).pipe(Telemetry.observeCall(request, "chat"))
 * )
 * ```
 * @since 0.1.0
 */
export const observeCall =
  (request: LlmRequest, path: string | Labels) =>
  <E, R>(self: Effect.Effect<LlmResponse, E, R>): Effect.Effect<LlmResponse, E, R> =>
    Effect.withFiber((fiber) => {
      const startMs = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      // The handler runs on this same fiber and finishes the call at once: no effect is allocated for it.
      const observed = Effect.onExit(self, (exit: Exit.Exit<LlmResponse, E>) => {
        finishUnsafe(fiber, request, path, startMs, exit)
        return Effect.void
      })
      return spanVisible(fiber) ? Effect.withSpan(observed, "llm.call", spanOptions(request, path)) : observed
    })

/**
 * Whether a `llm.call` span could be seen by anyone: a tracer other than Effect's default native one is
 * installed (an exporter, a test tracer), or the call runs under a parent span (whose tree it joins). With
 * the default tracer and no parent, a span would be created, put in a copy of the fiber's context and
 * dropped unseen (OpenTelemetry's API skips it the same way with its no-op tracer); the metrics are
 * recorded either way.
 *
 * @internal
 */
export const spanVisible = (fiber: Fiber.Fiber<unknown, unknown>): boolean => {
  const cache = fiber.cache
  if (!cache.tracerEnabled) return false
  if (cache.span !== undefined) return true
  return cache.tracer !== undefined && cache.tracer !== Tracer.nativeTracer
}

/**
 * Observes a whole stream: a `llm.call` span, time to first token, and the request, latency and token
 * metrics (usage from the `Finish` chunk).
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { LlmProvider, Telemetry } from "@llm-resilience/core"
 *
 * const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }
 * const chunks = LlmProvider.LlmProvider.use((llm) => Stream.runCollect(llm.stream(request).pipe(Telemetry.observeStream(request, "chat"))))
 * ```
 * @since 0.1.0
 */
export const observeStream =
  (request: LlmRequest, path: string | Labels) =>
  <E, R>(self: Stream.Stream<StreamChunk, E, R>): Stream.Stream<StreamChunk, E, R> =>
    Stream.unwrap(
      Effect.withFiber((fiber) => {
        const clock = fiber.getRef(Clock.Clock)
        const startMs = clock.currentTimeMillisUnsafe()
        const visible = spanVisible(fiber)
        let ttftMs: number | undefined
        let finished: Answered
        const stream = self.pipe(
          Stream.mapArray((chunks) => {
            for (const chunk of chunks) {
              if (chunk._tag === "Finish") {
                finished = {
                  provider: chunk.provider,
                  model: chunk.model,
                  usage: chunk.usage,
                  rateLimit: chunk.rateLimit
                }
              } else ttftMs ??= clock.currentTimeMillisUnsafe() - startMs
            }
            return chunks
          }),
          Stream.onExit((exit) =>
            finish(
              request,
              path,
              startMs,
              Exit.map(exit, () => finished),
              ttftMs
            )
          ),
          (observed) => (visible ? Stream.withSpan(observed, "llm.call", spanOptions(request, path)) : observed)
        )
        return Effect.succeed(stream)
      })
    )

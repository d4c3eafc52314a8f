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
 *
 * The span is `llm.call` with `llm.path`, `llm.model` (requested), `llm.provider` and
 * `llm.response.model` (who answered), `llm.outcome`, and the usage; the retry stage adds one `llm.retry`
 * event per failed attempt. Nothing here ever records a request's content or an API key.
 *
 * Export with `effect/observability`: `PrometheusMetrics.format()` / `PrometheusMetrics.layerHttp()` for
 * Prometheus, `OtlpTracer` / `OtlpMetrics` for OpenTelemetry (see docs/telemetry.md).
 *
 * @since 0.1.0
 */
import { Clock, Effect, Exit, Metric, Option, Stream } from "effect"
import type { LlmError } from "./LlmError.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse, StreamChunk, Usage } from "./LlmResponse.ts"

/**
 * Calls by provider, model, path and outcome.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { Telemetry } from "@llm-resilience/core"
 * const failures = Metric.value(Metric.withAttributes(Telemetry.requests, { provider: "openai", model: "gpt-4o", path: "chat", outcome: "Overloaded" }))
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

/**
 * Time to the first streamed text chunk, in milliseconds.
 *
 * @since 0.1.0
 */
export const timeToFirstToken = Metric.histogram("llm_time_to_first_token_ms", {
  description: "time to the first streamed chunk in milliseconds",
  boundaries: Metric.exponentialBoundaries({ start: 25, factor: 2, count: 14 })
})

/**
 * Tokens reported by providers, by direction.
 *
 * @since 0.1.0
 */
export const tokens = Metric.counter("llm_tokens", {
  description: "tokens reported by providers",
  incremental: true
})

type Attributes = Readonly<Record<string, string>>

/** Metrics with attributes are cached: building one per call would allocate on the hot path. */
const cache = new Map<string, unknown>()
const tagged = <In, Out>(
  metric: Metric.Metric<In, Out>,
  id: string,
  attributes: Attributes
): Metric.Metric<In, Out> => {
  const k = `${id}\u0000${Object.values(attributes).join("\u0000")}`
  let m = cache.get(k) as Metric.Metric<In, Out> | undefined
  if (m === undefined) {
    if (cache.size > 10_000) cache.clear()
    m = Metric.withAttributes(metric, attributes)
    cache.set(k, m)
  }
  return m
}

const recordUsage = (provider: string, model: string, usage: Usage) =>
  Effect.andThen(
    Metric.update(tagged(tokens, "ti", { provider, model, direction: "input" }), usage.inputTokens),
    Effect.andThen(
      Metric.update(tagged(tokens, "to", { provider, model, direction: "output" }), usage.outputTokens),
      usage.cachedInputTokens === undefined || usage.cachedInputTokens === 0
        ? Effect.void
        : Metric.update(tagged(tokens, "tc", { provider, model, direction: "cached_input" }), usage.cachedInputTokens)
    )
  )

const errorOrigin = (error: unknown): { provider: string; model: string | undefined } => {
  const e = error as { readonly provider?: string; readonly model?: string }
  return { provider: e.provider ?? "toolkit", model: e.model }
}

const finish = (
  request: LlmRequest,
  path: string,
  startMs: number,
  exit: Exit.Exit<{ readonly provider: string; readonly model: string; readonly usage: Usage } | undefined, unknown>
) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    let provider: string
    let model: string
    let outcome: string
    let usage: Usage | undefined
    if (Exit.isSuccess(exit) && exit.value !== undefined) {
      provider = exit.value.provider
      model = exit.value.model
      outcome = "success"
      usage = exit.value.usage
    } else if (Exit.isSuccess(exit)) {
      provider = "unknown"
      model = request.model
      outcome = "success"
    } else {
      const error = Option.getOrUndefined(Exit.findErrorOption(exit))
      const origin = errorOrigin(error)
      provider = origin.provider
      model = origin.model ?? request.model
      outcome = error === undefined ? (Exit.hasInterrupts(exit) ? "interrupted" : "defect") : (error as LlmError)._tag
    }
    const elapsed = now - startMs
    return Effect.andThen(
      Effect.annotateCurrentSpan({
        "llm.provider": provider,
        "llm.response.model": model,
        "llm.outcome": outcome,
        "llm.duration_ms": elapsed,
        ...(usage === undefined
          ? {}
          : { "llm.usage.input_tokens": usage.inputTokens, "llm.usage.output_tokens": usage.outputTokens })
      }),
      Effect.andThen(
        Metric.update(tagged(requests, "r", { provider, model, path, outcome }), 1),
        Effect.andThen(
          Metric.update(tagged(latency, "l", { provider, model, path }), elapsed),
          usage === undefined ? Effect.void : recordUsage(provider, model, usage)
        )
      )
    )
  })

const spanOptions = (request: LlmRequest, path: string) => ({
  kind: "client" as const,
  attributes: { "llm.path": path, "llm.model": request.model }
})

/**
 * Observes a whole completion: a `llm.call` span, and the request, latency and token metrics.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmProvider, Telemetry } from "@llm-resilience/core"
 *
 * const request = { model: "gpt-4o-mini", messages: [{ role: "user" as const, content: "Hi" }] }
 * const observed = Effect.flatMap(LlmProvider.LlmProvider, (llm) =>
 *   llm.complete(request).pipe(Telemetry.observeCall(request, "chat"))
 * )
 * ```
 * @since 0.1.0
 */
export const observeCall =
  (request: LlmRequest, path: string) =>
  <E, R>(self: Effect.Effect<LlmResponse, E, R>): Effect.Effect<LlmResponse, E, R> =>
    Effect.withSpan(
      Effect.flatMap(Clock.currentTimeMillis, (startMs) =>
        Effect.onExit(self, (exit) => finish(request, path, startMs, exit))
      ),
      "llm.call",
      spanOptions(request, path)
    )

/**
 * Observes a whole stream: a `llm.call` span, time to first token, and the request, latency and token
 * metrics (usage from the `Finish` chunk).
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { LlmProvider, Telemetry } from "@llm-resilience/core"
 *
 * const request = { model: "gpt-4o-mini", messages: [{ role: "user" as const, content: "Hi" }] }
 * const chunks = LlmProvider.LlmProvider.use((llm) => Stream.runCollect(llm.stream(request).pipe(Telemetry.observeStream(request, "chat"))))
 * ```
 * @since 0.1.0
 */
export const observeStream =
  (request: LlmRequest, path: string) =>
  <E, R>(self: Stream.Stream<StreamChunk, E, R>): Stream.Stream<StreamChunk, E, R> =>
    Stream.unwrap(
      Effect.map(Clock.currentTimeMillis, (startMs) => {
        let first = true
        let finished: { provider: string; model: string; usage: Usage } | undefined
        return self.pipe(
          Stream.tap((chunk) => {
            if (chunk._tag === "Finish") {
              finished = { provider: chunk.provider, model: chunk.model, usage: chunk.usage }
              return Effect.void
            }
            if (!first) return Effect.void
            first = false
            return Effect.flatMap(Clock.currentTimeMillis, (now) =>
              Metric.update(
                tagged(timeToFirstToken, "t", { provider: "stream", model: request.model, path }),
                now - startMs
              )
            )
          }),
          Stream.onExit((exit) =>
            finish(
              request,
              path,
              startMs,
              Exit.map(exit, () => finished)
            )
          ),
          Stream.withSpan("llm.call", spanOptions(request, path))
        )
      })
    )

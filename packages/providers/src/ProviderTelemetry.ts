/**
 * The metrics the providers record themselves (the toolkit's own metrics are in `@llm-resilience/core`).
 *
 * @since 0.1.0
 */
import { Metric } from "effect"

/**
 * Malformed stream events that a provider skipped (an event whose `data` is not a JSON object, as a proxy
 * that rewrites bytes can leave behind), by `provider` and `model` (the model asked for). The stream goes
 * on; a stream that is mostly malformed fails instead (see `docs/providers.md`).
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { ProviderTelemetry } from "@llm-resilience/providers"
 *
 * const skipped = Metric.value(
 *   Metric.withAttributes(ProviderTelemetry.malformedEvents, { provider: "openai", model: "gpt-5.4-mini" })
 * )
 * ```
 * @since 0.1.0
 */
export const malformedEvents = Metric.counter("llm_stream_malformed_events", {
  description: "Malformed stream events skipped by a provider, by provider and model",
  incremental: true
})

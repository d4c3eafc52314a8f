// Generated from docs/telemetry.md (block 6) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { PrometheusMetrics } from "effect/observability"

export const counters = new Set(["llm_requests", "llm_tokens", "llm_cost_usd", "llm_retries", "fallback_activations"])
export const layer = PrometheusMetrics.layerHttp({
  metricNameMapper: (name) => (counters.has(name) ? `${name}_total` : name)
})

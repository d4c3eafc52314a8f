// Generated from docs/telemetry.md (block 5) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { PrometheusMetrics } from "effect/observability"

export const exposition: Effect.Effect<string> = PrometheusMetrics.format()

// Generated from docs/telemetry.md (block 7) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpMetrics, OtlpSerialization, OtlpTracer } from "effect/observability"

export const resource = { serviceName: "support-bot" }
export const Telemetry = Layer.mergeAll(
  OtlpTracer.layer({ url: "http://localhost:4318/v1/traces", resource }),
  OtlpMetrics.layer({ url: "http://localhost:4318/v1/metrics", resource })
).pipe(Layer.provide(OtlpSerialization.layerJson), Layer.provide(FetchHttpClient.layer))

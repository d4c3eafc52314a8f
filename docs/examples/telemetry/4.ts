// Generated from docs/telemetry.md (block 4) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { createServer } from "node:http"
import { NodeHttpServer } from "@effect/platform-node"
import { Layer } from "effect"
import { HttpRouter } from "effect/http"
import { PrometheusMetrics } from "effect/observability"

export const MetricsServer = HttpRouter.serve(PrometheusMetrics.layerHttp({ path: "/metrics" }), {
  disableLogger: true
}).pipe(Layer.provide(NodeHttpServer.layer(createServer, { port: 9464 })))

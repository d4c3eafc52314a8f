// Generated from docs/telemetry.md (block 3) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Layer } from "effect"
import { CallReport } from "@llm-resilience/core"

export const EventsLive = CallReport.layer((event) => {
  switch (event._tag) {
    case "Retried":
      return Effect.logDebug(`retry ${event.attempt} of ${event.key} after ${event.delayMs} ms (${event.error})`)
    case "BreakerTransition":
      return Effect.logWarning(`circuit ${event.key}: ${event.from} -> ${event.to}`)
    default:
      return Effect.logDebug(event._tag, event)
  }
})

declare const AppLive: Layer.Layer<never>
export const MainLive = Layer.merge(AppLive, EventsLive)

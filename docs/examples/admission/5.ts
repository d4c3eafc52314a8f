// Generated from docs/admission.md (block 5) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Layer } from "effect"
import { Admission, AdmissionStore } from "@llm-resilience/core"

export const LoggingStore = Layer.sync(AdmissionStore.AdmissionStore, () => {
  const inner = AdmissionStore.makeMemory()
  return {
    ...inner,
    // answering with an Effect (as a remote store does) makes admission run it
    tryReserve: (key, limits, cost, nowMs, within) => {
      const d = inner.tryReserve(key, limits, cost, nowMs, within)
      return Effect.isEffect(d)
        ? Effect.tap(d, (decided) => Effect.logDebug(`${key}: ${decided._tag}`))
        : Effect.as(Effect.logDebug(`${key}: ${d._tag}`), d)
    }
  }
})

export const AdmissionLogged = Admission.layer({ defaults: { requestsPerMinute: 60 } }).pipe(Layer.provide(LoggingStore))

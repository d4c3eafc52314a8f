// Generated from docs/admission.md (block 4) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Layer } from "effect"
import { Admission, AdmissionStore } from "@llm-resilience/core"

export const LoggingStore = Layer.sync(AdmissionStore.AdmissionStore, () => {
  const inner = AdmissionStore.makeMemory()
  return {
    ...inner,
    sync: undefined, // take the effectful path, so that every decision goes through tryReserve below
    tryReserve: (key, limits, cost, nowMs, within) =>
      Effect.tap(inner.tryReserve(key, limits, cost, nowMs, within), (d) => Effect.logDebug(`${key}: ${d._tag}`))
  }
})

export const AdmissionLogged = Admission.layer({ defaults: { requestsPerMinute: 60 } }).pipe(Layer.provide(LoggingStore))

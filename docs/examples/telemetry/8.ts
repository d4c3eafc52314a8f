// Generated from docs/telemetry.md (block 8) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Tracer } from "effect"

export const spans: Array<Tracer.NativeSpan> = []
export const capturing = Tracer.make({
  span(options) {
    const span = new Tracer.NativeSpan(options)
    spans.push(span)
    return span
  }
})
export const traced = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.provideService(self, Tracer.Tracer, capturing)

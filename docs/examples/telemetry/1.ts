// Generated from docs/telemetry.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Tracer } from "effect"
import { LlmProvider } from "@llm-resilience/core"

declare const myTracer: Tracer.Tracer
export const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }
// no span: default tracer, no parent span
export const quiet = LlmProvider.LlmProvider.use((llm) => llm.complete(request))
// an `llm.call` span, child of `handle-ticket`
export const traced = LlmProvider.LlmProvider.use((llm) => llm.complete(request)).pipe(Effect.withSpan("handle-ticket"))
// an `llm.call` span exported by your tracer
export const exported = quiet.pipe(Effect.provideService(Tracer.Tracer, myTracer))

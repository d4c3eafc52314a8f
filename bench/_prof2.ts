import { Effect, Scope } from "effect"
import * as Resilience from "../packages/core/src/Resilience.ts"
import * as Telemetry from "../packages/core/src/Telemetry.ts"
import type { LlmResponse } from "../packages/core/src/LlmResponse.ts"
const answer: LlmResponse = { text: "Hello", finishReason: "stop", usage: { inputTokens: 8, outputTokens: 2 }, provider: "bench", model: "m" }
const effectCall = Effect.callback<LlmResponse>((resume) => { queueMicrotask(() => resume(Effect.succeed(answer))) })
const request = { model: "m", messages: [{ role: "user" as const, content: "Say hello." }], metadata: { path: "chat" } }
const M = 20000
const variants: Record<string, () => Effect.Effect<unknown>> = {
  bare: () => effectCall,
  sync: () => Effect.succeed(answer),
  telemetry: () => Telemetry.observeCall(request as never, "chat")(effectCall),
  withSpan: () => Effect.withSpan(effectCall, "x"),
}
for (const [name, f] of Object.entries(variants)) {
  await Effect.runPromise(Effect.gen(function* () {
    for (let r = 0; r < 3; r++) {
      const c0 = process.cpuUsage(); const t0 = performance.now()
      for (let i = 0; i < M; i++) yield* f()
      const c = process.cpuUsage(c0)
      console.log(name, Math.round(((performance.now() - t0) * 1e6) / M), "cpu", Math.round((c.user + c.system) * 1e3 / M))
    }
  }))
}

import { Effect, Scope } from "effect"
import * as Resilience from "../packages/core/src/Resilience.ts"
import type { LlmResponse } from "../packages/core/src/LlmResponse.ts"
const answer: LlmResponse = { text: "Hello", finishReason: "stop", usage: { inputTokens: 8, outputTokens: 2 }, provider: "bench", model: "m" }
const effectCall = Effect.callback<LlmResponse>((resume) => { queueMicrotask(() => resume(Effect.succeed(answer))) })
const raw = { name: "bench", complete: () => effectCall, stream: () => { throw new Error() } }
const request = { model: "m", messages: [{ role: "user" as const, content: "Say hello." }], metadata: { path: "chat" } }
const scope = Effect.runSync(Scope.make())
const p = await Effect.runPromise(Scope.provide(Resilience.make({
  models: { "bench/m": { requestsPerMinute: 1_000_000_000, tokensPerMinute: 1e12, maxConcurrency: 20_000 } },
  paths: { chat: { retry: "interactive", timeouts: { totalMs: 30_000 } } },
  breaker: { failureRateThreshold: 0.5, windowMs: 60_000, minimumCalls: 10, slowCallThresholdMs: 10_000 },
  retryBudget: { ratio: 0.1 }
}, [raw as never]), scope))
const M = Number(process.env.M ?? 100000)
await Effect.runPromise(Effect.gen(function* () {
  for (let r = 0; r < 3; r++) {
    const c0 = process.cpuUsage(); const t0 = performance.now()
    for (let i = 0; i < M; i++) yield* p.provider.complete(request as never)
    const c = process.cpuUsage(c0)
    console.log(Math.round(((performance.now() - t0) * 1e6) / M), "user", Math.round((c.user) * 1e3 / M), "sys", Math.round(c.system * 1e3 / M), JSON.stringify(performance.eventLoopUtilization()))
  }
}))

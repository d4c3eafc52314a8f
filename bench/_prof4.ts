import { Effect, Scope } from "effect"
import * as Resilience from "../packages/core/src/Resilience.ts"
import * as Timeouts from "../packages/core/src/Timeouts.ts"
import * as Telemetry from "../packages/core/src/Telemetry.ts"
import * as Admission from "../packages/core/src/Admission.ts"
import * as AdmissionStore from "../packages/core/src/AdmissionStore.ts"
import * as CircuitBreaker from "../packages/core/src/CircuitBreaker.ts"
import * as Retry from "../packages/core/src/Retry.ts"
import * as RetryBudget from "../packages/core/src/RetryBudget.ts"
import type { LlmResponse } from "../packages/core/src/LlmResponse.ts"
let immediates = 0, timeouts = 0
const si = globalThis.setImmediate; (globalThis as any).setImmediate = (...a: any[]) => { immediates++; return (si as any)(...a) }
const st = globalThis.setTimeout; (globalThis as any).setTimeout = (...a: any[]) => { timeouts++; return (st as any)(...a) }
const answer: LlmResponse = { text: "Hello", finishReason: "stop", usage: { inputTokens: 8, outputTokens: 2 }, provider: "bench", model: "m" }
const effectCall = Effect.callback<LlmResponse>((resume) => { queueMicrotask(() => resume(Effect.succeed(answer))) })
const raw = { name: "bench", complete: () => effectCall, stream: () => { throw new Error() } }
const request = { model: "m", messages: [{ role: "user" as const, content: "Say hello." }], metadata: { path: "chat" } } as any
const scope = Effect.runSync(Scope.make())
const build = <A, E>(e: Effect.Effect<A, E, Scope.Scope>) => Effect.runPromise(Scope.provide(e, scope))
const p = await build(Resilience.make({
  models: { "bench/m": { requestsPerMinute: 1_000_000_000, tokensPerMinute: 1e12, maxConcurrency: 20_000 } },
  paths: { chat: { retry: "interactive", timeouts: { totalMs: 30_000 } } },
  breaker: { failureRateThreshold: 0.5, windowMs: 60_000, minimumCalls: 10, slowCallThresholdMs: 10_000 },
  retryBudget: { ratio: 0.1 }
}, [raw as never]))
const t = await build(Timeouts.make({ totalMs: 30000 }))
const adm = await build(Admission.make({ keys: { "bench/m": { requestsPerMinute: 1_000_000_000, tokensPerMinute: 1e12, maxConcurrency: 20_000 } } }).pipe(Effect.provide(AdmissionStore.layerMemory)))
const admNoConc = await build(Admission.make({ keys: { "bench/m": { requestsPerMinute: 1_000_000_000, tokensPerMinute: 1e12 } } }).pipe(Effect.provide(AdmissionStore.layerMemory)))
const br = await build(CircuitBreaker.make({ failureRateThreshold: 0.5, slowCallThreshold: "10 seconds" }))
const budget = await build(RetryBudget.make({ ratio: 0.1 }))
const rt = Retry.retry({ profile: "interactive", budget, key: "bench/m" })
const M = Number(process.env.M ?? 20000)
const variants: Record<string, () => Effect.Effect<unknown, unknown>> = {
  bare: () => effectCall,
  timeouts: () => t.complete(effectCall, request, "bench"),
  telemetry: () => Telemetry.observeCall(request, "chat")(effectCall),
  admission: () => adm.run(request, "bench/m", effectCall, (r) => r),
  admissionNoConcurrency: () => admNoConc.run(request, "bench/m", effectCall, (r) => r),
  breaker: () => br.protect("bench/m")(effectCall),
  retry: () => rt(effectCall),
  pipeline: () => p.provider.complete(request),
  "T+A": () => adm.run(request, "bench/m", t.complete(effectCall, request, "bench"), (r) => r),
  "T+A+B": () => br.protect("bench/m")(adm.run(request, "bench/m", t.complete(effectCall, request, "bench"), (r) => r)),
  "T+A+B+R": () => rt(br.protect("bench/m")(adm.run(request, "bench/m", t.complete(effectCall, request, "bench"), (r) => r))),
  "T+A+B+R+O": () => Telemetry.observeCall(request, "chat")(rt(br.protect("bench/m")(adm.run(request, "bench/m", t.complete(effectCall, request, "bench"), (r) => r)))),
  "O+T": () => Telemetry.observeCall(request, "chat")(t.complete(effectCall, request, "bench")),
  "R+T": () => rt(t.complete(effectCall, request, "bench")),
}
const only = process.env.ONLY
for (const [name, f] of Object.entries(variants)) {
  if (only && only !== name) continue
  await Effect.runPromise(Effect.gen(function* () {
    for (let i = 0; i < 3000; i++) yield* f()
    let best = Infinity, bestCpu = Infinity
    immediates = 0; timeouts = 0
    for (let r = 0; r < 3; r++) {
      const c0 = process.cpuUsage(); const t0 = performance.now()
      for (let i = 0; i < M; i++) yield* f()
      const c = process.cpuUsage(c0)
      best = Math.min(best, ((performance.now() - t0) * 1e6) / M); bestCpu = Math.min(bestCpu, (c.user + c.system) * 1e3 / M)
    }
    console.log(name.padEnd(24), "wall", Math.round(best), "cpu", Math.round(bestCpu), "immediates/call", (immediates / M / 3).toFixed(3), "timeouts/call", (timeouts / M / 3).toFixed(3))
  }))
}
process.exit(0)

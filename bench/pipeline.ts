/**
 * The happy-path overhead of the whole `Resilience` pipeline, against a bare Effect call of the same provider
 * and cockatiel's `wrap(retry, circuitBreaker, bulkhead, timeout)`, measured in one process run.
 *
 * The provider: a minimal raw provider of our own (FakeProvider logs every call, which would dominate) that
 * answers on a microtask, like a socket read, with zero latency. The Effect contenders call
 * `Effect.callback(resume => queueMicrotask(() => resume(Effect.succeed(response))))`; cockatiel calls
 * `() => new Promise(resolve => queueMicrotask(() => resolve(response)))`.
 *
 * - Time: `N` sequential calls per round, median ns per call over `ROUNDS` rounds, after a warm-up.
 * - Memory: 10,000 calls started at once, each held at the provider (the provider parks its resumer until
 *   released); `heapUsed` after a forced GC, minus the baseline after a forced GC, divided by 10,000. The
 *   Effect calls are each a fiber started with `Effect.runFork`; the cockatiel calls each a promise chain.
 * - A per-stage breakdown builds the pipeline stage by stage from the same modules `Resilience` composes, in
 *   time (`perStageNs`) and in heap bytes per in-flight call (`perStageBytesPerInFlight`).
 *
 * Prints one JSON object and writes bench/results/pipeline.json. Run: `npx node --expose-gc bench/pipeline.ts`.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import {
  bulkhead,
  circuitBreaker,
  ExponentialBackoff,
  handleAll,
  retry,
  SamplingBreaker,
  TimeoutStrategy,
  timeout,
  wrap
} from "cockatiel"
import { Effect, Exit, Fiber, Scope } from "effect"
import * as Admission from "../packages/core/src/Admission.ts"
import * as AdmissionStore from "../packages/core/src/AdmissionStore.ts"
import * as AgentGuard from "../packages/core/src/AgentGuard.ts"
import * as CircuitBreaker from "../packages/core/src/CircuitBreaker.ts"
import type { LlmProvider } from "../packages/core/src/LlmProvider.ts"
import type { LlmRequest } from "../packages/core/src/LlmRequest.ts"
import type { LlmResponse } from "../packages/core/src/LlmResponse.ts"
import * as PriceTable from "../packages/core/src/PriceTable.ts"
import * as Resilience from "../packages/core/src/Resilience.ts"
import * as Retry from "../packages/core/src/Retry.ts"
import * as RetryBudget from "../packages/core/src/RetryBudget.ts"
import type * as Stage from "../packages/core/src/Stage.ts"
import * as Telemetry from "../packages/core/src/Telemetry.ts"
import * as Timeouts from "../packages/core/src/Timeouts.ts"

const N = Number(process.env.BENCH_N ?? 20_000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const IN_FLIGHT = 10_000
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with: npx node --expose-gc bench/pipeline.ts")

// ---------------------------------------------------------------------------------------------------------
// the provider
// ---------------------------------------------------------------------------------------------------------

const response = (provider: string): LlmResponse => ({
  text: "Hello",
  finishReason: "stop",
  usage: { inputTokens: 8, outputTokens: 2 },
  provider,
  model: "m"
})
const answer = response("bench")

/** While `holding`, calls park their resumer here instead of answering on a microtask. */
let holding = false
const parked: Array<() => void> = []

const effectCall: Effect.Effect<LlmResponse> = Effect.callback<LlmResponse>((resume) => {
  if (holding) parked.push(() => resume(Effect.succeed(answer)))
  else queueMicrotask(() => resume(Effect.succeed(answer)))
})
const promiseCall = (): Promise<LlmResponse> =>
  new Promise((resolve) => {
    if (holding) parked.push(() => resolve(answer))
    else queueMicrotask(() => resolve(answer))
  })

const rawProvider = (name: string): LlmProvider["Service"] => ({
  name,
  complete: () => effectCall,
  stream: () => {
    throw new Error("not benchmarked")
  }
})

const request: LlmRequest = {
  model: "m",
  messages: [{ role: "user", content: "Say hello." }],
  metadata: { path: "chat" }
}

// ---------------------------------------------------------------------------------------------------------
// measurement
// ---------------------------------------------------------------------------------------------------------

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

/** Runs `n` sequential calls and returns ns per call. */
const runEffect = (call: () => Effect.Effect<unknown, unknown>, n: number): Promise<number> =>
  Effect.runPromise(
    Effect.suspend(() => {
      const t0 = performance.now()
      return Effect.map(
        Effect.gen(function* () {
          for (let i = 0; i < n; i++) yield* call()
        }),
        () => ((performance.now() - t0) * 1e6) / n
      )
    })
  )

const runPromise = async (call: () => Promise<unknown>, n: number): Promise<number> => {
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await call()
  return ((performance.now() - t0) * 1e6) / n
}

type Contender =
  | { readonly kind: "effect"; readonly call: () => Effect.Effect<unknown, unknown> }
  | {
      readonly kind: "promise"
      readonly call: () => Promise<unknown>
    }
const runOne = (c: Contender, n: number) => (c.kind === "effect" ? runEffect(c.call, n) : runPromise(c.call, n))

/**
 * The contenders' rounds are interleaved (round 1 of each, then round 2 of each ...), so that load from other
 * processes on the machine falls on all of them alike, and the order rotates each round; each figure is the
 * median of its rounds. (No forced GC
 * between rounds: a full `gc()` makes the next round about three times slower, bare call included.)
 */
const timeAll = async (contenders: Record<string, Contender>): Promise<Record<string, number>> => {
  const samples: Record<string, Array<number>> = {}
  for (const [name, c] of Object.entries(contenders)) {
    await runOne(c, 5_000)
    samples[name] = []
  }
  // The order rotates from round to round: a contender that allocates a lot (cockatiel) leaves garbage that
  // the next one pays for in GC time, and with a fixed order the same contender would pay it every round.
  const entries = Object.entries(contenders)
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < entries.length; i++) {
      const [name, c] = entries[(i + r) % entries.length]
      samples[name].push(await runOne(c, N))
    }
  }
  const out: Record<string, number> = {}
  for (const [name, xs] of Object.entries(samples)) out[name] = Math.round(median(xs))
  return out
}

const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r))
}

/** Heap bytes per call while `IN_FLIGHT` calls are all parked at the provider. */
const bytesInFlight = async (start: () => () => Promise<unknown>): Promise<number> => {
  await settle()
  gc()
  gc()
  const before = process.memoryUsage().heapUsed
  holding = true
  const waits: Array<() => Promise<unknown>> = []
  for (let i = 0; i < IN_FLIGHT; i++) waits.push(start())
  await settle()
  if (parked.length !== IN_FLIGHT) throw new Error(`expected ${IN_FLIGHT} parked calls, found ${parked.length}`)
  gc()
  gc()
  const after = process.memoryUsage().heapUsed
  holding = false
  for (const release of parked.splice(0)) release()
  await Promise.all(waits.map((w) => w()))
  // The `waits` array and the parked resumers are part of every contender's figure alike.
  return Math.round((after - before) / IN_FLIGHT)
}

const bytesEffect = (call: () => Effect.Effect<unknown, unknown>) =>
  bytesInFlight(() => {
    const fiber = Effect.runFork(call())
    return () => Effect.runPromise(Fiber.await(fiber))
  })

const bytesPromise = (call: () => Promise<unknown>) =>
  bytesInFlight(() => {
    const p = call()
    return () => p
  })

// ---------------------------------------------------------------------------------------------------------
// contenders
// ---------------------------------------------------------------------------------------------------------

const cockatielPolicy = wrap(
  retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff({ initialDelay: 250, maxDelay: 2_000 }) }),
  circuitBreaker(handleAll, {
    halfOpenAfter: 10_000,
    breaker: new SamplingBreaker({ threshold: 0.5, duration: 60_000, minimumRps: 1 })
  }),
  bulkhead(20_000, 0),
  timeout(30_000, TimeoutStrategy.Aggressive)
)
const cockatielCall = () => cockatielPolicy.execute(promiseCall)

/** The limits make admission reserve (requests and tokens) and hold a bulkhead permit on every call. */
const models = {
  "bench/m": { requestsPerMinute: 1_000_000_000, tokensPerMinute: 1e12, maxConcurrency: 20_000 },
  "backup/m": { requestsPerMinute: 1_000_000_000, tokensPerMinute: 1e12, maxConcurrency: 20_000 }
}
const baseConfig: Resilience.Config = {
  models,
  paths: { chat: { retry: "interactive", timeouts: { totalMs: 30_000 } } },
  breaker: { failureRateThreshold: 0.5, windowMs: 60_000, minimumCalls: 10, slowCallThresholdMs: 10_000 },
  retryBudget: { ratio: 0.1 }
}
const planConfig: Resilience.Config = {
  ...baseConfig,
  fallback: [
    { provider: "bench", model: "m" },
    { provider: "backup", model: "m" }
  ]
}

const scope = Effect.runSync(Scope.make())
const build = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> =>
  Effect.runPromise(Scope.provide(effect, scope))

const pipeline = await build(Resilience.make(baseConfig, [rawProvider("bench"), rawProvider("backup")]))
/** The same without rate limits: admission has no key to reserve on (for the breakdown only). */
const { models: _, ...noLimitsConfig } = baseConfig
const unlimited = await build(Resilience.make(noLimitsConfig, [rawProvider("bench"), rawProvider("backup")]))
const planned = await build(Resilience.make(planConfig, [rawProvider("bench"), rawProvider("backup")]))
/** The same with a spend guard configured: prices and a global daily budget (checked and charged per attempt). */
const spendConfig: Resilience.Config = {
  ...baseConfig,
  prices: { m: { inputPerMillion: 1, outputPerMillion: 2 } } satisfies PriceTable.PriceTable,
  spend: { budgets: [{ scope: "global", limitUsd: 1e12, windowMs: 86_400_000 }] }
}
const spendGuarded = await build(Resilience.make(spendConfig, [rawProvider("bench"), rawProvider("backup")]))
/** The same with a user-provided stage implementing the contract (it counts the attempts in flight). */
let inFlight = 0
const counting: Stage.Stage<true> = {
  name: "in-flight",
  enter: () => {
    inFlight++
    return true
  },
  exit: () => {
    inFlight--
  }
}
const custom = await build(
  Resilience.make(baseConfig, [rawProvider("bench"), rawProvider("backup")]).pipe(
    Effect.provideService(Resilience.CustomStages, [counting])
  )
)

/** The same stages built one by one, innermost first, for the breakdown. */
const stages = await build(
  Effect.gen(function* () {
    const raw = rawProvider("bench")
    const timeouts = yield* Timeouts.make({ paths: { chat: { totalMs: 30_000 } } })
    const admission = yield* Admission.make({ keys: { "bench/m": models["bench/m"] } }).pipe(
      Effect.provide(AdmissionStore.layerMemory)
    )
    const breaker = yield* CircuitBreaker.make({ failureRateThreshold: 0.5, slowCallThreshold: "10 seconds" })
    const budget = yield* RetryBudget.make({ ratio: 0.1 })
    const agent = yield* AgentGuard.make()
    const settleResponse = (r: LlmResponse) => r
    const t = () => timeouts.complete(raw.complete(request), request, "bench")
    const a = () => admission.run(request, "bench/m", t(), settleResponse)
    const b = () => breaker.protect("bench/m")(a())
    const r = () => Retry.retry({ profile: "interactive", budget, key: "bench/m" })(b())
    const g = () => agent.protect(request)(r())
    const o = () => Telemetry.observeCall(request, "chat")(g())
    return {
      "+timeouts": t,
      "+admission": a,
      "+breaker": b,
      "+retry": r,
      "+agentGuard": g,
      "+telemetry": o,
      "telemetry alone": () => Telemetry.observeCall(request, "chat")(effectCall),
      "admission alone": () => admission.run(request, "bench/m", effectCall, settleResponse),
      "breaker alone": () => breaker.protect("bench/m")(effectCall),
      "retry alone": () => Retry.retry({ profile: "interactive", budget, key: "bench/m" })(effectCall),
      "timeouts alone": () => timeouts.complete(effectCall, request, "bench")
    } as Record<string, () => Effect.Effect<unknown, unknown>>
  })
)

const bareCall = () => effectCall
const pipelineCall = () => pipeline.provider.complete(request)
const plannedCall = () => planned.provider.complete(request)
const unlimitedCall = () => unlimited.provider.complete(request)
const spendCall = () => spendGuarded.provider.complete(request)
const customCall = () => custom.provider.complete(request)

// ---------------------------------------------------------------------------------------------------------
// run
// ---------------------------------------------------------------------------------------------------------

const effect = (call: () => Effect.Effect<unknown, unknown>): Contender => ({ kind: "effect", call })
const main = await timeAll({
  bare: effect(bareCall),
  cockatiel: { kind: "promise", call: cockatielCall },
  pipeline: effect(pipelineCall),
  pipelinePlan: effect(plannedCall),
  pipelineSpend: effect(spendCall),
  pipelineCustomStage: effect(customCall),
  pipelineWithoutRateLimits: effect(unlimitedCall)
})
const { bare: bareNs, cockatiel: cockatielNs, pipeline: pipelineNs, pipelinePlan: pipelinePlanNs } = main
const contenders: Record<string, Contender> = { bare: effect(bareCall) }
for (const [name, call] of Object.entries(stages)) contenders[name] = effect(call)
const perStageNs = process.env.BENCH_STAGES === "0" ? {} : await timeAll(contenders)

const bareBytesPerInFlight = await bytesEffect(bareCall)
const cockatielBytesPerInFlight = await bytesPromise(cockatielCall)
const pipelineBytesPerInFlight = await bytesEffect(pipelineCall)
const pipelinePlanBytesPerInFlight = await bytesEffect(plannedCall)
const pipelineSpendBytesPerInFlight = await bytesEffect(spendCall)
const pipelineCustomStageBytesPerInFlight = await bytesEffect(customCall)
if (inFlight !== 0) throw new Error(`the custom stage was entered ${inFlight} more times than it exited`)
/** The same per stage: heap bytes per in-flight call of each cumulative stack and of each stage alone. */
const perStageBytesPerInFlight: Record<string, number> = {}
if (process.env.BENCH_STAGES !== "0") {
  perStageBytesPerInFlight.bare = bareBytesPerInFlight
  for (const [name, call] of Object.entries(stages)) perStageBytesPerInFlight[name] = await bytesEffect(call)
}

await Effect.runPromise(Scope.close(scope, Exit.void))

const ratio = (x: number, y: number) => Math.round((x / y) * 100) / 100
const out = {
  bareNs,
  cockatielNs,
  pipelineNs,
  pipelineVsBare: ratio(pipelineNs, bareNs),
  pipelineVsCockatiel: ratio(pipelineNs, cockatielNs),
  cockatielBytesPerInFlight,
  pipelineBytesPerInFlight,
  pipelinePlanNs,
  pipelinePlanVsCockatiel: ratio(pipelinePlanNs, cockatielNs),
  pipelinePlanBytesPerInFlight,
  bareBytesPerInFlight,
  pipelineWithoutRateLimitsNs: main.pipelineWithoutRateLimits,
  pipelineSpendNs: main.pipelineSpend,
  pipelineSpendVsCockatiel: ratio(main.pipelineSpend, cockatielNs),
  pipelineSpendBytesPerInFlight,
  pipelineCustomStageNs: main.pipelineCustomStage,
  pipelineCustomStageVsCockatiel: ratio(main.pipelineCustomStage, cockatielNs),
  pipelineCustomStageBytesPerInFlight,
  perStageNs,
  perStageBytesPerInFlight,
  calls: N,
  rounds: ROUNDS,
  inFlight: IN_FLIGHT,
  statistic: "median ns per call; heap bytes per in-flight call after forced GC",
  node: process.version
}
console.log(JSON.stringify(out))
mkdirSync(new URL("results/", import.meta.url), { recursive: true })
writeFileSync(new URL("results/pipeline.json", import.meta.url), `${JSON.stringify(out, null, 2)}\n`)

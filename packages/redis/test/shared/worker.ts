/**
 * One instance of the shared-limits acceptance test: a resilient OpenAI provider pointed at the chaos
 * server, admission over Redis (`REDIS_URL`) or in memory (no `REDIS_URL`), `CALLERS` concurrent callers
 * calling for `DURATION_MS` once "go" arrives on stdin. Prints "ready", then one JSON line: every call
 * (start, end, outcome), every moment the raw provider was called (after admission) and, over Redis, every
 * moment the admission store admitted a call (its answer, through Redis or its local share; a reservation
 * refunded later is left out).
 */
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { AdmissionStore, LlmProvider, Resilience } from "@llm-resilience/core"
import { OpenAiProvider } from "@llm-resilience/providers"
import { RedisStore } from "@llm-resilience/redis"
import { Clock, Deferred, Effect, Exit, Fiber, Layer, Metric, Redacted } from "effect"
import { settings } from "./settings.ts"

const env = (name: string): string => {
  const value = process.env[name]
  if (value === undefined) throw new Error(`${name} is not set`)
  return value
}
const redisUrl = process.env.REDIS_URL
const s = settings
const sent: Array<number> = []

const config: Resilience.Config = {
  ...(redisUrl === undefined
    ? {}
    : {
        store: {
          url: redisUrl,
          prefix: env("PREFIX"),
          onStoreFailure: "local",
          expectedInstances: s.instances,
          timeoutMs: s.redisTimeoutMs,
          retryIntervalMs: 200
        }
      }),
  models: { [`openai/${env("MODEL")}`]: { requestsPerMinute: s.rpm, tokensPerMinute: s.tpm } },
  admission: { windowMs: s.admissionWindowMs, maxWaitMs: s.maxWaitMs },
  paths: { default: { retry: "none", timeouts: { totalMs: s.totalMs } } },
  breaker: { mode: "metrics-only" }
}

/** The raw provider, recording when each call leaves admission. */
const Counted = Layer.effect(
  LlmProvider.LlmProvider,
  Effect.map(OpenAiProvider.make({ apiKey: Redacted.make("sk-shared"), baseUrl: `${env("CHAOS_URL")}/v1` }), (p) => ({
    ...p,
    complete: (request) =>
      Effect.andThen(
        Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => sent.push(t))),
        p.complete(request)
      )
  }))
)

/** The admission store in context, recording when each reservation was answered (and forgetting refunds). */
const admitted = new Map<AdmissionStore.Reservation, number>()
const Recorded = Layer.effect(
  AdmissionStore.AdmissionStore,
  Effect.map(AdmissionStore.AdmissionStore, (store) => {
    const record = (d: AdmissionStore.Decision) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        if (d._tag === "Reserved") admitted.set(d.reservation, now)
        return d
      })
    return AdmissionStore.AdmissionStore.of({
      ...store,
      tryReserve: (key, limits, cost, nowMs, within) => {
        const d = store.tryReserve(key, limits, cost, nowMs, within)
        return Effect.isEffect(d) ? Effect.flatMap(d, record) : record(d)
      },
      settle: (reservation, actual, corrections, nowMs) => {
        if (actual !== undefined && actual.requests === 0) admitted.delete(reservation)
        return store.settle(reservation, actual, corrections, nowMs)
      }
    })
  })
)

const Live = Resilience.layer(config, Counted).pipe(
  Layer.provide(NodeHttpClient.layerUndici),
  Layer.provide(redisUrl === undefined ? Layer.empty : Layer.provideMerge(Recorded, RedisStore.layer(config)))
)

interface Call {
  readonly start: number
  readonly end: number
  readonly outcome: string
}

const program = Effect.gen(function* () {
  const { provider } = yield* Resilience.Resilience
  const go = yield* Deferred.make<void>()
  process.stdin.setEncoding("utf8").on("data", (d: string) => {
    if (!d.includes("go")) return
    // stdin would keep the process alive after the run
    process.stdin.destroy()
    Deferred.doneUnsafe(go, Exit.void)
  })
  console.log("ready")
  yield* Deferred.await(go)
  const calls: Array<Call> = []
  const deadline = (yield* Clock.currentTimeMillis) + Number(env("DURATION_MS"))
  const request = { model: env("MODEL"), messages: [{ role: "user" as const, content: "hi" }], maxOutputTokens: 16 }
  const caller = Effect.gen(function* () {
    while ((yield* Clock.currentTimeMillis) < deadline) {
      const start = yield* Clock.currentTimeMillis
      const exit = yield* Effect.exit(provider.complete(request))
      const end = yield* Clock.currentTimeMillis
      const outcome = Exit.isSuccess(exit)
        ? "ok"
        : exit.cause.reasons.some((r) => r._tag === "Fail")
          ? String(
              (exit.cause.reasons.find((r) => r._tag === "Fail") as { error: { _tag: string; reason?: string } }).error
                ._tag
            )
          : "defect"
      calls.push({ start, end, outcome })
    }
  })
  // the first R callers of all instances start spread over the first window, the others after it
  const index = Number(env("INSTANCE"))
  const perInstance = Math.ceil(s.rpm / s.instances)
  const gap = s.windowMs / s.rpm
  const fibers = []
  for (let i = 0; i < s.callers; i++) {
    const delay = i < perInstance ? (i * s.instances + index) * gap : s.windowMs
    fibers.push(yield* Effect.forkChild(Effect.andThen(Effect.sleep(delay), caller)))
  }
  // callers still waiting at the deadline are interrupted (their reservations refunded)
  yield* Effect.sleep(Math.max(0, deadline - (yield* Clock.currentTimeMillis)))
  yield* Effect.sleep(s.totalMs)
  yield* Fiber.interruptAll(fibers)
  const failures = yield* Metric.value(
    Metric.withAttributes(RedisStore.metrics.fallbacks, { store: "admission", policy: "local" })
  )
  console.log(JSON.stringify({ calls, sent, admitted: [...admitted.values()], storeFailures: failures.count }))
})

program.pipe(Effect.provide(Live), NodeRuntime.runMain)

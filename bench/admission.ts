/**
 * Admission control cost: the uncontended (happy path) cost per call, and the cost per request of draining
 * a queue of 1k / 10k / 100k waiters, which must stay flat (linear total). Also measures, in the same run,
 * why the queue and the bulkhead are not built on Effect's `Semaphore`: its cost per waiter grows with the
 * number of waiters, where our `Bulkhead` (and cockatiel's) stay flat.
 *
 * Run: `npx node bench/admission.ts`. Prints one JSON object (summary and details); writes the summary, in
 * the shape docs/benchmarks/admission.md describes, to bench/results/admission.json and the details (enqueue cost,
 * Semaphore / Bulkhead / cockatiel comparison) to bench/results/admission-details.json.
 */
import { writeFileSync } from "node:fs"
import { bulkhead as cockatielBulkhead } from "cockatiel"
import { Deferred, Effect, Fiber, Semaphore } from "effect"
import { Admission, Bulkhead, type LlmRequest, type LlmResponse, TokenEstimator } from "../packages/core/src/index.ts"

const KEY = "bench/m"
const response: LlmResponse.LlmResponse = {
  text: "",
  finishReason: "stop",
  usage: { inputTokens: 1, outputTokens: 0 },
  provider: "bench",
  model: "m"
}
const small: LlmRequest.LlmRequest = { model: "m", messages: [{ role: "user", content: "s" }] }
const blocker: LlmRequest.LlmRequest = { model: "m", messages: [{ role: "user", content: "blocker" }] }

// every request is estimated at 1 token, the blocker at the whole budget
const budget = 1_000_000
const estimator: TokenEstimator.TokenEstimatorShape = {
  countText: (s) => s.length,
  estimate: (r) => ({ inputTokens: r.messages[0].content === "blocker" ? budget - 1 : 0, outputTokens: 1 })
}

const now = () => process.hrtime.bigint()

const uncontended = Effect.gen(function* () {
  const call = Effect.succeed(response).pipe(Admission.admit(small, KEY))
  const bare = Effect.succeed(response)
  const run = (eff: Effect.Effect<unknown, unknown, Admission.Admission>, n: number) =>
    Effect.gen(function* () {
      const start = now()
      for (let i = 0; i < n; i++) yield* eff
      return Number(now() - start) / n
    })
  yield* run(call, 20_000) // warm up
  yield* run(bare, 20_000)
  let admitted = Infinity
  let baseline = Infinity
  for (let r = 0; r < 5; r++) {
    admitted = Math.min(admitted, yield* run(call, 50_000))
    baseline = Math.min(baseline, yield* run(bare, 50_000))
  }
  return { admitted, baseline }
}).pipe(
  Effect.provide(Admission.layerMemory({ defaults: { requestsPerMinute: 10_000_000, tokensPerMinute: 1e12 } })),
  Effect.provideService(TokenEstimator.TokenEstimator, estimator)
)

/** Queues `queued` waiters behind a blocker that holds the whole token budget, then refunds it. */
const drain = (queued: number) =>
  Effect.gen(function* () {
    const release = yield* Deferred.make<void>()
    const held = yield* Effect.forkChild(
      Effect.flatMap(Deferred.await(release), () =>
        Effect.succeed({ ...response, usage: { inputTokens: 0, outputTokens: 0 } })
      ).pipe(Admission.admit(blocker, KEY))
    )
    yield* Effect.yieldNow
    const enqueueStart = now()
    const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
    for (let i = 0; i < queued; i++) {
      fibers.push(
        yield* Effect.forkChild(Effect.succeed(response).pipe(Admission.admit(small, KEY)), { startImmediately: true })
      )
    }
    const enqueueNs = Number(now() - enqueueStart) / queued
    const stats = yield* Effect.flatMap(Admission.Admission, (a) => a.stats(KEY))
    if (stats.queued !== queued) throw new Error(`expected ${queued} queued, got ${stats.queued}`)
    const start = now()
    yield* Deferred.succeed(release, undefined)
    yield* Fiber.join(held)
    yield* Fiber.joinAll(fibers)
    const nsPerRequest = Number(now() - start) / queued
    return { queued, nsPerRequest, enqueueNsPerRequest: enqueueNs }
  }).pipe(
    Effect.provide(Admission.layerMemory({ defaults: { tokensPerMinute: budget }, maxQueueLength: 1_000_000 })),
    Effect.provideService(TokenEstimator.TokenEstimator, estimator)
  )

/** Drain cost per waiter of a 1-permit semaphore-like gate with `waiters` queued. */
const semaphoreDrain = (waiters: number) =>
  Effect.gen(function* () {
    const sem = yield* Semaphore.make(1)
    yield* sem.take(1)
    const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
    for (let i = 0; i < waiters; i++)
      fibers.push(yield* Effect.forkChild(sem.withPermits(1)(Effect.void), { startImmediately: true }))
    const start = now()
    yield* sem.release(1)
    yield* Fiber.joinAll(fibers)
    return Number(now() - start) / waiters
  })

const bulkheadDrain = (waiters: number) =>
  Effect.gen(function* () {
    const b = yield* Bulkhead.make({ maxConcurrency: 1, maxQueue: waiters })
    const release = yield* Deferred.make<void>()
    const holder = yield* Effect.forkChild(Deferred.await(release).pipe(Bulkhead.withPermit(b)), {
      startImmediately: true
    })
    const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
    for (let i = 0; i < waiters; i++)
      fibers.push(yield* Effect.forkChild(Effect.void.pipe(Bulkhead.withPermit(b)), { startImmediately: true }))
    const start = now()
    yield* Deferred.succeed(release, undefined)
    yield* Fiber.join(holder)
    yield* Fiber.joinAll(fibers)
    return Number(now() - start) / waiters
  })

const cockatielDrain = async (waiters: number) => {
  const b = cockatielBulkhead(1, waiters)
  let open!: () => void
  const gate = new Promise<void>((resolve) => {
    open = resolve
  })
  const holder = b.execute(() => gate)
  const all: Array<Promise<void>> = []
  for (let i = 0; i < waiters; i++) all.push(b.execute(async () => {}))
  const start = now()
  open()
  await holder
  await Promise.all(all)
  return Number(now() - start) / waiters
}

const main = async () => {
  const { admitted, baseline } = await Effect.runPromise(uncontended)
  const drains: Array<{ queued: number; nsPerRequest: number; enqueueNsPerRequest: number }> = []
  // the machine is shared: take the best of a few runs for each size
  await Effect.runPromise(drain(1000)) // warm up
  for (const [q, runs] of [
    [1000, 5],
    [10_000, 3],
    [100_000, 2]
  ] as const) {
    let best: { queued: number; nsPerRequest: number; enqueueNsPerRequest: number } | undefined
    for (let r = 0; r < runs; r++) {
      const d = await Effect.runPromise(drain(q))
      if (best === undefined || d.nsPerRequest < best.nsPerRequest) best = d
    }
    drains.push(best!)
  }
  const waiterCounts = [100, 1000, 4000]
  const semaphore: Record<string, number> = {}
  const bulkhead: Record<string, number> = {}
  const cockatiel: Record<string, number> = {}
  const best = async (f: () => Promise<number>) => {
    let min = Infinity
    for (let r = 0; r < 5; r++) min = Math.min(min, await f())
    return min
  }
  for (const n of waiterCounts) {
    semaphore[n] = await best(() => Effect.runPromise(semaphoreDrain(n)))
    bulkhead[n] = await best(() => Effect.runPromise(bulkheadDrain(n)))
    cockatiel[n] = await best(() => cockatielDrain(n))
  }
  const result = {
    uncontendedNsPerCall: Math.round(admitted),
    drain: drains.map((d) => ({ queued: d.queued, nsPerRequest: Math.round(d.nsPerRequest) })),
    details: {
      bareEffectNsPerCall: Math.round(baseline),
      enqueueNsPerRequest: Object.fromEntries(drains.map((d) => [d.queued, Math.round(d.enqueueNsPerRequest)])),
      drainNsPerWaiterByWaiters: {
        effectSemaphore: semaphore,
        bulkhead,
        cockatielBulkhead: cockatiel
      }
    }
  }
  const round = (r: Record<string, number>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v)]))
  result.details.drainNsPerWaiterByWaiters = {
    effectSemaphore: round(semaphore),
    bulkhead: round(bulkhead),
    cockatielBulkhead: round(cockatiel)
  }
  console.log(JSON.stringify(result, null, 2))
  // the summary file keeps a fixed shape (docs/benchmarks/admission.md); the comparison figures go next to it
  const { details, ...summary } = result
  writeFileSync(new URL("results/admission.json", import.meta.url), `${JSON.stringify(summary)}\n`)
  writeFileSync(new URL("results/admission-details.json", import.meta.url), `${JSON.stringify(details, null, 2)}\n`)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})

/**
 * The cost of a total timeout on the happy path (the call answers in time), per call, against
 * `Effect.timeout` and the bare call.
 *
 * Variants, each on an async call (resumes from a microtask, like a socket read) and a sync one:
 * - `bare`: the call alone;
 * - `Effect.timeout`: `raceFirst(call, sleep)`: two forked fibers and one armed timer per call;
 * - `forkJoin`: `forkChild` + `Fiber.join`, the lower bound of any construction that can abandon a call;
 * - `Timeouts.complete`: this toolkit, one fiber per call and one shared timer per stage.
 *
 * Prints one JSON object and writes bench/results/timeouts.json. Run: `npx node bench/timeouts.ts`.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { Effect, Fiber } from "effect"
import * as Timeouts from "../packages/core/src/Timeouts.ts"

const asyncCall = Effect.callback<number>((resume) => {
  queueMicrotask(() => resume(Effect.succeed(1)))
})
const syncCall = Effect.succeed(1)
const request = { model: "m", messages: [] }
const N = 50_000
const ROUNDS = 5

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const measure = (f: (call: Effect.Effect<number>) => Effect.Effect<unknown, unknown>, call: Effect.Effect<number>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 2_000; i++) yield* f(call)
    const samples: Array<number> = []
    for (let r = 0; r < ROUNDS; r++) {
      const t0 = performance.now()
      for (let i = 0; i < N; i++) yield* f(call)
      samples.push(((performance.now() - t0) * 1e6) / N)
    }
    return Math.round(median(samples))
  })

const program = Effect.scoped(
  Effect.gen(function* () {
    const timeouts = yield* Timeouts.make({ totalMs: 30_000 })
    const variants: Record<string, (call: Effect.Effect<number>) => Effect.Effect<unknown, unknown>> = {
      bare: (call) => call,
      "Effect.timeout": (call) => Effect.timeout(call, "30 seconds"),
      forkJoin: (call) => Effect.flatMap(Effect.forkChild(call, { startImmediately: true }), Fiber.join),
      "Timeouts.complete": (call) => timeouts.complete(call, request)
    }
    const result: Record<string, Record<string, number>> = { asyncNsPerCall: {}, syncNsPerCall: {} }
    for (const [name, f] of Object.entries(variants)) {
      result.asyncNsPerCall[name] = yield* measure(f, asyncCall)
      result.syncNsPerCall[name] = yield* measure(f, syncCall)
    }
    return result
  })
)

const result = await Effect.runPromise(program)
const out = { calls: N, rounds: ROUNDS, statistic: "median ns per call", ...result }
console.log(JSON.stringify(out))
mkdirSync(new URL("results/", import.meta.url), { recursive: true })
writeFileSync(new URL("results/timeouts.json", import.meta.url), `${JSON.stringify(out, null, 2)}\n`)

/**
 * The per-key state soak: 100,000 calls through `Resilience`, each to a distinct model name the
 * configuration does not know, on a trivial provider that answers on a microtask.
 *
 * - Memory: `heapUsed` after a forced GC at the end, minus the baseline after a forced GC once the pipeline is
 *   built and warmed up (`retainedMb`). Each key's breaker circuit, retry-budget state and metric series must
 *   be dropped or collapsed, so this stays far below 64 MB.
 * - Throughput: calls per second over the first and the last `WINDOW` calls (sequential calls).
 * - The machine: nproc, CPU model, Node version and the load average (1, 5, 15 min) at the start.
 *
 * Prints one JSON object and writes bench/results/keys.json. Run: `npx node --expose-gc bench/keys.ts`.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { availableParallelism, cpus, loadavg } from "node:os"
import { Effect } from "effect"
import type { LlmProvider } from "../packages/core/src/LlmProvider.ts"
import type { LlmResponse } from "../packages/core/src/LlmResponse.ts"
import * as Resilience from "../packages/core/src/Resilience.ts"

const KEYS = Number(process.env.BENCH_KEYS ?? 100_000)
const WINDOW = 10_000
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with: npx node --expose-gc bench/keys.ts")

const provider: LlmProvider["Service"] = {
  name: "bench",
  complete: (request) =>
    Effect.callback<LlmResponse>((resume) =>
      queueMicrotask(() =>
        resume(
          Effect.succeed({
            text: "Hello",
            finishReason: "stop",
            usage: { inputTokens: 8, outputTokens: 2 },
            provider: "bench",
            model: request.model
          })
        )
      )
    ),
  stream: () => {
    throw new Error("not used")
  }
}

const heapMb = (): number => {
  gc!()
  gc!()
  return process.memoryUsage().heapUsed / 1e6
}

const program = Effect.scoped(
  Effect.gen(function* () {
    const { provider: llm } = yield* Resilience.make({}, [provider])
    const call = (model: string) => llm.complete({ model, messages: [{ role: "user", content: "Hi" }] })
    // warm up on one known-size set of names, then measure from there
    for (let i = 0; i < 2_000; i++) yield* call(`warm-${i}`)
    const baselineMb = heapMb()
    const rates: Array<number> = []
    let windowStart = performance.now()
    for (let i = 0; i < KEYS; i++) {
      yield* call(`model-${i}`)
      if ((i + 1) % WINDOW === 0) {
        const now = performance.now()
        rates.push(Math.round(WINDOW / ((now - windowStart) / 1000)))
        windowStart = now
      }
    }
    const endMb = heapMb()
    return { baselineMb, endMb, rates }
  })
)

const loadAtStart = loadavg().map((l) => Math.round(l * 100) / 100)
const { baselineMb, endMb, rates } = await Effect.runPromise(program)
const result = {
  name: "keys",
  distinctModels: KEYS,
  retainedMb: Math.round((endMb - baselineMb) * 10) / 10,
  heapUsedMb: Math.round(endMb * 10) / 10,
  callsPerSecondFirst: rates[0],
  callsPerSecondLast: rates[rates.length - 1],
  callsPerSecondPerWindow: rates,
  machine: {
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model,
    node: process.version,
    loadavgAtStart: loadAtStart
  }
}
console.log(JSON.stringify(result))
mkdirSync(new URL("results/", import.meta.url), { recursive: true })
writeFileSync(new URL("results/keys.json", import.meta.url), `${JSON.stringify(result, null, 2)}\n`)

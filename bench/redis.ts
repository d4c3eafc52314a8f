/**
 * Shared admission on Redis: what the shared store costs a call. On a private `redis-server` (loopback):
 *
 * - round trips per successful call through the whole `Resilience` pipeline, counted by Redis itself
 *   (`INFO commandstats` after `CONFIG RESETSTAT`): the goal is at most 2, one to reserve and one to settle;
 * - the latency a call gains: sequential calls through the pipeline with the Redis store and with the
 *   in-memory store, p50 and p99 of each and their difference;
 * - calls per second per instance with 4 instances (4 processes, 50 concurrent callers each, one Redis, a
 *   provider that answers at once, limits that never bind), so the figure is the store's throughput.
 *
 * Run: `npx node --conditions=@llm-resilience/source bench/redis.ts`. Prints one JSON object and writes it
 * to bench/results/redis.json.
 */
import { spawn } from "node:child_process"
import { cpus } from "node:os"
import { mkdirSync, writeFileSync } from "node:fs"
import { NodeRedis } from "@effect/platform-node"
import { Effect, Layer, Stream } from "effect"
import { Redis } from "effect/persistence"
import { Resilience } from "../packages/core/src/index.ts"
import type { LlmProvider } from "../packages/core/src/LlmProvider.ts"
import type { LlmRequest } from "../packages/core/src/LlmRequest.ts"
import type { LlmResponse } from "../packages/core/src/LlmResponse.ts"
import { RedisStore } from "../packages/redis/src/index.ts"
import { startRedis } from "../packages/redis/test/redisServer.ts"

const MODEL = "m"
const response: LlmResponse = {
  text: "ok",
  finishReason: "stop",
  usage: { inputTokens: 10, outputTokens: 5 },
  provider: "bench",
  model: MODEL
}
const provider: LlmProvider["Service"] = {
  name: "bench",
  complete: () => Effect.succeed(response),
  stream: () => Stream.empty
}
const request: LlmRequest = { model: MODEL, messages: [{ role: "user", content: "hello" }], maxOutputTokens: 8 }

const configFor = (url: string | undefined, prefix: string): Resilience.Config => ({
  ...(url === undefined ? {} : { store: { url, prefix, timeoutMs: 1_000 } }),
  models: { [`bench/${MODEL}`]: { requestsPerMinute: 1_000_000_000, tokensPerMinute: 1e15 } },
  paths: { default: { retry: "none" } },
  breaker: { mode: "metrics-only" }
})

/** The resilient provider of `config`, over the Redis stores when it has a `store`. */
const resilient = (config: Resilience.Config) =>
  Effect.flatMap(Layer.build(config.store === undefined ? Layer.empty : RedisStore.layer(config)), (stores) =>
    Effect.map(Resilience.make(config, [provider]).pipe(Effect.provide(stores)), (r) => r.provider)
  )

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

const latencies = (p: LlmProvider["Service"], n: number) =>
  Effect.gen(function* () {
    const out: Array<number> = []
    for (let i = 0; i < n; i++) {
      const t0 = process.hrtime.bigint()
      yield* p.complete(request)
      out.push(Number(process.hrtime.bigint() - t0) / 1e3)
    }
    return out.sort((a, b) => a - b)
  })

// ---------------------------------------------------------------------------------------------------------
// worker: one instance with 50 callers, calls/s for DURATION_MS once "go" arrives
// ---------------------------------------------------------------------------------------------------------

const worker = (url: string, durationMs: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const p = yield* resilient(configFor(url, "w:"))
      yield* latencies(p, 200) // warm up (scripts loaded)
      console.log("ready")
      yield* Effect.callback<void>((resume) => {
        process.stdin.setEncoding("utf8").once("data", () => {
          process.stdin.destroy()
          resume(Effect.void)
        })
      })
      const deadline = Date.now() + durationMs
      let calls = 0
      const caller = Effect.whileLoop({
        while: () => Date.now() < deadline,
        body: () => p.complete(request),
        step: () => {
          calls++
        }
      })
      yield* Effect.all(
        Array.from({ length: 50 }, () => caller),
        { concurrency: "unbounded", discard: true }
      )
      console.log(JSON.stringify({ callsPerSecond: calls / (durationMs / 1_000) }))
    })
  )

const instances = (url: string, durationMs: number) =>
  Effect.promise(async () => {
    const children = Array.from({ length: 4 }, () =>
      spawn(
        process.execPath,
        ["--conditions=@llm-resilience/source", new URL(import.meta.url).pathname, "worker", url, String(durationMs)],
        { stdio: ["pipe", "pipe", "inherit"] }
      )
    )
    const outputs = children.map(
      (child) =>
        new Promise<{ ready: Promise<void>; done: Promise<number> }>((resolve) => {
          let out = ""
          let readyResolve: () => void = () => {}
          const ready = new Promise<void>((r) => (readyResolve = r))
          const done = new Promise<number>((r, no) => {
            child.stdout!.setEncoding("utf8").on("data", (d: string) => {
              out += d
              if (out.includes("ready")) readyResolve()
            })
            child.once("exit", (code) => {
              if (code !== 0) return no(new Error(`worker exited with ${code}`))
              r(JSON.parse(out.trim().split("\n").pop()!).callsPerSecond)
            })
          })
          resolve({ ready, done })
        })
    )
    const started = await Promise.all(outputs)
    await Promise.race([
      Promise.all(started.map((s) => s.ready)),
      new Promise((_, no) => setTimeout(() => no(new Error("workers not ready in 60 s")), 60_000))
    ])
    for (const child of children) child.stdin!.write("go\n")
    return Promise.all(started.map((s) => s.done))
  })

// ---------------------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------------------

const main = Effect.gen(function* () {
  const server = yield* Effect.acquireRelease(
    Effect.promise(() => startRedis()),
    (s) => Effect.promise(() => s.stop())
  )
  const redis = yield* Effect.flatMap(Layer.build(NodeRedis.layer({ url: server.url })), (ctx) =>
    Effect.provide(Redis.Redis, ctx)
  )
  const withRedis = yield* resilient(configFor(server.url, "b:"))
  const inMemory = yield* resilient(configFor(undefined, "b:"))

  // round trips per successful call
  yield* latencies(withRedis, 100) // loads the scripts
  yield* redis.send("CONFIG", "RESETSTAT")
  const N = 2_000
  yield* latencies(withRedis, N)
  const stats = yield* redis.send<string>("INFO", "commandstats")
  const commands: Record<string, number> = {}
  for (const m of stats.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) commands[m[1]] = Number(m[2])
  const scriptUs = Number(/cmdstat_evalsha:calls=\d+,usec=\d+,usec_per_call=([\d.]+)/.exec(stats)?.[1])
  // commandstats also counts the commands a script runs inside Redis (GET, SET, TIME, EXISTS): a round trip
  // is a command the client sent
  const inScripts = new Set(["get", "set", "time", "exists", "config|resetstat"])
  const total = Object.entries(commands).reduce((a, [name, calls]) => (inScripts.has(name) ? a : a + calls), 0)

  // added latency, alternating rounds so that both see the same machine
  const redisRuns: Array<number> = []
  const memoryRuns: Array<number> = []
  for (let round = 0; round < 5; round++) {
    redisRuns.push(...(yield* latencies(withRedis, 1_000)))
    memoryRuns.push(...(yield* latencies(inMemory, 1_000)))
  }
  redisRuns.sort((a, b) => a - b)
  memoryRuns.sort((a, b) => a - b)
  const us = (x: number) => Math.round(x * 10) / 10

  const perInstance = yield* instances(server.url, 5_000)
  return {
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    roundTripsPerCall: total / N,
    /** Time Redis spends in one script (reserve or settle), its own measure. */
    redisUsPerScript: scriptUs,
    /** Every command Redis ran per call, those inside the scripts included. */
    commandsPerCall: Object.fromEntries(Object.entries(commands).map(([k, v]) => [k, v / N])),
    latencyUs: {
      redis: { p50: us(percentile(redisRuns, 50)), p99: us(percentile(redisRuns, 99)) },
      memory: { p50: us(percentile(memoryRuns, 50)), p99: us(percentile(memoryRuns, 99)) },
      added: {
        p50: us(percentile(redisRuns, 50) - percentile(memoryRuns, 50)),
        p99: us(percentile(redisRuns, 99) - percentile(memoryRuns, 99))
      }
    },
    fourInstances: {
      callsPerSecondPerInstance: perInstance.map(Math.round),
      total: Math.round(perInstance.reduce((a, b) => a + b, 0))
    }
  }
})

if (process.argv[2] === "worker") {
  await Effect.runPromise(worker(process.argv[3], Number(process.argv[4])))
} else {
  const result = await Effect.runPromise(Effect.scoped(main))
  console.log(JSON.stringify(result, null, 2))
  mkdirSync("bench/results", { recursive: true })
  writeFileSync("bench/results/redis.json", `${JSON.stringify(result, null, 2)}\n`)
}

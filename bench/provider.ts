/**
 * The CPU and heap cost of one provider call on the caller's side, against a real HTTP server: the OpenAI
 * provider bare and through `Resilience` (a gateway-like configuration), against a bare `undici.request` of the
 * same request in the same run (the floor: send the JSON, read the body, parse it), and the same request on
 * effect's HTTP client over undici (`NodeHttpClient.layerUndici`, untraced), the client the providers run on.
 * The same for a stream (`stream: true`, the chaos server's SSE answer): undici alone reading and parsing the
 * events, effect's HTTP client reading them the same way, and the provider's `stream` bare and through
 * `Resilience`, each drained to its end.
 *
 * - The upstream: the chaos server, in a child process (its CPU is not counted), answering every
 *   `POST /v1/chat/completions` at once.
 * - The load: a closed loop of `CLIENTS` concurrent callers in this process, `N` calls per round.
 * - CPU: `process.cpuUsage()` (user + system) over a round, in µs per call; heap: bytes allocated per call
 *   (the growth of `heapUsed` plus what every GC of the round collected, read with `v8.GCProfiler`).
 * - The contenders' rounds are interleaved and their order rotates each round; each figure is the median of
 *   its rounds, after a warm-up.
 *
 * Prints one JSON object and writes bench/results/provider.json. Run: `npx node bench/provider.ts`.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as v8 from "node:v8"
import { NodeHttpClient } from "@effect/platform-node"
import { Context, Effect, Exit, Layer, Redacted, Scope, Stream } from "effect"
import { constTrue } from "effect/Function"
import { HttpClient, HttpClientRequest } from "effect/http"
import { Agent, request as undiciRequest } from "undici"
import type { LlmProvider } from "../packages/core/src/LlmProvider.ts"
import type { LlmRequest } from "../packages/core/src/LlmRequest.ts"
import type { LlmResponse } from "../packages/core/src/LlmResponse.ts"
import * as Resilience from "../packages/core/src/Resilience.ts"
import * as OpenAiProvider from "../packages/providers/src/OpenAiProvider.ts"
import { bundleChaos, startProcess, tempDir } from "../packages/gateway/test/support/process.ts"

const N = Number(process.env.BENCH_N ?? 4_000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7)
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 20)

const { dir, remove } = tempDir()
const chaos = await startProcess(await bundleChaos(dir), ["--port", "0"])
const stop = () => {
  chaos.child.kill("SIGKILL")
  remove()
}
process.once("SIGINT", () => {
  stop()
  process.exit(130)
})

const baseUrl = `${chaos.url}/v1`
const request: LlmRequest = {
  model: "bench-model",
  messages: [{ role: "user", content: "Say hello" }],
  maxOutputTokens: 64,
  passThrough: { openai: {} },
  metadata: { path: "bench" }
}

// ---------------------------------------------------------------------------------------------------------
// contenders
// ---------------------------------------------------------------------------------------------------------

/** The floor: the same request with undici alone (its own keep-alive pool, like the provider's). */
const agent = new Agent({ connections: CLIENTS * 2, pipelining: 1, keepAliveTimeout: 30_000 })
const url = `${baseUrl}/chat/completions`
const headers = { "content-type": "application/json", accept: "application/json", authorization: "Bearer sk-bench" }
const undiciCall = async () => {
  const body = JSON.stringify({ model: request.model, messages: request.messages, max_completion_tokens: 64 })
  const res = await undiciRequest(url, { method: "POST", body, headers, dispatcher: agent })
  const json = (await res.body.json()) as { choices: Array<{ message: { content: string } }> }
  if (res.statusCode !== 200 || typeof json.choices[0].message.content !== "string") throw new Error("bad answer")
}

const scope = Effect.runSync(Scope.make())
const build = <A, E>(effect: Effect.Effect<A, E, Scope.Scope>): Promise<A> =>
  Effect.runPromise(Scope.provide(effect, scope))

const { bare, resilient, client } = await build(
  Effect.gen(function* () {
    const context = yield* Layer.build(NodeHttpClient.layerUndici)
    const bare = yield* OpenAiProvider.make({ name: "chaos", baseUrl, apiKey: Redacted.make("sk-bench") }).pipe(
      Effect.provideContext(context)
    )
    // what the gateway builds from a route `bench` with one step and a model without limits
    const { provider: resilient } = yield* Resilience.make(
      {
        models: { "chaos/bench-model": {} },
        paths: {
          "chaos/bench-model": { fallback: [{ provider: "chaos", model: "bench-model" }] },
          bench: { fallback: [{ provider: "chaos", model: "bench-model" }] }
        }
      },
      [bare]
    )
    return { bare, resilient, client: Context.get(context, HttpClient.HttpClient) }
  })
)

/** The same request on effect's HTTP client over undici, untraced like the providers' calls with no tracer. */
const httpRequest = HttpClientRequest.post(url, { headers }).pipe(
  HttpClientRequest.bodyText(
    JSON.stringify({ model: request.model, messages: request.messages, max_completion_tokens: 64 }),
    "application/json"
  )
)
/** The floor of a stream: the same request with `stream: true`, its SSE body split and parsed with undici alone. */
const streamBody = JSON.stringify({
  model: request.model,
  messages: request.messages,
  max_completion_tokens: 64,
  stream: true
})
/** The SSE reading of both floors: frames split on blank lines, each `data:` parsed, the text kept. */
class SseText {
  readonly decoder = new TextDecoder()
  buffered = ""
  text = ""
  done = false
  feed(bytes: Uint8Array): void {
    this.buffered += this.decoder.decode(bytes, { stream: true })
    let end: number
    while ((end = this.buffered.indexOf("\n\n")) !== -1) {
      const data = this.buffered.slice(this.buffered.indexOf("data: ") + 6, end)
      this.buffered = this.buffered.slice(end + 2)
      if (data === "[DONE]") this.done = true
      else
        this.text +=
          (JSON.parse(data) as { choices: Array<{ delta: { content?: string } }> }).choices[0].delta.content ?? ""
    }
  }
  check(status: number): void {
    if (status !== 200 || !this.done || this.text.length === 0) throw new Error("bad stream")
  }
}
const undiciStream = async () => {
  const res = await undiciRequest(url, { method: "POST", body: streamBody, headers, dispatcher: agent })
  const sse = new SseText()
  for await (const bytes of res.body) sse.feed(bytes as Uint8Array)
  sse.check(res.statusCode)
}

const httpClientCall = Effect.gen(function* () {
  const res = yield* client.execute(httpRequest)
  const json = JSON.parse(new TextDecoder().decode(yield* res.arrayBuffer)) as {
    choices: Array<{ message: { content: string } }>
  }
  if (res.status !== 200) throw new Error("bad answer")
  return { text: json.choices[0].message.content } as LlmResponse
}).pipe(Effect.orDie, Effect.provideService(HttpClient.TracerDisabledWhen, constTrue))

/** The same stream on effect's HTTP client over undici, read as the floor reads it. */
const httpStreamRequest = HttpClientRequest.post(url, { headers }).pipe(
  HttpClientRequest.bodyText(streamBody, "application/json")
)
const httpClientStream = Effect.gen(function* () {
  const res = yield* client.execute(httpStreamRequest)
  const sse = new SseText()
  yield* Stream.runForEachArray(res.stream, (chunks) =>
    Effect.sync(() => {
      for (const bytes of chunks) sse.feed(bytes)
    })
  )
  sse.check(res.status)
  return { text: sse.text } as LlmResponse
}).pipe(Effect.orDie, Effect.provideService(HttpClient.TracerDisabledWhen, constTrue))

const effectLoop =
  (provider: LlmProvider["Service"]) =>
  (n: number): Promise<void> =>
    Effect.runPromise(
      Effect.forEach(
        Array.from({ length: CLIENTS }, (_, i) => Math.floor(n / CLIENTS) + (i < n % CLIENTS ? 1 : 0)),
        (calls) =>
          Effect.gen(function* () {
            for (let i = 0; i < calls; i++) {
              const r = yield* provider.complete(request)
              if (r.text.length === 0) throw new Error("empty answer")
            }
          }),
        { concurrency: "unbounded", discard: true }
      )
    )

/** Streams instead of calls: each caller drains `provider.stream` and checks it carried text. */
const streamLoop = (provider: LlmProvider["Service"]) =>
  effectLoop({
    name: provider.name,
    complete: (request) =>
      Stream.runFold(
        provider.stream(request),
        () => "",
        (text, chunk) => (chunk._tag === "TextDelta" ? text + chunk.text : text)
      ).pipe(Effect.map((text) => ({ text }) as LlmResponse)),
    stream: () => Stream.die("not benchmarked")
  })

const promiseLoop =
  (call: () => Promise<void>) =>
  async (n: number): Promise<void> => {
    let left = n
    const client = async () => {
      while (left-- > 0) await call()
    }
    await Promise.all(Array.from({ length: CLIENTS }, client))
  }

const all: Record<string, (n: number) => Promise<void>> = {
  undici: promiseLoop(undiciCall),
  httpClient: effectLoop({ name: "http", complete: () => httpClientCall, stream: () => Stream.die("not benchmarked") }),
  provider: effectLoop(bare),
  resilience: effectLoop(resilient),
  undiciStream: promiseLoop(undiciStream),
  httpClientStream: effectLoop({
    name: "http",
    complete: () => httpClientStream,
    stream: () => Stream.die("not benchmarked")
  }),
  providerStream: streamLoop(bare),
  resilienceStream: streamLoop(resilient)
}
/** `BENCH_ONLY=provider,resilience` runs those contenders (to profile one: `npx node --cpu-prof bench/provider.ts`). */
const only = process.env.BENCH_ONLY?.split(",")
const contenders = only === undefined ? all : Object.fromEntries(only.map((name) => [name, all[name]]))

// ---------------------------------------------------------------------------------------------------------
// measurement
// ---------------------------------------------------------------------------------------------------------

interface Sample {
  readonly cpuUs: number
  readonly heapBytes: number
  readonly promotedBytes: number
  readonly wallUs: number
}

const measure = async (run: (n: number) => Promise<void>, n: number): Promise<Sample> => {
  const profiler = new v8.GCProfiler()
  const heapBefore = process.memoryUsage().heapUsed
  profiler.start()
  const cpuBefore = process.cpuUsage()
  const t0 = performance.now()
  await run(n)
  const wall = performance.now() - t0
  const cpu = process.cpuUsage(cpuBefore)
  const heapAfter = process.memoryUsage().heapUsed
  const gcs = profiler.stop()?.statistics ?? []
  let collected = 0
  let promoted = 0
  const oldSpace = (s: v8.GCProfilerResult["statistics"][number]["afterGC"]) =>
    s.heapSpaceStatistics.find((x) => x.spaceName === "old_space")?.spaceUsedSize ?? 0
  for (const gc of gcs) {
    collected += gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize
    if (gc.gcType === "Scavenge" || gc.gcType === "MinorMarkSweep")
      promoted += oldSpace(gc.afterGC) - oldSpace(gc.beforeGC)
  }
  return {
    cpuUs: (cpu.user + cpu.system) / n,
    heapBytes: (heapAfter - heapBefore + collected) / n,
    promotedBytes: promoted / n,
    wallUs: (wall * 1000) / n
  }
}

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

const entries = Object.entries(contenders)
for (const [, run] of entries) await run(N)
const samples: Record<string, Array<Sample>> = Object.fromEntries(entries.map(([name]) => [name, []]))
for (let r = 0; r < ROUNDS; r++) {
  for (let i = 0; i < entries.length; i++) {
    const [name, run] = entries[(i + r) % entries.length]
    samples[name].push(await measure(run, N))
  }
}

await Effect.runPromise(Scope.close(scope, Exit.void))
await agent.close()
stop()

const figures = Object.fromEntries(
  Object.entries(samples).map(([name, xs]) => [
    name,
    {
      cpuUsPerCall: Math.round(median(xs.map((s) => s.cpuUs))),
      heapBytesPerCall: Math.round(median(xs.map((s) => s.heapBytes))),
      promotedBytesPerCall: Math.round(median(xs.map((s) => s.promotedBytes))),
      wallUsPerCall: Math.round(median(xs.map((s) => s.wallUs)))
    }
  ])
)
const ratio = (x: number, y: number) => Math.round((x / y) * 100) / 100
const out = {
  ...figures,
  ...(only === undefined
    ? {
        httpClientVsUndici: ratio(figures.httpClient.cpuUsPerCall, figures.undici.cpuUsPerCall),
        providerVsUndici: ratio(figures.provider.cpuUsPerCall, figures.undici.cpuUsPerCall),
        resilienceVsUndici: ratio(figures.resilience.cpuUsPerCall, figures.undici.cpuUsPerCall),
        httpClientStreamVsUndici: ratio(figures.httpClientStream.cpuUsPerCall, figures.undiciStream.cpuUsPerCall),
        providerStreamVsUndici: ratio(figures.providerStream.cpuUsPerCall, figures.undiciStream.cpuUsPerCall),
        resilienceStreamVsUndici: ratio(figures.resilienceStream.cpuUsPerCall, figures.undiciStream.cpuUsPerCall)
      }
    : {}),
  calls: N,
  rounds: ROUNDS,
  clients: CLIENTS,
  statistic: "median over rounds of CPU µs, heap bytes allocated and wall µs per call, closed loop",
  machine: { cpus: os.cpus().length, node: process.version }
}
console.log(JSON.stringify(out))
if (only === undefined) {
  mkdirSync(new URL("results/", import.meta.url), { recursive: true })
  writeFileSync(new URL("results/provider.json", import.meta.url), `${JSON.stringify(out, null, 2)}\n`)
}

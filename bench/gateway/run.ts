/**
 * The gateway in front of the chaos server against the chaos server directly, in one run
 * (`npx node bench/gateway/run.ts`): at 1,000 and 2,000 requests/s (not streamed, open loop) and with 200
 * concurrent streams, the added latency (p50 / p99 of the gateway minus those of the direct calls), the
 * gateway's CPU time per request (also in a closed loop of 20 clients, beside the chaos server's), its
 * resident memory, the errors, and the machine's load average during each phase. The chaos server and the
 * gateway run as child processes (bundled, as `llm-resilience-gateway` would run them); the load comes from
 * this process.
 *
 * Prints the JSON result and writes `bench/results/gateway.json`. Options: `--seconds <n>` per phase
 * (default 10), `--rates 1000,2000`.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { parseArgs } from "node:util"
import { fileURLToPath } from "node:url"
import { Gateway } from "@llm-resilience/gateway"
import { bundleChaos, bundleCli, startCli, startProcess, tempDir } from "../../packages/gateway/test/support/process.ts"
import { agent, openLoop, type Phase, processStats, streams } from "./load.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const { values } = parseArgs({ options: { seconds: { type: "string" }, rates: { type: "string" } } })
const seconds = Number(values.seconds ?? 10)
const rates = (values.rates ?? "1000,2000").split(",").map(Number)
const warmupSeconds = 2

const key = "gw-bench-key"
const body = JSON.stringify({ model: "bench", messages: [{ role: "user", content: "Say hello" }], max_tokens: 64 })
const streamBody = JSON.stringify({
  model: "bench",
  stream: true,
  messages: [{ role: "user", content: "Say hello" }],
  max_tokens: 64
})
const headers = { "content-type": "application/json", authorization: `Bearer ${key}` }

// the 1-minute load average before the run: other work on the machine skews every figure
const loadAtStart = os.loadavg()[0]
const { dir, remove } = tempDir()
const children: Array<{ readonly child: { kill: (signal: NodeJS.Signals) => boolean } }> = []
// an interrupted run still stops its servers and removes its files
process.once("SIGINT", () => {
  for (const c of children) c.child.kill("SIGKILL")
  remove()
  process.exit(130)
})
try {
  const [chaosProgram, gatewayProgram] = await Promise.all([bundleChaos(dir), bundleCli(dir)])
  const chaos = await startProcess(chaosProgram, ["--port", "0"])
  children.push(chaos)
  const gateway = await startCli(
    gatewayProgram,
    {
      server: { port: 0 },
      providers: { chaos: { kind: "openai", baseUrl: `${chaos.url}/v1`, apiKeyEnv: "BENCH_UPSTREAM_KEY" } },
      models: { "chaos/bench-model": {} },
      routes: { bench: { fallback: [{ provider: "chaos", model: "bench-model" }] } },
      keys: [{ sha256: Gateway.hashKey(key), tenant: "bench" }]
    },
    { BENCH_UPSTREAM_KEY: "sk-bench" },
    dir
  )
  children.push(gateway)
  const pid = gateway.child.pid!
  const direct = `${chaos.url}/v1/chat/completions`
  const viaGateway = `${gateway.url}/v1/chat/completions`
  const chaosPid = chaos.child.pid!
  const startRss = processStats(pid).rssMb
  // JIT warm-up of both servers (not measured): a fresh process spends its first thousands of requests
  // interpreting and compiling
  for (const url of [direct, viaGateway])
    await streams({ url, body, headers, concurrency: 20, seconds: warmupSeconds * 3 })

  // CPU per request when busy, free of idle time: a closed loop of 20 clients through the gateway, the
  // chaos server's CPU for the same requests beside it
  const closedBefore = { gateway: processStats(pid), chaos: processStats(chaosPid) }
  const closed = await streams({ url: viaGateway, body, headers, concurrency: 20, seconds })
  const closedAfter = { gateway: processStats(pid), chaos: processStats(chaosPid) }
  const perRequest = (before: number, after: number) => Math.round(((after - before) * 1000) / closed.requests)
  const closedLoop = {
    clients: 20,
    requests: closed.requests,
    errors: closed.errors,
    rate: closed.achievedRate,
    gatewayCpuPerRequestUs: perRequest(closedBefore.gateway.cpuMs, closedAfter.gateway.cpuMs),
    chaosCpuPerRequestUs: perRequest(closedBefore.chaos.cpuMs, closedAfter.chaos.cpuMs)
  }
  console.error(
    `closed loop: gateway ${closedLoop.gatewayCpuPerRequestUs} µs, chaos server ${closedLoop.chaosCpuPerRequestUs} µs of CPU per request`
  )

  const measured = async (run: () => Promise<Phase>, sent: number) => {
    const before = processStats(pid)
    const phase = await run()
    const after = processStats(pid)
    return {
      phase,
      gatewayCpuPerRequestUs: Math.round(((after.cpuMs - before.cpuMs) * 1000) / sent),
      gatewayRssMb: after.rssMb,
      gatewayPeakRssMb: after.peakRssMb,
      loadAverage: os.loadavg()[0]
    }
  }
  const added = (g: Phase, d: Phase) => ({
    p50: Math.round((g.latencyMs.p50 - d.latencyMs.p50) * 1000) / 1000,
    p99: Math.round((g.latencyMs.p99 - d.latencyMs.p99) * 1000) / 1000
  })

  const loads = []
  for (const rate of rates) {
    const options = { body, headers, rate, seconds, warmupSeconds }
    const d = await openLoop({ ...options, url: direct })
    const g = await measured(() => openLoop({ ...options, url: viaGateway }), rate * (seconds + warmupSeconds))
    loads.push({
      rate,
      direct: d,
      gateway: g.phase,
      addedLatencyMs: added(g.phase, d),
      gatewayCpuPerRequestUs: g.gatewayCpuPerRequestUs,
      gatewayRssMb: g.gatewayRssMb,
      gatewayPeakRssMb: g.gatewayPeakRssMb,
      loadAverage: g.loadAverage
    })
    console.error(
      `${rate} req/s: added p50 ${loads.at(-1)!.addedLatencyMs.p50} ms, p99 ${loads.at(-1)!.addedLatencyMs.p99} ms`
    )
  }
  const streamOptions = { body: streamBody, headers, concurrency: 200, seconds }
  const ds = await streams({ ...streamOptions, url: direct })
  const gsBefore = processStats(pid)
  const gs = await streams({ ...streamOptions, url: viaGateway })
  const gsAfter = processStats(pid)
  const result = {
    benchmark: "gateway",
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    note: "load generator, chaos server and gateway share the machine's cores; open loop, latency from send to last byte",
    secondsPerPhase: seconds,
    loadAverageAtStart: loadAtStart,
    gatewayStartRssMb: startRss,
    closedLoop,
    loads,
    streams: {
      concurrency: 200,
      direct: ds,
      gateway: gs,
      addedLatencyMs: added(gs, ds),
      gatewayCpuPerStreamUs: Math.round(((gsAfter.cpuMs - gsBefore.cpuMs) * 1000) / Math.max(1, gs.requests)),
      gatewayRssMb: gsAfter.rssMb,
      gatewayPeakRssMb: gsAfter.peakRssMb,
      loadAverage: os.loadavg()[0]
    },
    chaosServerRssMb: processStats(chaosPid).rssMb
  }
  const json = JSON.stringify(result, null, 2)
  console.log(json)
  fs.mkdirSync(path.join(here, "..", "results"), { recursive: true })
  fs.writeFileSync(path.join(here, "..", "results", "gateway.json"), `${json}\n`)
} finally {
  for (const c of children) c.child.kill("SIGKILL")
  await agent.close()
  remove()
}

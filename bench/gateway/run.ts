/**
 * The gateway in front of the chaos server against the chaos server directly, in one run
 * (`npx node bench/gateway/run.ts`): at 1,000 and 2,000 requests/s (not streamed, open loop) and with 200
 * concurrent streams, the added latency (p50 / p99 of the gateway minus those of the direct calls), the
 * same for a reference proxy with no policies (`reference.ts`: node:http and undici) in the same phases, the
 * gateway's CPU time per request (also in a closed loop of 20 clients, beside the chaos server's), its
 * resident memory, the errors, and the machine's load average during each phase. The phases run from the
 * lightest load to the heaviest (open loops, then the closed loop, then the streams), so the memory read after
 * each is that of a gateway that has seen no heavier load. In an open loop the direct calls, the gateway's and
 * the reference proxy's take turns of 1 s, so that all meet the same conditions of the machine; its `tail` tells
 * what the slowest requests of each waited for (`tail.ts`: GC pauses of either server, recorded by `probe.ts`,
 * the generator's lateness, and the connections opened meanwhile). The chaos server, the gateway and the
 * reference proxy run as child processes (bundled, as `llm-resilience-gateway` runs); the load comes from this process (`load.ts`), whose
 * own CPU time per request every phase reports, beside the chaos server's.
 * Before each phase one request checks that the answer reads as expected (a complete JSON body, or an SSE
 * stream whose last data event is `data: [DONE]`), and at the start a wrong key checks the gateway's 401.
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
import {
  bundleChaos,
  bundleCli,
  nodeFlags,
  startCli,
  startProcess,
  tempDir
} from "../../packages/gateway/test/support/process.ts"
import { bundle } from "../../packages/redis/test/processes.ts"
import { fetchOnce, type Target } from "./http.ts"
import { type Latency, openLoop, type Phase, processStats, streams } from "./load.ts"
import { readPauses } from "./probe.ts"
import { tailOf } from "./tail.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const { values } = parseArgs({ options: { seconds: { type: "string" }, rates: { type: "string" } } })
const seconds = Number(values.seconds ?? 10)
// lightest first: see the warm-up
const rates = (values.rates ?? "1000,2000")
  .split(",")
  .map(Number)
  .sort((a, b) => a - b)
const warmupSeconds = 2
// requests each server serves before anything is measured (below)
const warmupRequests = 20_000

const key = "gw-bench-key"
const body = JSON.stringify({ model: "bench", messages: [{ role: "user", content: "Say hello" }], max_tokens: 64 })
const streamBody = JSON.stringify({
  model: "bench",
  stream: true,
  messages: [{ role: "user", content: "Say hello" }],
  max_tokens: 64
})
const headers = { "content-type": "application/json", authorization: `Bearer ${key}` }

/**
 * Sends one request to `target` and checks that it gets `status` with a complete answer: a chat completion
 * (or an error) in JSON, or an SSE stream of JSON data events, the last one `data: [DONE]`.
 */
const check = async (target: Target, expected: { readonly status: number; readonly sse: boolean }) => {
  const { status, body } = await fetchOnce(target)
  const fail = (why: string) => {
    throw new Error(
      `${target.url}: ${why} (status ${status}): ${body.slice(0, 200)} ... ${JSON.stringify(body.slice(-60))}`
    )
  }
  if (status !== expected.status) fail(`expected status ${expected.status}`)
  if (!expected.sse || status !== 200) {
    const json = JSON.parse(body)
    if (status === 200 && typeof json.choices?.[0]?.message?.content !== "string") fail("no completion")
    if (status !== 200 && json.error === undefined) fail("no error object")
    return
  }
  // data events, without comments (the gateway ends its streams with a `: llm-report` comment)
  const events = body.split("\n\n").filter((event) => event.startsWith("data: "))
  if (events.at(-1) !== "data: [DONE]") fail("the stream's last event is not data: [DONE]")
  for (const event of events.slice(0, -1)) JSON.parse(event.replace(/^data: /, ""))
}

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
  // both servers record their GC pauses (probe.ts), to tell what the slowest requests waited for; the probe
  // is bundled to plain JavaScript like the servers: loaded as TypeScript, Node's type stripping would add
  // about 18 MB to each server's resident memory
  const [chaosProgram, gatewayProgram, probeProgram, referenceProgram] = await Promise.all([
    bundleChaos(dir),
    bundleCli(dir),
    bundle(path.join(here, "probe.ts"), dir, "probe"),
    bundle(path.join(here, "reference.ts"), dir, "reference")
  ])
  const probe = ["--import", probeProgram]
  const gcLog = { chaos: path.join(dir, "chaos-gc.log"), gateway: path.join(dir, "gateway-gc.log") }
  // the upstream as a real account far above the benchmark's load: its rate-limit headers count down from
  // limits no phase reaches (the gateway reads them, as it reads a provider's). Without limits the chaos
  // server sends fixed headers of a 10,000 RPM, 200,000 TPM account; the gateway obeyed them (rightly: they
  // said so), and about 10,000 requests into the run it held calls for hundreds of milliseconds
  const account = { requestsPerMinute: 1_000_000_000, tokensPerMinute: 1_000_000_000_000 }
  const chaos = await startProcess(
    chaosProgram,
    ["--port", "0", "--rate-limits", JSON.stringify({ bench: account, "bench-model": account })],
    { BENCH_GC_LOG: gcLog.chaos },
    probe
  )
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
    { BENCH_UPSTREAM_KEY: "sk-bench", BENCH_GC_LOG: gcLog.gateway },
    dir,
    probe
  )
  children.push(gateway)
  // the reference proxy (reference.ts), with the Node flags the gateway's command runs with
  const reference = await startProcess(referenceProgram, [], { UPSTREAM: chaos.url }, nodeFlags(gatewayProgram))
  children.push(reference)
  const referencePid = reference.child.pid!
  const viaReference = `${reference.url}/v1/chat/completions`
  const pid = gateway.child.pid!
  const direct = `${chaos.url}/v1/chat/completions`
  const viaGateway = `${gateway.url}/v1/chat/completions`
  const chaosPid = chaos.child.pid!
  const startRss = processStats(pid).rssMb
  const target = (url: string, sse: boolean): Target => ({ url, body: sse ? streamBody : body, headers })
  // the answers read as expected, a rejected key included, before anything is measured
  for (const sse of [false, true]) {
    await check(target(direct, sse), { status: 200, sse })
    await check(target(viaGateway, sse), { status: 200, sse })
    if (!sse) await check(target(viaReference, sse), { status: 200, sse })
    await check(
      { ...target(viaGateway, sse), headers: { ...headers, authorization: "Bearer wrong-key" } },
      { status: 401, sse }
    )
  }
  // JIT warm-up of every server, recorded apart from the phases: a fresh process spends its first thousands
  // of requests interpreting and compiling, and V8 optimizes the request path's functions in a burst at about
  // 10,000 to 13,000 requests (`--trace-opt`: about 0.8 s of compilation on the gateway's one V8 worker
  // thread, taken from the 2 cores the three processes share). `warmupRequests` take each server past it. At
  // the lowest rate measured, not flat out: V8 keeps the heap it grew for the highest load a process has seen,
  // so the resident memory read after each phase is that of a gateway that has served no more than that
  // phase's load (phases run from the lightest to the heaviest)
  const warmupRate = Math.min(...rates)
  const coldStart: Record<string, Latency & { readonly maxMs: number }> = {}
  for (const [name, url] of [
    ["direct", direct],
    ["gateway", viaGateway],
    ["reference", viaReference]
  ] as const) {
    const [phase] = await openLoop([target(url, false)], {
      rate: warmupRate,
      seconds: warmupRequests / warmupRate,
      warmupSeconds: 0
    })
    const maxMs = Math.max(0, ...phase.slowest.map((slow) => slow.latencyFromDueMs))
    coldStart[name] = { ...phase.latencyFromDueMs, maxMs }
  }

  /** Runs a phase after checking one answer: the gateway's and the chaos server's CPU per request sent. */
  const measured = async <P extends Phase>(to: Target, run: (to: Target) => Promise<P>, sent: (phase: P) => number) => {
    await check(to, { status: 200, sse: to.body === streamBody })
    const start = { gateway: processStats(pid), chaos: processStats(chaosPid) }
    const phase = await run(to)
    const end = { gateway: processStats(pid), chaos: processStats(chaosPid) }
    const perRequest = (before: number, after: number) =>
      Math.round(((after - before) * 1000) / Math.max(1, sent(phase)))
    return {
      phase,
      gatewayCpuPerRequestUs: perRequest(start.gateway.cpuMs, end.gateway.cpuMs),
      chaosCpuPerRequestUs: perRequest(start.chaos.cpuMs, end.chaos.cpuMs),
      gatewayRssMb: end.gateway.rssMb,
      gatewayPeakRssMb: end.gateway.peakRssMb,
      loadAverage: os.loadavg()[0]
    }
  }

  const round = (ms: number) => Math.round(ms * 1000) / 1000
  const added = <P extends Phase>(g: P, d: P, latency: (phase: P) => Latency = (phase) => phase.latencyMs) => ({
    p50: round(latency(g).p50 - latency(d).p50),
    p99: round(latency(g).p99 - latency(d).p99)
  })

  const loads = []
  for (const rate of rates) {
    // the direct calls and the gateway's take turns of 1 s over one phase, so that both meet the same
    // conditions of the machine (its other work, the chaos server's GC); see docs/benchmarks.md
    // and the reference proxy takes its turn too: what a proxy with no policies adds on the same machine
    const to = [target(direct, false), target(viaGateway, false), target(viaReference, false)]
    for (const t of to) await check(t, { status: 200, sse: false })
    const stats = () => ({
      gateway: processStats(pid),
      chaos: processStats(chaosPid),
      reference: processStats(referencePid)
    })
    const start = stats()
    const [d, g, r] = await openLoop(to, { rate, seconds, warmupSeconds, sliceSeconds: 1 })
    const end = stats()
    // the probes write every 200 ms
    await new Promise((resolve) => setTimeout(resolve, 400))
    const pauses = { gateway: readPauses(gcLog.gateway), chaos: readPauses(gcLog.chaos) }
    const { slowest: _d, connectionsOpenedAt: _dc, window: _dw, ...directPhase } = d
    const { slowest: _g, connectionsOpenedAt: _gc, window: _gw, ...gatewayPhase } = g
    const { slowest: _r, connectionsOpenedAt: _rc, window: _rw, ...referencePhase } = r
    loads.push({
      rate,
      direct: directPhase,
      gateway: gatewayPhase,
      addedLatencyMs: added(g, d),
      addedLatencyFromDueMs: added(g, d, (phase) => phase.latencyFromDueMs),
      tail: { direct: tailOf(d, pauses), gateway: tailOf(g, pauses) },
      gatewayCpuPerRequestUs: Math.round(((end.gateway.cpuMs - start.gateway.cpuMs) * 1000) / g.sent),
      reference: {
        ...referencePhase,
        addedLatencyMs: added(r, d),
        cpuPerRequestUs: Math.round(((end.reference.cpuMs - start.reference.cpuMs) * 1000) / r.sent)
      },
      // over the requests of all three
      chaosCpuPerRequestUs: Math.round(((end.chaos.cpuMs - start.chaos.cpuMs) * 1000) / (d.sent + g.sent + r.sent)),
      gatewayRssMb: end.gateway.rssMb,
      gatewayPeakRssMb: end.gateway.peakRssMb,
      loadAverage: os.loadavg()[0]
    })
    const last = loads.at(-1)!
    console.error(
      `${rate} req/s: added p50 ${last.addedLatencyMs.p50} ms, p99 ${last.addedLatencyMs.p99} ms (reference proxy ${last.reference.addedLatencyMs.p50} / ${last.reference.addedLatencyMs.p99} ms); schedule lag p99 ${d.scheduleLagMs.p99} / ${g.scheduleLagMs.p99} ms; load generator ${g.generatorCpuPerRequestUs} µs of CPU per request`
    )
  }
  // CPU per request when busy, free of idle time: a closed loop of 20 clients through the gateway, the
  // chaos server's CPU for the same requests beside it (after the open loops: it runs the gateway flat out)
  const closed = await measured(
    target(viaGateway, false),
    (to) => streams(to, { concurrency: 20, seconds }),
    (phase) => phase.requests
  )
  const closedLoop = {
    clients: 20,
    requests: closed.phase.requests,
    errors: closed.phase.errors,
    rate: closed.phase.achievedRate,
    gatewayCpuPerRequestUs: closed.gatewayCpuPerRequestUs,
    chaosCpuPerRequestUs: closed.chaosCpuPerRequestUs,
    generatorCpuPerRequestUs: closed.phase.generatorCpuPerRequestUs,
    referenceCpuPerRequestUs: await (async () => {
      const before = processStats(referencePid).cpuMs
      const phase = await streams(target(viaReference, false), { concurrency: 20, seconds })
      return Math.round(((processStats(referencePid).cpuMs - before) * 1000) / Math.max(1, phase.requests))
    })()
  }
  console.error(
    `closed loop: gateway ${closedLoop.gatewayCpuPerRequestUs} µs (reference proxy ${closedLoop.referenceCpuPerRequestUs} µs), chaos server ${closedLoop.chaosCpuPerRequestUs} µs, load generator ${closedLoop.generatorCpuPerRequestUs} µs of CPU per request`
  )
  const streamPhase = (url: string) =>
    measured(
      target(url, true),
      (to) => streams(to, { concurrency: 200, seconds }),
      (phase) => phase.requests
    )
  const ds = await streamPhase(direct)
  const gs = await streamPhase(viaGateway)
  const result = {
    benchmark: "gateway",
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, node: process.version },
    note:
      "load generator, chaos server and gateway share the machine's cores; the generator is an HTTP/1.1 client over node:net " +
      "(keep-alive, one request per connection at a time); open loop with request i due at start + i / rate: " +
      "latencyMs from the send to the last byte, latencyFromDueMs from the due time, scheduleLagMs the send's delay; " +
      "in an open loop the direct, the gateway's and the reference proxy's requests take turns of 1 s (achievedRate is " +
      "the three together); the reference proxy (reference.ts) is node:http and undici with no policies",
    secondsPerPhase: seconds,
    loadAverageAtStart: loadAtStart,
    gatewayStartRssMb: startRss,
    // each server's first requests, from its start (latency from the due time)
    coldStart: { requests: warmupRequests, rate: warmupRate, latencyMs: coldStart },
    closedLoop,
    loads,
    streams: {
      concurrency: 200,
      direct: ds.phase,
      gateway: gs.phase,
      addedLatencyMs: added(gs.phase, ds.phase),
      gatewayCpuPerStreamUs: gs.gatewayCpuPerRequestUs,
      chaosCpuPerStreamUs: { direct: ds.chaosCpuPerRequestUs, gateway: gs.chaosCpuPerRequestUs },
      gatewayRssMb: gs.gatewayRssMb,
      gatewayPeakRssMb: gs.gatewayPeakRssMb,
      loadAverage: gs.loadAverage
    },
    chaosServerRssMb: processStats(chaosPid).rssMb
  }
  const json = JSON.stringify(result, null, 2)
  console.log(json)
  fs.mkdirSync(path.join(here, "..", "results"), { recursive: true })
  fs.writeFileSync(path.join(here, "..", "results", "gateway.json"), `${json}\n`)
} finally {
  for (const c of children) c.child.kill("SIGKILL")
  remove()
}

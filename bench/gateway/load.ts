/**
 * The load generator of the gateway benchmark: an open loop (request `i` is due at `start + i / rate` and is
 * sent then, whether or not earlier ones have answered) and a closed loop of concurrent streams, with the
 * latency of every request, the generator's own CPU time, and the CPU time and memory of a server process read
 * from /proc. The generator shares the machine's cores with the servers it measures, so it is kept light: its
 * client (`http.ts`) is a small pool of keep-alive connections over `node:net`.
 */
import * as fs from "node:fs"
import { type Client, connect, type Target } from "./http.ts"

/** Latency percentiles in milliseconds. */
export interface Latency {
  readonly p50: number
  readonly p99: number
  readonly mean: number
}

/** What one phase measured. */
export interface Phase {
  readonly requests: number
  readonly errors: number
  /** The rate actually sent (requests/s). */
  readonly achievedRate: number
  /**
   * From the moment the request was sent (or queued, when all 1,024 connections were busy) to its response's
   * last byte; answered requests only.
   */
  readonly latencyMs: Latency
  /** The generator's own CPU time (user + system, all its threads) over the phase, per request sent. */
  readonly generatorCpuPerRequestUs: number
  /** Connections the phase opened. */
  readonly connections: number
}

/** What an open-loop phase measured besides. */
export interface OpenLoopPhase extends Phase {
  /** From the moment the request was due to its last byte: the latency corrected for coordinated omission. */
  readonly latencyFromDueMs: Latency
  /** How late each request was sent after its due time: whether the generator kept to its schedule. */
  readonly scheduleLagMs: { readonly p50: number; readonly p99: number; readonly max: number }
}

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits

/** Percentiles and mean of the samples that are not NaN (NaN marks an error). */
export const latencyOf = (samples: ArrayLike<number>): Latency => {
  const sorted = Float64Array.from(samples)
    .filter((x) => !Number.isNaN(x))
    .sort()
  if (sorted.length === 0) return { p50: Number.NaN, p99: Number.NaN, mean: Number.NaN }
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
  return { p50: round(at(0.5)), p99: round(at(0.99)), mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length) }
}

/** The generator's CPU time (µs, all threads) since `before`, per request. */
const cpuPerRequest = (before: NodeJS.CpuUsage, requests: number) => {
  const used = process.cpuUsage(before)
  return Math.round((used.user + used.system) / Math.max(1, requests))
}

const isOk = (status: number) => status >= 200 && status < 300

/**
 * Sends `rate` requests per second for `warmupSeconds` (not measured) then `seconds`, request `i` at
 * `start + i / rate`, and waits for every answer. The generator's CPU time covers the whole phase.
 *
 * The schedule is kept by a timer (1 ms, or up to the next due time at low rates) that sends every request
 * then due. Measured against the chaos server at 1,000 and 2,000 requests/s (4 interleaved rounds, the machine
 * busy): checking the schedule after each response as well lowered the median lag from about 1.1 to 0.7 ms
 * but did not lower the generator's CPU (128 against 112 µs per request at 1,000/s, 77 against 70 at 2,000/s);
 * sending from `setImmediate` when the next request is due within 1 ms keeps the lag near 0 on an idle
 * machine but spins the event loop, 2 to 5 times the CPU per request, taken from the servers being measured.
 */
export const openLoop = async (
  target: Target,
  schedule: { readonly rate: number; readonly seconds: number; readonly warmupSeconds: number },
  client: Client = connect(target)
): Promise<OpenLoopPhase> => {
  const { rate } = schedule
  const warmup = Math.round(schedule.warmupSeconds * rate)
  const total = warmup + Math.round(schedule.seconds * rate)
  // per measured request (NaN for an error), preallocated
  const fromSend = new Float64Array(total - warmup).fill(Number.NaN)
  const fromDue = new Float64Array(total - warmup).fill(Number.NaN)
  const lag = new Float64Array(total - warmup)
  let next = 0
  let answered = 0
  let errors = 0
  let lastSent = 0
  const cpu = process.cpuUsage()
  const start = performance.now()
  const dueAt = (i: number) => start + (i * 1000) / rate
  await new Promise<void>((resolve) => {
    // sends every request now due, then sleeps until the next is due (at least 1 ms, Node's timer resolution)
    const tick = () => {
      const now = performance.now()
      for (; next < total && dueAt(next) <= now; next++) {
        const i = next - warmup
        const due = dueAt(next)
        const sentAt = performance.now()
        lastSent = sentAt
        if (i >= 0) lag[i] = sentAt - due
        client.send((status) => {
          answered++
          if (i >= 0) {
            const end = performance.now()
            if (isOk(status)) {
              fromSend[i] = end - sentAt
              fromDue[i] = end - due
            } else errors++
          }
          if (answered === total) resolve()
        })
      }
      if (next < total) setTimeout(tick, Math.max(1, Math.floor(dueAt(next) - performance.now())))
    }
    tick()
  })
  const generatorCpuPerRequestUs = cpuPerRequest(cpu, total)
  client.close()
  const requests = total - warmup
  const lagMs = latencyOf(lag)
  return {
    requests,
    errors,
    // over the measured requests' schedule, from the first one's due time to the last one's send
    achievedRate: round(requests / ((lastSent - dueAt(warmup)) / 1000 + 1 / rate), 1),
    latencyMs: latencyOf(fromSend),
    latencyFromDueMs: latencyOf(fromDue),
    scheduleLagMs: { p50: lagMs.p50, p99: lagMs.p99, max: round(lag.reduce((a, b) => Math.max(a, b), 0)) },
    generatorCpuPerRequestUs,
    connections: client.connections()
  }
}

/** `concurrency` clients each sending one request after another (streamed or not) for `seconds`. */
export const streams = async (
  target: Target,
  options: { readonly concurrency: number; readonly seconds: number },
  client: Client = connect(target)
): Promise<Phase> => {
  const samples: Array<number> = []
  let errors = 0
  const cpu = process.cpuUsage()
  const started = performance.now()
  const until = started + options.seconds * 1000
  await new Promise<void>((resolve) => {
    let running = options.concurrency
    const worker = () => {
      if (performance.now() >= until) {
        if (--running === 0) resolve()
        return
      }
      const sentAt = performance.now()
      client.send((status) => {
        if (isOk(status)) samples.push(performance.now() - sentAt)
        else errors++
        worker()
      })
    }
    for (let k = 0; k < options.concurrency; k++) worker()
  })
  const requests = samples.length + errors
  const phase = {
    requests,
    errors,
    achievedRate: round(requests / ((performance.now() - started) / 1000), 1),
    latencyMs: latencyOf(samples),
    generatorCpuPerRequestUs: cpuPerRequest(cpu, requests),
    connections: client.connections()
  }
  client.close()
  return phase
}

/** CPU time (user + system, ms) and resident memory (MB, current and peak) of a process, from /proc. */
export const processStats = (
  pid: number
): { readonly cpuMs: number; readonly rssMb: number; readonly peakRssMb: number } => {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  // utime and stime are fields 14 and 15 of stat (11 and 12 after the command), in clock ticks of 10 ms
  const cpuMs = (Number(fields[11]) + Number(fields[12])) * 10
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN)
  return { cpuMs, rssMb: round(kb("VmRSS") / 1024, 1), peakRssMb: round(kb("VmHWM") / 1024, 1) }
}

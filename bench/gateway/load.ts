/**
 * The load generator of the gateway benchmark: an open-loop request rate (requests are sent on schedule
 * whether or not earlier ones have answered) and a closed loop of concurrent streams, over undici, with the
 * latency of every request and the CPU time and memory of a server process read from /proc.
 */
import * as fs from "node:fs"
import { Agent, request } from "undici"

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
  readonly latencyMs: Latency
}

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits

export const latencyOf = (samples: Array<number>): Latency => {
  if (samples.length === 0) return { p50: Number.NaN, p99: Number.NaN, mean: Number.NaN }
  const sorted = Float64Array.from(samples).sort()
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
  return { p50: round(at(0.5)), p99: round(at(0.99)), mean: round(samples.reduce((a, b) => a + b, 0) / samples.length) }
}

/** One HTTP client for a whole run: many keep-alive connections, no pipelining. */
export const agent = new Agent({ connections: 1024, pipelining: 1, keepAliveTimeout: 30_000 })

/** Sends one POST and reads its body; the latency in ms, or `undefined` for an error (non-2xx, transport). */
const send = async (url: string, body: string, headers: Record<string, string>): Promise<number | undefined> => {
  const started = performance.now()
  try {
    const res = await request(url, { method: "POST", body, headers, dispatcher: agent })
    await res.body.text()
    return res.statusCode >= 200 && res.statusCode < 300 ? performance.now() - started : undefined
  } catch {
    return undefined
  }
}

/** Where a phase sends: the URL, the body and the headers of every request. */
interface Target {
  readonly url: string
  readonly body: string
  readonly headers: Record<string, string>
}

/**
 * Sends `rate` requests per second for `seconds` (after `warmupSeconds` not measured), on a 5 ms schedule,
 * and waits for every answer.
 */
export const openLoop = async (
  options: Target & {
    readonly rate: number
    readonly seconds: number
    readonly warmupSeconds: number
  }
): Promise<Phase> => {
  const samples: Array<number> = []
  let errors = 0
  let sent = 0
  const inFlight: Array<Promise<void>> = []
  const tickMs = 5
  const total = (options.seconds + options.warmupSeconds) * options.rate
  const warmup = options.warmupSeconds * options.rate
  const start = performance.now()
  let measuredStart = start
  await new Promise<void>((done) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * options.rate))
      while (sent < due) {
        const measured = sent >= warmup
        if (sent === warmup) measuredStart = performance.now()
        sent++
        inFlight.push(
          send(options.url, options.body, options.headers).then((ms) => {
            if (!measured) return
            if (ms === undefined) errors++
            else samples.push(ms)
          })
        )
      }
      if (sent >= total) done()
      else setTimeout(tick, tickMs)
    }
    tick()
  })
  const sendingSeconds = (performance.now() - measuredStart) / 1000
  await Promise.all(inFlight)
  const requests = total - warmup
  return { requests, errors, achievedRate: round(requests / sendingSeconds, 1), latencyMs: latencyOf(samples) }
}

/** `concurrency` clients each streaming one answer after another for `seconds`. */
export const streams = async (
  options: Target & { readonly concurrency: number; readonly seconds: number }
): Promise<Phase> => {
  const samples: Array<number> = []
  let errors = 0
  const until = performance.now() + options.seconds * 1000
  const started = performance.now()
  const worker = async () => {
    while (performance.now() < until) {
      const ms = await send(options.url, options.body, options.headers)
      if (ms === undefined) errors++
      else samples.push(ms)
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, worker))
  const requests = samples.length + errors
  return {
    requests,
    errors,
    achievedRate: round(requests / ((performance.now() - started) / 1000), 1),
    latencyMs: latencyOf(samples)
  }
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

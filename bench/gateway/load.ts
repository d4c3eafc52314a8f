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
   * From the moment the request was sent (or queued, when all the connections allowed were busy) to its response's
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
  /** The answered requests at or above the p99 of `latencyFromDueMs`, in the order they were due. */
  readonly slowest: ReadonlyArray<Slow>
  /** When the phase's client opened each of its connections (epoch milliseconds). */
  readonly connectionsOpenedAt: ReadonlyArray<number>
  /** Requests sent to this target, the warm-up's included. */
  readonly sent: number
  /** When the phase's measured requests began and ended being due (epoch milliseconds). */
  readonly window: { readonly from: number; readonly to: number }
}

/** One of the slowest requests of an open loop. */
export interface Slow {
  /** When it was due (epoch milliseconds). */
  readonly dueAt: number
  readonly latencyFromDueMs: number
  /** How late it was sent. */
  readonly lagMs: number
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

/** An open loop's schedule: `rate` requests per second per target, for `warmupSeconds` then `seconds`. */
export interface Schedule {
  readonly rate: number
  readonly seconds: number
  readonly warmupSeconds: number
  /**
   * With several targets, how long each takes its turn (default 1 s): the targets alternate slice by slice,
   * so that each meets the same conditions of the machine over the phase.
   */
  readonly sliceSeconds?: number
  /**
   * The connections each target's client may open (default 64); a request due while all are busy waits in
   * the generator, and its latency counts the wait.
   */
  readonly connections?: number
}

/**
 * Sends `rate` requests per second, request `n` at `start + n / rate`, for `warmupSeconds` (not measured) then
 * `seconds` per target, and waits for every answer; with several targets, they take turns of `sliceSeconds`
 * (the phase lasts that many times longer), and a request sent while another target still has requests in
 * flight is not measured: a backlog one target left (a server that fell behind) is not counted against the
 * next. Each target has its own client. Resolves with a phase per target;
 * the generator's CPU time covers the whole phase, per request sent.
 *
 * The schedule is kept by a timer (1 ms, or up to the next due time at low rates) that sends every request
 * then due. Measured against the chaos server at 1,000 and 2,000 requests/s (4 interleaved rounds, the machine
 * busy): checking the schedule after each response as well lowered the median lag from about 1.1 to 0.7 ms
 * but did not lower the generator's CPU (128 against 112 µs per request at 1,000/s, 77 against 70 at 2,000/s);
 * sending from `setImmediate` when the next request is due within 1 ms keeps the lag near 0 on an idle
 * machine but spins the event loop, 2 to 5 times the CPU per request, taken from the servers being measured.
 */
export const openLoop = async (
  targets: ReadonlyArray<Target>,
  schedule: Schedule
): Promise<ReadonlyArray<OpenLoopPhase>> => {
  const { rate } = schedule
  const clients = targets.map((target) => connect(target, schedule.connections ?? 64))
  const perSlice = Math.max(1, Math.round((schedule.sliceSeconds ?? 1) * rate))
  const targetOf = (n: number) => Math.floor(n / perSlice) % targets.length
  const warmup = Math.round(schedule.warmupSeconds * rate)
  const total = warmup + Math.round(schedule.seconds * rate) * targets.length
  const inFlight = targets.map(() => 0)
  // per request sent: whether it is measured (after the warm-up, no other target's request in flight)
  const measured = new Uint8Array(total)
  // per request sent, measured or not (NaN for an error), preallocated
  const fromSend = new Float64Array(total).fill(Number.NaN)
  const fromDue = new Float64Array(total).fill(Number.NaN)
  const lag = new Float64Array(total)
  let next = 0
  let answered = 0
  const errors = targets.map(() => 0)
  let lastSent = 0
  const cpu = process.cpuUsage()
  const start = performance.now()
  const dueAt = (n: number) => start + (n * 1000) / rate
  await new Promise<void>((resolve) => {
    // sends every request now due, then sleeps until the next is due (at least 1 ms, Node's timer resolution)
    const tick = () => {
      const now = performance.now()
      for (; next < total && dueAt(next) <= now; next++) {
        const n = next
        const due = dueAt(n)
        const sentAt = performance.now()
        lastSent = sentAt
        lag[n] = sentAt - due
        const k = targetOf(n)
        measured[n] = n >= warmup && inFlight.every((count, j) => j === k || count === 0) ? 1 : 0
        inFlight[k]++
        clients[k].send((status) => {
          answered++
          inFlight[k]--
          const end = performance.now()
          if (isOk(status)) {
            fromSend[n] = end - sentAt
            fromDue[n] = end - due
          } else if (measured[n] === 1) errors[k]++
          if (answered === total) resolve()
        })
      }
      if (next < total) setTimeout(tick, Math.max(1, Math.floor(dueAt(next) - performance.now())))
    }
    tick()
  })
  const generatorCpuPerRequestUs = cpuPerRequest(cpu, total)
  const epoch = (t: number) => round(performance.timeOrigin + t)
  // of all targets together, after the warm-up, from the first due time to the last send
  const achievedRate = round((total - warmup) / ((lastSent - dueAt(warmup)) / 1000 + 1 / rate), 1)
  return targets.map((_, k) => {
    const mine: Array<number> = []
    let sent = 0
    for (let n = 0; n < total; n++) {
      if (targetOf(n) !== k) continue
      sent++
      if (measured[n] === 1) mine.push(n)
    }
    const pick = (samples: Float64Array) => Float64Array.from(mine, (n) => samples[n])
    const latencyFromDueMs = latencyOf(pick(fromDue))
    const lagMs = latencyOf(pick(lag))
    clients[k].close()
    return {
      requests: mine.length,
      sent,
      errors: errors[k],
      achievedRate,
      latencyMs: latencyOf(pick(fromSend)),
      latencyFromDueMs,
      scheduleLagMs: { p50: lagMs.p50, p99: lagMs.p99, max: round(pick(lag).reduce((a, b) => Math.max(a, b), 0)) },
      slowest: mine
        .filter((n) => fromDue[n] >= latencyFromDueMs.p99)
        .map((n) => ({ dueAt: epoch(dueAt(n)), latencyFromDueMs: round(fromDue[n]), lagMs: round(lag[n]) })),
      connectionsOpenedAt: clients[k].openedAt().map(epoch),
      window: { from: epoch(dueAt(warmup)), to: epoch(dueAt(total - 1)) },
      generatorCpuPerRequestUs,
      connections: clients[k].connections()
    }
  })
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

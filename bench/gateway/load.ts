/**
 * The load generator of the gateway benchmark: an open loop (request `i` is due at `start + i / rate` and is
 * sent then, whether or not earlier ones have answered) and a closed loop of concurrent streams, with the
 * latency of every request, the generator's own CPU time, and the CPU time and memory of a server process read
 * from /proc.
 *
 * The generator shares the machine's cores with the servers it measures, so it is kept light. Its HTTP/1.1
 * client (`connect`) is a small pool over `node:net`: keep-alive connections carrying one request at a time
 * (more are opened while all are busy, up to 1,024), the request's bytes encoded once per target, and a
 * response reader (`ResponseReader`) for what the chaos server and the gateway send: a status line, headers,
 * and a body of declared length or in chunks (as SSE streams are), read to its end. A request is an error when
 * its status is not 2xx, its connection fails or closes before the response ends, the response is malformed,
 * or no complete answer came within 30 s (its connection is then destroyed).
 */
import * as fs from "node:fs"
import * as net from "node:net"

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

/** Where a phase sends: the URL, the body and the headers of every request (a POST). */
export interface Target {
  readonly url: string
  readonly body: string
  readonly headers: Record<string, string>
}

/** Called once per request with the response's status (0 when it failed) and, when asked for, its body. */
export type Done = (status: number, body?: Buffer) => void

/** An HTTP client bound to one target. */
export interface Client {
  /** Sends the target's request; `done` gets its status, and its body when `keepBody`. */
  readonly send: (done: Done, keepBody?: boolean) => void
  /** Connections opened so far. */
  readonly connections: () => number
  /** Closes every connection; requests in flight end with status 0. */
  readonly close: () => void
}

const maxConnections = 1024
const timeoutMs = 30_000
// the servers close a connection idle for 5 s (Node's default): one idle for longer than this is not reused,
// so that a request never meets a connection the server is closing
const idleMs = 4_000

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits

const CRLF = 0x0d0a

/** An error in the response's framing: the connection cannot be trusted further. */
class Malformed extends Error {}

/**
 * Reads one HTTP/1.1 response fed in pieces: its status line and headers, then its body to the end (by
 * `content-length`, or chunk by chunk up to the 0-size chunk and the trailers of `transfer-encoding: chunked`).
 * A response with neither (read until the connection closes) is not supported: these servers never send one.
 */
export class ResponseReader {
  status = 0
  /** Whether the server closes the connection after this response (`connection: close`). */
  closes = false
  private step: "head" | "fixed" | "chunkSize" | "chunkData" | "chunkEnd" | "trailer" | "complete" = "head"
  private remaining = 0
  private rest: Buffer | undefined
  private readonly body: Array<Buffer> | undefined

  /** Keeps the body's bytes when `keepBody`. */
  constructor(keepBody: boolean) {
    this.body = keepBody ? [] : undefined
  }

  /** The body read, if kept. */
  bodyBytes(): Buffer | undefined {
    return this.body === undefined ? undefined : Buffer.concat(this.body)
  }

  /** Consumes the next bytes of the response: `true` once it is complete. Throws `Malformed`. */
  feed(data: Buffer): boolean {
    const buf = this.rest === undefined ? data : Buffer.concat([this.rest, data])
    this.rest = undefined
    let at = 0
    while (at < buf.length) {
      const next = this.advance(buf, at)
      if (next === -1) {
        // an incomplete line: keep it for the next bytes (a head or a chunk-size line is never this long)
        if (buf.length - at > 65_536) throw new Malformed("line too long")
        this.rest = buf.subarray(at)
        break
      }
      at = next
    }
    return this.step === "complete"
  }

  /** One step of reading from `at`: the offset after what was read, or -1 if more bytes are needed. */
  private advance(buf: Buffer, at: number): number {
    switch (this.step) {
      case "head": {
        const end = buf.indexOf("\r\n\r\n", at, "latin1")
        if (end === -1) return -1
        this.readHead(buf.toString("latin1", at, end))
        return end + 4
      }
      case "fixed":
      case "chunkData": {
        const take = Math.min(this.remaining, buf.length - at)
        this.body?.push(Buffer.from(buf.subarray(at, at + take)))
        this.remaining -= take
        if (this.remaining === 0) this.step = this.step === "fixed" ? "complete" : "chunkEnd"
        return at + take
      }
      case "chunkEnd": {
        if (buf.length - at < 2) return -1
        if (buf.readUInt16BE(at) !== CRLF) throw new Malformed("chunk not followed by CRLF")
        this.step = "chunkSize"
        return at + 2
      }
      case "chunkSize": {
        const end = buf.indexOf("\r\n", at, "latin1")
        if (end === -1) return -1
        const line = buf.toString("latin1", at, end)
        const hex = line.split(";", 1)[0].trim()
        if (!/^[0-9a-fA-F]+$/.test(hex)) throw new Malformed(`bad chunk size ${JSON.stringify(line)}`)
        this.remaining = parseInt(hex, 16)
        this.step = this.remaining === 0 ? "trailer" : "chunkData"
        return end + 2
      }
      case "trailer": {
        // trailer lines up to an empty one, which ends the response
        const end = buf.indexOf("\r\n", at, "latin1")
        if (end === -1) return -1
        if (end === at) this.step = "complete"
        return end + 2
      }
      case "complete":
        throw new Malformed("bytes after the response")
    }
  }

  private readHead(head: string): void {
    const lines = head.split("\r\n")
    const statusLine = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0])
    if (statusLine === null) throw new Malformed(`bad status line ${JSON.stringify(lines[0])}`)
    this.status = Number(statusLine[1])
    let length: number | undefined
    let chunked = false
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":")
      if (colon <= 0) throw new Malformed(`bad header line ${JSON.stringify(lines[i])}`)
      const name = lines[i].slice(0, colon).toLowerCase()
      const value = lines[i].slice(colon + 1).trim()
      if (name === "content-length") {
        if (!/^\d+$/.test(value)) throw new Malformed(`bad content-length ${value}`)
        length = Number(value)
      } else if (name === "transfer-encoding") chunked = /(?:^|,)\s*chunked$/i.test(value)
      else if (name === "connection") this.closes = /(?:^|,)\s*close\s*(?:,|$)/i.test(value)
    }
    if (this.status < 200) throw new Malformed(`informational status ${this.status}: no request expects one`)
    if (this.status === 204 || this.status === 304) this.step = "complete"
    else if (chunked) this.step = "chunkSize"
    else if (length !== undefined) {
      this.remaining = length
      this.step = length === 0 ? "complete" : "fixed"
    } else throw new Malformed("neither content-length nor chunked")
  }
}

/** A keep-alive connection and the one request it carries, if any. */
interface Connection {
  readonly socket: net.Socket
  reader: ResponseReader | undefined
  done: Done | undefined
  /** When its request was sent, or when it became idle. */
  since: number
}

/** A request waiting for a connection (all 1,024 busy). */
interface Waiting {
  readonly done: Done
  readonly keepBody: boolean
  readonly since: number
}

/** The request's bytes: method, path, host, the target's headers, content-length and body. */
const encode = (url: URL, target: Target): Buffer => {
  const body = Buffer.from(target.body)
  const headers = { host: url.host, ...target.headers, "content-length": String(body.length) }
  const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`)
  return Buffer.concat([Buffer.from(`POST ${url.pathname}${url.search} HTTP/1.1\r\n${head.join("")}\r\n`), body])
}

/** A pool of keep-alive connections to `target`'s host, each carrying one request at a time (no pipelining). */
export const connect = (target: Target): Client => {
  const url = new URL(target.url)
  const request = encode(url, target)
  const idle: Array<Connection> = []
  const busy = new Set<Connection>()
  const waiting: Array<Waiting> = []
  let open = 0
  let opened = 0
  let closed = false

  const start = (connection: Connection, done: Done, keepBody: boolean) => {
    connection.reader = new ResponseReader(keepBody)
    connection.done = done
    connection.since = performance.now()
    busy.add(connection)
    connection.socket.write(request)
  }

  /** Ends the connection's request (if any) with `status`; the connection is free again unless it failed. */
  const finish = (connection: Connection, status: number) => {
    const { done, reader } = connection
    connection.done = connection.reader = undefined
    busy.delete(connection)
    if (status === 0 || reader?.closes || closed) connection.socket.destroy()
    else {
      const next = waiting.shift()
      if (next !== undefined) start(connection, next.done, next.keepBody)
      else {
        connection.since = performance.now()
        idle.push(connection)
      }
    }
    done?.(status, reader?.bodyBytes())
  }

  const openConnection = (): Connection => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port || 80), noDelay: true })
    const connection: Connection = { socket, reader: undefined, done: undefined, since: 0 }
    open++
    opened++
    socket.on("data", (data: Buffer) => {
      if (connection.reader === undefined) return void socket.destroy() // bytes no request asked for
      let complete: boolean
      try {
        complete = connection.reader.feed(data)
      } catch {
        return finish(connection, 0)
      }
      if (complete) finish(connection, connection.reader.status)
    })
    socket.on("error", () => {}) // followed by "close"
    socket.on("close", () => {
      open--
      const at = idle.indexOf(connection)
      if (at !== -1) idle.splice(at, 1)
      if (connection.done !== undefined) finish(connection, 0)
      const next = closed ? undefined : waiting.shift()
      if (next !== undefined) start(openConnection(), next.done, next.keepBody)
    })
    return connection
  }

  /** An idle connection (the most recently used, so that the others idle out), or a new one if allowed. */
  const take = (): Connection | undefined => {
    const now = performance.now()
    for (let connection = idle.pop(); connection !== undefined; connection = idle.pop()) {
      if (now - connection.since < idleMs) return connection
      connection.socket.destroy()
    }
    return open < maxConnections ? openConnection() : undefined
  }

  // every wait is bounded: a request without a complete answer after 30 s fails and its connection is destroyed
  const sweep = setInterval(() => {
    const now = performance.now()
    for (const connection of busy) if (now - connection.since > timeoutMs) finish(connection, 0)
    while (waiting.length > 0 && now - waiting[0].since > timeoutMs) waiting.shift()!.done(0)
  }, 1000).unref()

  return {
    send: (done, keepBody = false) => {
      if (closed) return done(0)
      const connection = take()
      if (connection !== undefined) start(connection, done, keepBody)
      else waiting.push({ done, keepBody, since: performance.now() })
    },
    connections: () => opened,
    close: () => {
      closed = true
      clearInterval(sweep)
      for (const connection of [...idle, ...busy]) connection.socket.destroy()
      for (const w of waiting.splice(0)) w.done(0)
    }
  }
}

/** Sends one request to `target` on a connection of its own: the status and the body. */
export const fetchOnce = (target: Target): Promise<{ readonly status: number; readonly body: string }> =>
  new Promise((resolve) => {
    const client = connect(target)
    client.send((status, body) => {
      client.close()
      resolve({ status, body: body?.toString("utf8") ?? "" })
    }, true)
  })

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

/**
 * The load generator's HTTP/1.1 client: a small pool over `node:net` of keep-alive connections carrying one
 * request at a time (more are opened while all are busy, up to a limit: 1,024 unless told), the request's bytes encoded once per
 * target, and a response reader (`ResponseReader`) for what the chaos server and the gateway send: a status
 * line, headers, and a body of declared length or in chunks (as SSE streams are), read to its end. A request
 * is an error when its status is not 2xx, its connection fails or closes before the response ends, the response
 * is malformed, or no complete answer came within 30 s (its connection is then destroyed).
 */
import * as net from "node:net"

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
  /** When each connection was opened (`performance.now()`). */
  readonly openedAt: () => ReadonlyArray<number>
  /** Closes every connection; requests in flight end with status 0. */
  readonly close: () => void
}

const defaultMaxConnections = 1024
const timeoutMs = 30_000
// the servers close a connection idle for 5 s (Node's default): one idle for longer than this is not reused,
// so that a request never meets a connection the server is closing
const idleMs = 4_000

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

/** A request waiting for a connection (all busy, and no more allowed). */
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
export const connect = (target: Target, maxConnections: number = defaultMaxConnections): Client => {
  const url = new URL(target.url)
  const request = encode(url, target)
  const idle: Array<Connection> = []
  const busy = new Set<Connection>()
  const waiting: Array<Waiting> = []
  let open = 0
  const opened: Array<number> = []
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
    opened.push(performance.now())
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
    connections: () => opened.length,
    openedAt: () => opened,
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

/**
 * Starts a private `redis-server` for a test: a free loopback port (found by binding port 0), a temporary
 * directory, append-only persistence, a bounded wait for it to answer, and a stop that kills it.
 */
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

export interface RedisServer {
  readonly url: string
  readonly port: number
  readonly stop: () => Promise<void>
}

export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

const answers = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1")
    socket.setTimeout(500)
    socket.once("connect", () => socket.write("PING\r\n"))
    socket.once("data", (data) => {
      socket.destroy()
      resolve(data.toString().startsWith("+PONG"))
    })
    socket.once("error", () => resolve(false))
    socket.once("timeout", () => {
      socket.destroy()
      resolve(false)
    })
  })

/** Starts a server on a free port, or on `onPort` (to restart one that was stopped). */
export const startRedis = async (onPort?: number): Promise<RedisServer> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llm-redis-"))
  for (let tries = 0; ; tries++) {
    const port = onPort ?? (await freePort())
    const child: ChildProcess = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--dir", dir],
      { stdio: "ignore" }
    )
    let exited = false
    child.once("exit", () => (exited = true))
    const deadline = Date.now() + 10_000
    while (!exited && Date.now() < deadline && !(await answers(port))) await new Promise((r) => setTimeout(r, 50))
    if (!exited && (await answers(port))) {
      const stop = async () => {
        if (!exited) {
          const gone = new Promise((r) => child.once("exit", r))
          child.kill("SIGKILL")
          await Promise.race([gone, new Promise((r) => setTimeout(r, 5_000))])
        }
        fs.rmSync(dir, { recursive: true, force: true })
      }
      return { url: `redis://127.0.0.1:${port}`, port, stop }
    }
    child.kill("SIGKILL")
    // another process took the port between our probe and redis-server's bind: try another one
    if (tries >= 3 || onPort !== undefined) {
      fs.rmSync(dir, { recursive: true, force: true })
      throw new Error("redis-server did not start within 10 s (is it installed? apt-get install redis-server)")
    }
  }
}

/**
 * Worker processes for tests: a worker bundled into one file (a process then starts in a fraction of the
 * time it takes to load the sources module by module), started with its environment, ready when it prints
 * "ready", told to begin with "go" on stdin, its last stdout line read as JSON. Every wait is bounded.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { bundleBin } from "../../../scripts/bundle-bin.ts"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..")
const node = path.join(root, "node_modules", ".bin", "node")

/** Bundles `input` into `dir`/`name`.mjs, as commands are published; its path. */
export const bundle = (input: string, dir: string, name: string): Promise<string> =>
  bundleBin(input, path.join(dir, `${name}.mjs`))

export interface Worker {
  /** Tells the worker to begin. */
  readonly go: () => void
  /** The worker's last stdout line, parsed, once it exits (rejects after `timeoutMs`). */
  readonly result: <A>(timeoutMs: number) => Promise<A>
  readonly kill: () => void
}

/** Starts `file` with `env`; resolves once it printed "ready" (within `readyMs`). */
export const start = (file: string, env: Record<string, string>, readyMs = 30_000): Promise<Worker> =>
  new Promise((resolve, reject) => {
    const child = spawn(node, [file], { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] })
    let out = ""
    let err = ""
    let ready = false
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)))
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      err = (err + d).slice(-4_000)
    })
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`worker not ready within ${readyMs} ms\n${err}`))
    }, readyMs)
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      out += d
      if (!ready && out.includes("ready")) {
        ready = true
        clearTimeout(timer)
        resolve({
          go: () => child.stdin!.write("go\n"),
          kill: () => child.kill("SIGKILL"),
          result: <A>(timeoutMs: number) =>
            Promise.race([
              exited.then((code) => {
                const lines = out.trim().split("\n")
                if (code !== 0) throw new Error(`worker exited with ${code}\n${err}`)
                return JSON.parse(lines[lines.length - 1]) as A
              }),
              new Promise<A>((_, no) =>
                setTimeout(() => {
                  child.kill("SIGKILL")
                  no(new Error(`worker did not finish within ${timeoutMs} ms\n${err}`))
                }, timeoutMs).unref()
              )
            ])
        })
      }
    })
    void exited.then((code) => {
      if (!ready) {
        clearTimeout(timer)
        reject(new Error(`worker exited (${code}) before it was ready\n${err}`))
      }
    })
  })

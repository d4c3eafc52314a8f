/**
 * The gateway's (and the chaos server's) command line as a child process, bundled as it is published
 * (`scripts/bundle-bin.ts`): the tests and the benchmarks run the program users run.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { bundle } from "../../../redis/test/processes.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const node = path.resolve(here, "../../../../node_modules/.bin/node")

const cli = path.resolve(here, "../../bin/llm-resilience-gateway.ts")

/** Bundles `bin/llm-resilience-gateway.ts` into `dir`; the file's path. */
export const bundleCli = (dir: string): Promise<string> => bundle(cli, dir, "gateway")

/** The Node flags of a program's `#!/usr/bin/env -S node <flags>` line (the bundle keeps the entry's). */
export const nodeFlags = (program: string): ReadonlyArray<string> =>
  /^#!\/usr\/bin\/env -S node(.*)$/m
    .exec(fs.readFileSync(program, "utf8").split("\n", 1)[0])?.[1]
    .trim()
    .split(/\s+/) ?? []

/** Bundles the chaos server's command line into `dir`; the file's path. */
export const bundleChaos = (dir: string): Promise<string> =>
  bundle(path.resolve(here, "../../../testing/bin/chaos-server.ts"), dir, "chaos")

/** A running gateway process. */
export interface GatewayProcess {
  readonly child: ChildProcess
  readonly url: string
  /** Resolves with the exit code (or the signal that killed it). */
  readonly exited: Promise<number | string>
  readonly stderr: () => string
}

/** A temporary directory, removed by the returned function. */
export const tempDir = (): { readonly dir: string; readonly remove: () => void } => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llm-gateway-"))
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

/**
 * Starts the bundled CLI with a configuration and the Node flags of its `#!` line, as the installed command
 * runs (then `flags`); resolves once it prints its address (30 s at most).
 */
export const startCli = (
  program: string,
  config: unknown,
  env: Record<string, string>,
  dir: string,
  flags: ReadonlyArray<string> = []
): Promise<GatewayProcess> => {
  const file = path.join(dir, `config-${Math.floor(performance.now())}.json`)
  fs.writeFileSync(file, JSON.stringify(config))
  return startProcess(program, ["--config", file], env, [...nodeFlags(program), ...flags])
}

/** Starts a bundled server program (with Node flags); resolves once it prints `listening on <url>` (30 s at most). */
export const startProcess = (
  program: string,
  args: ReadonlyArray<string>,
  env: Record<string, string> = {},
  nodeFlags: ReadonlyArray<string> = []
): Promise<GatewayProcess> =>
  new Promise((resolve, reject) => {
    const child = spawn(node, [...nodeFlags, program, ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const exited = new Promise<number | string>((r) => child.once("exit", (code, signal) => r(code ?? signal ?? -1)))
    let err = ""
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${program} not listening within 30 s\n${err}`))
    }, 30_000)
    let out = ""
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      out += d
      const found = /listening on (http:\/\/\S+)/.exec(out)
      if (found !== null) {
        clearTimeout(timer)
        resolve({ child, url: found[1], exited, stderr: () => err })
      }
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`${program} exited with ${code} before listening\n${err}`))
    })
  })

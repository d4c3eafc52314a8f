/**
 * The chaos server's command line: flags to options, clear usage errors, and the real binary (help, a
 * scenario from the flags, a bad flag's exit code).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { ChaosServer } from "../src/index.ts"
import { parse } from "../src/internal/chaos/cli.ts"

const bin = fileURLToPath(new URL("../bin/chaos-server.ts", import.meta.url))
const nodeArgs = ["--conditions=@llm-resilience/source", bin]

const usageError = (argv: ReadonlyArray<string>) =>
  Effect.map(Effect.flip(parse(argv)), (e) => {
    assert.strictEqual(e._tag, "UsageError")
    return e.message
  })

/** Runs `f` on a temporary file holding `content`, then removes it. */
const withFile = <A, E>(name: string, content: string, f: (file: string) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "chaos-cli-"))
      fs.writeFileSync(path.join(dir, name), content)
      return dir
    }),
    (dir) => f(path.join(dir, name)),
    (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
  )

describe("chaos server command line", () => {
  it.effect("flags become server options", () =>
    Effect.gen(function* () {
      assert.deepStrictEqual(yield* parse([]), { _tag: "Serve", options: { host: "127.0.0.1", port: 8787 } })
      const command = yield* parse([
        "--host",
        "0.0.0.0",
        "--port",
        "0",
        "--scenario",
        "rate-limit, overloaded,ok",
        "--loop",
        "--stall-ms",
        "500",
        "--slow-headers-ms",
        "250",
        "--keep-alive-ms",
        "50",
        "--retry-after",
        "7",
        "--partial-chunks",
        "40",
        "--rate-limits",
        `{"m": {"requestsPerMinute": 500}, "n": {"tokensPerMinute": 9000}}`
      ])
      assert.deepStrictEqual(command, {
        _tag: "Serve",
        options: {
          host: "0.0.0.0",
          port: 0,
          scenario: ["rate-limit", "overloaded", "ok"],
          loopScenario: true,
          stallMs: 500,
          slowHeadersMs: 250,
          keepAliveIntervalMs: 50,
          retryAfterSeconds: 7,
          partialChunks: 40,
          rateLimits: { m: { requestsPerMinute: 500 }, n: { tokensPerMinute: 9000 } }
        }
      })
      const fromFile = yield* withFile("limits.json", `{"m": {"tokensPerMinute": 100}}`, (file) =>
        parse(["--rate-limits", file])
      )
      assert.deepStrictEqual(fromFile, {
        _tag: "Serve",
        options: { host: "127.0.0.1", port: 8787, rateLimits: { m: { tokensPerMinute: 100 } } }
      })
      assert.deepStrictEqual(yield* parse(["-h"]), { _tag: "Help" })
    })
  )

  it.effect("a scenario file holds a list of steps, or steps and loop", () =>
    Effect.gen(function* () {
      const list = yield* withFile("storm.json", `["overloaded", "ok"]`, (file) => parse(["--scenario", file]))
      assert.deepStrictEqual(list._tag === "Serve" && list.options.scenario, ["overloaded", "ok"])
      const looped = yield* withFile("storm.json", `{"steps": ["server-error"], "loop": true}`, (file) =>
        parse(["--scenario", file])
      )
      assert.deepStrictEqual(looped._tag === "Serve" && [looped.options.scenario, looped.options.loopScenario], [
        ["server-error"],
        true
      ])
    })
  )

  it.effect("a bad command line fails with a message naming the flag", () =>
    Effect.gen(function* () {
      assert.include(yield* usageError(["--bogus"]), "--bogus")
      assert.include(yield* usageError(["--port", "80a"]), "--port")
      assert.include(yield* usageError(["--port", "70000"]), "--port")
      assert.include(yield* usageError(["--stall-ms", "-5"]), "--stall-ms")
      assert.include(yield* usageError(["--keep-alive-ms", "0"]), "--keep-alive-ms")
      assert.include(yield* usageError(["--scenario", "rate-limit,lightning"]), `"lightning"`)
      assert.include(yield* usageError(["--loop"]), "--scenario")
      assert.include(yield* usageError(["--scenario", "missing.json"]), "cannot read")
      const notSteps = yield* withFile("bad.json", `{"loop": true}`, (file) => usageError(["--scenario", file]))
      assert.include(notSteps, "expected a list of steps")
      const unknown = yield* withFile("bad.json", `["meteor"]`, (file) => usageError(["--scenario", file]))
      assert.include(unknown, `"meteor"`)
      assert.include(yield* usageError(["--rate-limits", `{"m": {"requestsPerMinute": 0}}`]), "--rate-limits")
      assert.include(yield* usageError(["--rate-limits", `{"m": {"requestsPerMinute": 1.5}}`]), "--rate-limits")
      assert.include(yield* usageError(["--rate-limits", `{"m": 5}`]), "--rate-limits")
      assert.include(yield* usageError(["--rate-limits", `{"m": `]), "not JSON")
      assert.include(yield* usageError(["--rate-limits", "missing.json"]), "cannot read")
    })
  )
})

/** Runs the binary to its end (killed after `timeoutMs`); its output, stdout then stderr. */
const runBin = (args: ReadonlyArray<string>, timeoutMs: number) => {
  const child = spawnSync(process.execPath, [...nodeArgs, ...args], {
    encoding: "utf8",
    timeout: timeoutMs,
    killSignal: "SIGKILL"
  })
  return { code: child.status, output: `${child.stdout}${child.stderr}` }
}

/** Starts the binary and resolves with the URL of its banner (rejects after `timeoutMs`). */
const started = (child: ChildProcess, timeoutMs: number): Promise<string> =>
  new Promise((resolve, reject) => {
    let out = ""
    const timer = setTimeout(() => reject(new Error(`no banner within ${timeoutMs} ms:\n${out}`)), timeoutMs)
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk
      const url = /listening on (http:\/\/\S+)/.exec(out)
      if (url !== null) {
        clearTimeout(timer)
        resolve(url[1])
      }
    })
    child.on("exit", () => reject(new Error(`exited before its banner:\n${out}`)))
  })

const exited = (child: ChildProcess, timeoutMs: number): Promise<number | null> =>
  new Promise((resolve, reject) => {
    if (child.exitCode !== null) return resolve(child.exitCode)
    const timer = setTimeout(() => reject(new Error(`still running after ${timeoutMs} ms`)), timeoutMs)
    child.on("exit", (code) => {
      clearTimeout(timer)
      resolve(code)
    })
  })

describe("llm-chaos-server", () => {
  it("--help lists the options and every fault, and exits 0", () => {
    const { code, output } = runBin(["--help"], 15_000)
    assert.strictEqual(code, 0)
    for (const flag of [
      "--host",
      "--port",
      "--scenario",
      "--loop",
      "--stall-ms",
      "--slow-headers-ms",
      "--partial-chunks"
    ]) {
      assert.include(output, flag)
    }
    for (const fault of ChaosServer.faults) assert.include(output, fault)
  }, 30_000)

  it("a bad flag exits 2 with the reason and no stack trace", () => {
    const { code, output } = runBin(["--port", "eighty"], 15_000)
    assert.strictEqual(code, 2)
    assert.include(output, `--port: expected a whole number, got "eighty"`)
    assert.notInclude(output, "    at ")
  }, 30_000)

  it("a port in use exits 1 with one line saying so", async () => {
    const taken = net.createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    try {
      const port = (taken.address() as net.AddressInfo).port
      const { code, output } = runBin(["--port", String(port)], 15_000)
      assert.strictEqual(code, 1)
      assert.include(output, `cannot listen on 127.0.0.1:${port}`)
      assert.include(output, "EADDRINUSE")
      assert.notInclude(output, "    at ")
    } finally {
      taken.close()
    }
  }, 30_000)

  it("serves the scenario given by the flags on the port it was given, and stops on SIGTERM", async () => {
    const child = spawn(process.execPath, [...nodeArgs, "--port", "0", "--scenario", "rate-limit", "--loop"], {
      stdio: ["ignore", "pipe", "pipe"]
    })
    try {
      const url = await started(child, 15_000)
      for (let i = 0; i < 2; i++) {
        const response = await fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "gpt-5-mini", messages: [{ role: "user", content: "hi" }] }),
          signal: AbortSignal.timeout(10_000)
        })
        await response.text()
        assert.strictEqual(response.status, 429)
      }
      child.kill("SIGTERM")
      assert.strictEqual(await exited(child, 10_000), 130)
    } finally {
      child.kill("SIGKILL")
    }
  }, 45_000)
})

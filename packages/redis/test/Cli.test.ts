import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { NodeRedis } from "@effect/platform-node"
import { DurableQueue, LlmError, LlmProvider } from "@llm-resilience/core"
import { RedisQueue } from "@llm-resilience/redis"
import { Effect, Layer, ManagedRuntime, Option, Runtime, Stream } from "effect"
import { parse } from "../src/internal/dlqCli.ts"
import { startRedis } from "./redisServer.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const node = path.resolve(here, "../../../node_modules/.bin/node")
const bin = path.resolve(here, "../bin/llm-resilience.ts")

const cli = (args: ReadonlyArray<string>): Promise<{ code: number | null; out: string; err: string }> =>
  new Promise((resolve) => {
    const child = spawn(node, ["--conditions=@llm-resilience/source", bin, ...args], { stdio: "pipe" })
    let out = ""
    let err = ""
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d))
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d))
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
    child.once("exit", (code) => {
      clearTimeout(timer)
      resolve({ code, out, err })
    })
  })

const refusing = Layer.succeed(LlmProvider.LlmProvider, {
  name: "refusing",
  complete: (request) =>
    Effect.fail(
      request.messages[0]!.content === "bad"
        ? new LlmError.BadRequest({ message: "invalid messages", status: 400 })
        : new LlmError.Authentication({ message: "invalid api key", status: 401 })
    ),
  stream: () => Stream.die("not used")
})

describe("llm-resilience dlq", () => {
  it.effect("a bad command line is a UsageError (exit 2) that says what is wrong", () =>
    Effect.gen(function* () {
      const env = { REDIS_URL: "redis://10.0.0.1:6380" }
      const wrong = [
        [["dlq", "replay"], "dlq replay needs a ticket or --all (not both)"],
        [["dlq", "purge", "t", "--all"], "dlq purge needs a ticket or --all (not both)"],
        [["dlq", "show"], "dlq show needs one ticket"],
        [["dlq", "list", "t"], "dlq list takes no ticket"],
        [["dlq", "drop"], "unknown dlq command: drop"],
        [["queue", "list"], "unknown command: queue"],
        [["dlq", "list", "--port", "1"], "Unknown option '--port'"]
      ] as const
      for (const [argv, message] of wrong) {
        const error = yield* Effect.flip(parse(argv, env))
        assert.include(error.message, message)
        assert.strictEqual(error[Runtime.errorExitCode], 2)
      }
      const ok = yield* parse(["dlq", "replay", "--all"], env)
      assert.deepStrictEqual(ok, {
        _tag: "Dlq",
        action: "replay",
        ticket: undefined,
        redisUrl: "redis://10.0.0.1:6380",
        queue: "llm-later",
        prefix: "llmq:",
        json: false
      })
      assert.deepStrictEqual(yield* parse([], env), { _tag: "Help" })
    })
  )

  it("lists, shows, replays and purges dead jobs in Redis", { timeout: 90_000 }, async () => {
    const redis = await startRedis()
    const queueLayer = RedisQueue.layer({ name: "cli", prefix: "cli:" }).pipe(
      Layer.provide(NodeRedis.layer({ url: redis.url }))
    )
    const opts = ["--redis", redis.url, "--queue", "cli", "--prefix", "cli:"]
    try {
      const workers = ManagedRuntime.make(
        DurableQueue.layerWorkers().pipe(Layer.provideMerge(queueLayer), Layer.provide(refusing))
      )
      await workers.runPromise(
        Effect.gen(function* () {
          const queue = yield* DurableQueue.DurableQueue
          yield* queue.accept({ model: "m", messages: [{ role: "user", content: "bad" }] }, { key: "t-bad" })
          yield* queue.accept({ model: "m", messages: [{ role: "user", content: "auth" }] }, { key: "t-auth" })
          for (let i = 0; i < 500 && (yield* queue.stats).dead < 2; i++) yield* Effect.sleep("10 millis")
        })
      )
      await workers.dispose()

      // read-only commands together, then the two writes (on different jobs) together
      const [list, show] = await Promise.all([cli(["dlq", "list", ...opts]), cli(["dlq", "show", "t-bad", ...opts])])
      assert.strictEqual(list.code, 0, list.err)
      assert.match(list.out, /^TICKET\s+REASON\s+ATTEMPTS\s+DIED AT\s+LAST ERROR\n/)
      assert.match(list.out, /t-bad\s+BadRequest\s+1\s/)
      assert.match(list.out, /t-auth\s+Authentication\s+1\s/)

      assert.strictEqual(show.code, 0, show.err)
      const job = JSON.parse(show.out)
      assert.deepStrictEqual(
        [job.status, job.failures[0].tag, job.failures[0].error.status],
        ["dead", "BadRequest", 400]
      )

      const [replay, purge] = await Promise.all([
        cli(["dlq", "replay", "t-bad", ...opts]),
        cli(["dlq", "purge", "t-auth", ...opts])
      ])
      assert.strictEqual(replay.out.trim(), "replayed 1", replay.err)
      assert.strictEqual(purge.out.trim(), "purged 1", purge.err)

      const check = ManagedRuntime.make(queueLayer)
      const [replayed, purged] = await check.runPromise(
        Effect.gen(function* () {
          const queue = yield* DurableQueue.DurableQueue
          return [yield* queue.status("t-bad"), yield* queue.status("t-auth")] as const
        })
      )
      await check.dispose()
      assert.strictEqual(Option.getOrThrow(replayed).status, "queued")
      assert.isTrue(Option.isNone(purged))
    } finally {
      await redis.stop()
    }
  })
})

describe("llm-resilience gateway", () => {
  const gatewayBin = path.resolve(here, "../../gateway/bin/llm-resilience-gateway.ts")

  /**
   * Runs `file` as the system runs an installed command: its `#!` line's interpreter with the rest of the line
   * as one argument, then the file and `args` (Node 24 first on the PATH). Resolves with the child's
   * `process.execArgv`: the Node flags it really got.
   */
  const execArgvOf = (file: string, args: ReadonlyArray<string>): Promise<ReadonlyArray<string>> => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llm-cli-flags-"))
    const reporter = path.join(dir, "reporter.mjs")
    const out = path.join(dir, "execArgv.json")
    fs.writeFileSync(
      reporter,
      `import * as fs from "node:fs"\nprocess.on("exit", () => fs.writeFileSync(${JSON.stringify(out)}, JSON.stringify(process.execArgv)))\n`
    )
    const [interpreter, rest] = /^#!(\S+)\s+(.*)$/.exec(fs.readFileSync(file, "utf8").split("\n", 1)[0])!.slice(1)
    return new Promise<ReadonlyArray<string>>((resolve, reject) => {
      const child = spawn(interpreter, [rest, file, ...args], {
        stdio: ["ignore", "ignore", "pipe"],
        env: {
          ...process.env,
          PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH ?? ""}`,
          NODE_OPTIONS: `--conditions=@llm-resilience/source --import=${reporter}`
        }
      })
      let err = ""
      child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d))
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000)
      child.once("exit", (code) => {
        clearTimeout(timer)
        if (code !== 0 || !fs.existsSync(out)) reject(new Error(`${file} exited with ${code}\n${err}`))
        else resolve(JSON.parse(fs.readFileSync(out, "utf8")) as ReadonlyArray<string>)
      })
    }).finally(() => fs.rmSync(dir, { recursive: true, force: true }))
  }

  it("runs Node with the same flags as llm-resilience-gateway, from its #! line", { timeout: 90_000 }, async () => {
    const own = await execArgvOf(gatewayBin, ["--help"])
    assert.include(own, "--max-semi-space-size=16")
    assert.include(own, "--v8-pool-size=1")
    assert.deepStrictEqual(await execArgvOf(bin, ["gateway", "--help"]), own)
  })
})

/**
 * The crash test: 1,000 jobs on a real redis-server, answered by the chaos server with mixed faults (429 with
 * Retry-After, 503, 400, 401, stalls), drained by two worker processes of which one is killed with SIGKILL
 * at 10 random moments and restarted. At the end every job is done (one stored result) or dead with its
 * reason; none is lost; a fatal answer ends its job; no job made more than `maxAttempts` calls.
 */
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { NodeRedis } from "@effect/platform-node"
import { DurableQueue } from "@llm-resilience/core"
import { RedisQueue } from "@llm-resilience/redis"
import { ChaosServer } from "@llm-resilience/testing"
import { Effect, Layer, ManagedRuntime, Option, Scope } from "effect"
import { maxAttempts, queueOptions } from "./crash/options.ts"
import { bundle as bundleFile } from "./processes.ts"
import { startRedis } from "./redisServer.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "../../..")
const node = path.join(root, "node_modules", ".bin", "node")
const JOBS = 1_000
const KILLS = 10
const fatal = new Set(["bad-request", "authentication"])

/** A seeded generator (mulberry32), so the kill moments are random but reproducible. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Worker {
  readonly child: ChildProcess
  readonly exited: Promise<void>
}

const startWorker = (bundle: string, env: NodeJS.ProcessEnv): Promise<Worker> =>
  new Promise((resolve, reject) => {
    const child = spawn(node, [bundle], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const exited = new Promise<void>((r) => child.once("exit", () => r()))
    let err = ""
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`worker not ready within 30 s\n${err}`))
    }, 30_000)
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      if (d.includes("ready")) {
        clearTimeout(timer)
        resolve({ child, exited })
      }
    })
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`worker exited (${code}) before it was ready\n${err}`))
    })
  })

const kill = async (w: Worker) => {
  w.child.kill("SIGKILL")
  await Promise.race([w.exited, sleep(5_000)])
}

describe("RedisQueue crash test", () => {
  it("1,000 jobs, 10 SIGKILLs: every job done once or dead with its reason", { timeout: 120_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llm-crash-"))
    const [redis, bundle] = await Promise.all([
      startRedis(),
      bundleFile(path.join(here, "crash", "worker.ts"), dir, "worker")
    ])
    const scope = Scope.makeUnsafe()
    const workers: Array<Worker> = []
    const prefix = "crash:"
    const runtime = ManagedRuntime.make(
      RedisQueue.layer(queueOptions(prefix)).pipe(Layer.provide(NodeRedis.layer({ url: redis.url })))
    )
    try {
      const chaos = await Effect.runPromise(
        Scope.provide(
          ChaosServer.make({
            stallMs: 300,
            retryAfterSeconds: 1,
            loopScenario: true,
            // per 20 calls: 13 answers, 2 × 429 with Retry-After, 2 × 503, a stall, a 400 and a 401
            scenario: [
              "ok",
              "rate-limit",
              "ok",
              "service-unavailable",
              "ok",
              "ok",
              "bad-request",
              "ok",
              "stall-first-byte",
              "ok",
              "ok",
              "rate-limit",
              "ok",
              "authentication",
              "ok",
              "service-unavailable",
              "ok",
              "ok",
              "ok",
              "ok"
            ]
          }),
          scope
        )
      )
      const queue = await runtime.runPromise(DurableQueue.DurableQueue)
      const env = { REDIS_URL: redis.url, CHAOS_URL: chaos.url, QUEUE_PREFIX: prefix }
      await runtime.runPromise(
        Effect.forEach(
          Array.from({ length: JOBS }, (_, i) => i),
          (i) =>
            queue.accept(
              { model: `job-${i}`, messages: [{ role: "user", content: `question ${i}` }] },
              { key: `job-${i}` }
            ),
          { concurrency: 32, discard: true }
        )
      )
      // two worker processes; at each kill moment one of them is killed and a replacement starts at once
      // (the next kill hits the other process, so the kills do not wait for the restarts)
      // every started process is in `workers`, for the cleanup
      const spawnWorker = () => startWorker(bundle, env).then((w) => (workers.push(w), w))
      const slots = [spawnWorker(), spawnWorker()]
      const random = seeded(17)
      for (let k = 0; k < KILLS; k++) {
        await sleep(150 + Math.floor(random() * 600))
        const i = k % slots.length
        const victim = await slots[i]!
        await kill(victim)
        slots[i] = spawnWorker()
      }
      await Promise.all(slots)

      const deadline = Date.now() + 60_000
      let stats = await runtime.runPromise(queue.stats)
      while (stats.active > 0 && Date.now() < deadline) {
        await sleep(200)
        stats = await runtime.runPromise(queue.stats)
      }
      assert.strictEqual(stats.active, 0, "jobs still queued or running after 60 s")
      await Promise.all(workers.map(kill))

      const jobs = await runtime.runPromise(
        Effect.forEach(
          Array.from({ length: JOBS }, (_, i) => `job-${i}`),
          (t) => queue.status(t),
          { concurrency: 32 }
        )
      )
      const calls = new Map<string, Array<string>>()
      for (const r of await Effect.runPromise(chaos.requests)) {
        const list = calls.get(r.model ?? "") ?? []
        list.push(r.step)
        calls.set(r.model ?? "", list)
      }
      const dead = await runtime.runPromise(queue.deadLetters)
      let done = 0
      let fatalJobs = 0
      for (let i = 0; i < JOBS; i++) {
        const job = Option.getOrUndefined(jobs[i]!)
        assert.isDefined(job, `job-${i} was lost`)
        const steps = calls.get(`job-${i}`) ?? []
        assert.isAtMost(job!.attempts, maxAttempts, `job-${i} attempts`)
        assert.isAtMost(steps.length, maxAttempts, `job-${i} calls: ${steps.join(",")}`)
        // each attempt is recorded before its one call: more calls than attempts means two workers ran the job
        assert.isAtMost(steps.length, job!.attempts, `job-${i} calls without attempts: ${steps.join(",")}`)
        // a fatal answer ends its job, unless the worker died before recording it (each such loss is recorded
        // as a WorkerLost failure, after which the job runs on): every fatal answer but the last call needs one
        const lost = job!.failures.filter((f) => f.tag === "WorkerLost").length
        const fatalThenCalled = steps.slice(0, -1).filter((s) => fatal.has(s)).length
        assert.isAtMost(fatalThenCalled, lost, `job-${i} was called again after a fatal answer: ${steps.join(",")}`)
        if (job!.status === "done") {
          done++
          assert.isDefined(job!.response, `job-${i} is done without a response`)
        } else {
          assert.strictEqual(job!.status, "dead", `job-${i}: ${job!.status}`)
          if (fatal.has(steps.at(-1) ?? "")) {
            fatalJobs++
            // the fatal answer itself, or, when the worker died before recording it on the job's last attempt,
            // the loss that used up the attempts
            assert.include(
              lost > 0 ? ["BadRequest", "Authentication", "WorkerLost"] : ["BadRequest", "Authentication"],
              job!.reason
            )
            if (lost === 0) assert.strictEqual(job!.attempts, steps.length, `job-${i}: ${steps.join(",")}`)
          } else {
            assert.include(
              ["Overloaded", "ServerError", "RateLimited", "Timeout", "ConnectionError", "WorkerLost"],
              job!.reason
            )
            assert.strictEqual(job!.attempts, maxAttempts, `job-${i} died of ${job!.reason} early`)
          }
        }
      }
      assert.strictEqual(done + dead.length, JOBS)
      assert.isAbove(done, JOBS / 2)
      assert.isAbove(fatalJobs, 0)
      assert.isAbove(dead.length - fatalJobs, 0, "some retryable jobs exhaust their attempts")
    } finally {
      await Promise.all(workers.map(kill))
      await runtime.dispose()
      await Effect.runPromise(Scope.close(scope, { _tag: "Success", value: undefined } as never))
      await redis.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

/**
 * Shared state across instances on a real redis-server:
 * - breaker: two `Resilience` instances, each with its own Redis connection: A sees enough failures to open;
 *   B's next call is rejected without reaching its provider; probes across both respect the probe limit;
 * - spend: 4 processes hammering one conversation budget overshoot it by at most the estimates in flight
 *   (and, each with its own in-memory budget, by 3 budgets more);
 * - Redis killed mid-run: every call ends within the store timeout, under `local` and `reject`; after a
 *   restart on the same port the shared state is used again.
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { NodeRedis } from "@effect/platform-node"
import {
  AgentGuard,
  CircuitBreaker,
  LlmError,
  type LlmProvider,
  PriceTable,
  Resilience,
  RetryBudget,
  SpendGuard
} from "@llm-resilience/core"
import { RedisBreakerStore, RedisRetryBudgetStore, RedisSpendStore, RedisTurnStore } from "@llm-resilience/redis"
import { Clock, Deferred, Effect, Fiber, Layer, Logger, Metric } from "effect"
import { Redis } from "effect/persistence"
import { bundle as bundleFile } from "./processes.ts"
import { startRedis } from "./redisServer.ts"
import { prices, request, usage } from "./spend/fixture.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "../../..")
const node = path.join(root, "node_modules", ".bin", "node")

const quiet = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  self.pipe(Effect.provide(Logger.layer([])), Effect.provideService(Metric.MetricRegistry, new Map()))

/** A provider that fails with a 503 while `down.value`, answering "ok" otherwise; `gate` holds its answers. */
const provider = (name: string) => {
  const state = { calls: 0, down: false, gate: undefined as Deferred.Deferred<void> | undefined }
  const service: LlmProvider.LlmProvider["Service"] = {
    name,
    complete: (req) =>
      Effect.suspend(() => {
        state.calls++
        if (state.down) return Effect.fail(new LlmError.ServerError({ message: "down", status: 503, provider: name }))
        const answer = Effect.succeed({
          text: "ok",
          model: req.model,
          provider: name,
          finishReason: "stop" as const,
          usage: { inputTokens: 1, outputTokens: 1 }
        })
        return state.gate === undefined ? answer : Effect.andThen(Deferred.await(state.gate), answer)
      }),
    stream: () => Effect.die("not used") as never
  }
  return { state, service }
}

describe("shared state on Redis (acceptance)", () => {
  it.live(
    "breaker: A opens; B's next call is rejected without reaching the provider; probes respect the limit",
    () =>
      Effect.gen(function* () {
        const redis = yield* Effect.promise(() => startRedis())
        yield* Effect.addFinalizer(() => Effect.promise(() => redis.stop()))
        const options: CircuitBreaker.Options = {
          consecutiveFailures: 3,
          openDuration: "500 millis",
          halfOpenProbes: 2,
          probeTimeout: "10 seconds"
        }
        // each instance: its own Redis connection, breaker and Resilience over its own provider
        const instance = Effect.fnUntraced(function* (name: string) {
          const p = provider("openai")
          const connection = yield* Layer.build(NodeRedis.layer({ url: redis.url }))
          const store = yield* RedisBreakerStore.make({ prefix: "acc:" }).pipe(Effect.provide(connection))
          const breaker = yield* CircuitBreaker.make({ ...options, store })
          const { provider: llm } = yield* Resilience.make({ paths: { default: { retry: "none" } } }, [p.service]).pipe(
            Effect.provideService(CircuitBreaker.CircuitBreaker, breaker)
          )
          const call = Effect.exit(llm.complete({ model: "gpt-5.4-mini", messages: [{ role: "user", content: name }] }))
          return { p, call, breaker }
        })
        const a = yield* instance("a")
        const b = yield* instance("b")
        a.p.state.down = true
        for (let i = 0; i < 3; i++) yield* a.call
        assert.strictEqual(a.p.state.calls, 3)
        const rejected = yield* b.call
        assert.isTrue(rejected._tag === "Failure")
        assert.strictEqual(b.p.state.calls, 0) // B's provider was never reached
        assert.strictEqual((yield* b.breaker.status("openai/gpt-5.4-mini"))._tag, "Open")

        // half-open: 6 callers, 3 at each instance, at once; their answers held until all have tried
        yield* Effect.sleep("600 millis")
        a.p.state.down = false
        const gate = yield* Deferred.make<void>()
        a.p.state.gate = gate
        b.p.state.gate = gate
        const fibers = yield* Effect.all(
          [a, b, a, b, a, b].map((x) => Effect.forkChild(x.call, { startImmediately: true }))
        )
        yield* Effect.sleep("200 millis")
        assert.strictEqual(a.p.state.calls - 3 + b.p.state.calls, 2) // exactly the 2 probes reached a provider
        yield* Deferred.succeed(gate, undefined)
        const exits = yield* Effect.all(fibers.map(Fiber.join))
        assert.strictEqual(exits.filter((e) => e._tag === "Success").length, 2)
        // both probes succeeded: closed at both instances
        assert.strictEqual((yield* b.call)._tag, "Success")
        assert.strictEqual((yield* a.call)._tag, "Success")
      }).pipe(Effect.scoped, quiet),
    30_000
  )

  it.live(
    "spend: 4 processes hammering one conversation budget overshoot it by at most the estimates in flight",
    () =>
      Effect.gen(function* () {
        const redis = yield* Effect.promise(() => startRedis())
        yield* Effect.addFinalizer(() => Effect.promise(() => redis.stop()))
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llm-spend-"))
        yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
        const bundle = yield* Effect.promise(() => bundleFile(path.join(here, "spend", "worker.ts"), dir, "worker"))
        const LIMIT = 5
        const CONCURRENCY = 8
        const run = (store: "redis" | "memory", prefix: string) =>
          Effect.promise(() =>
            Promise.all(
              Array.from(
                { length: 4 },
                () =>
                  new Promise<{ ran: number; refused: number }>((resolve, reject) => {
                    const child = spawn(node, [bundle], {
                      env: {
                        ...process.env,
                        STORE: store,
                        REDIS_URL: redis.url,
                        PREFIX: prefix,
                        LIMIT_USD: String(LIMIT),
                        CALLS: "60",
                        CONCURRENCY: String(CONCURRENCY)
                      },
                      stdio: ["ignore", "pipe", "pipe"]
                    })
                    let out = ""
                    let err = ""
                    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d))
                    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d))
                    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000)
                    child.once("exit", (code) => {
                      clearTimeout(timer)
                      if (code === 0) resolve(JSON.parse(out.trim().split("\n").at(-1)!))
                      else reject(new Error(`worker exited ${code}\n${err}`))
                    })
                  })
              )
            )
          )
        const cost = PriceTable.cost(prices.m, usage)
        const shared = yield* run("redis", "spend:")
        const spent = yield* Effect.flatMap(RedisSpendStore.make({ prefix: "spend:" }), (store) =>
          Effect.flatMap(SpendGuard.make({ prices, store }), (g) => g.spent("conversation:shared-conversation"))
        ).pipe(Effect.provide(NodeRedis.layer({ url: redis.url })))
        const ran = shared.reduce((n, r) => n + r.ran, 0)
        assert.closeTo(spent, ran * cost, 1e-6)
        const estimate = cost // an upper bound of each call's estimate (its input is estimated at under 10 tokens)
        const inFlight = 4 * CONCURRENCY
        assert.isAtLeast(spent, LIMIT)
        assert.isAtMost(spent, LIMIT + inFlight * estimate)
        // it is in fact much tighter: a call is let in only while spend plus reservations is under the limit
        assert.isAtMost(spent, LIMIT + 2 * cost)
        assert.isAbove(
          shared.reduce((n, r) => n + r.refused, 0),
          100
        )
        // the same run, each process with its own in-memory budget: every one spends up to the limit
        const alone = yield* run("memory", "")
        assert.isAtLeast(alone.reduce((n, r) => n + r.ran, 0) * cost, 4 * LIMIT)
      }).pipe(Effect.scoped, quiet),
    120_000
  )

  it.live(
    "Redis killed mid-run: no call waits longer than the store timeout; local keeps serving, reject refuses; shared again after a restart",
    () =>
      Effect.gen(function* () {
        const redis = yield* Effect.promise(() => startRedis())
        yield* Effect.addFinalizer(() => Effect.promise(() => redis.stop()))
        const TIMEOUT = 300
        const connection = yield* Layer.build(NodeRedis.layer({ url: redis.url, disableOfflineQueue: true }))
        const stages = (onFailure: "local" | "reject") =>
          Effect.gen(function* () {
            const o = { prefix: `kill-${onFailure}:`, timeout: `${TIMEOUT} millis`, onFailure } as const
            return {
              breaker: yield* CircuitBreaker.make({ store: yield* RedisBreakerStore.make(o) }),
              budget: yield* RetryBudget.make({ store: yield* RedisRetryBudgetStore.make(o) }),
              spend: yield* SpendGuard.make({
                prices,
                budgets: [{ scope: "conversation", limitUsd: 100 }],
                store: yield* RedisSpendStore.make(o)
              }),
              agent: yield* AgentGuard.make({ maxTurns: 1_000, store: yield* RedisTurnStore.make(o) })
            }
          })
        const one = (s: Effect.Success<ReturnType<typeof stages>>) =>
          Effect.gen(function* () {
            const answer = Effect.succeed({
              text: "x",
              model: "m",
              provider: "p",
              finishReason: "stop" as const,
              usage
            })
            const start = yield* Clock.currentTimeMillis
            const exit = yield* Effect.exit(
              answer.pipe(
                s.spend.protect("p/m", request),
                s.breaker.protect("p/m"),
                Effect.tap(() => s.budget.deposit("p/m")),
                Effect.andThen(s.budget.withdraw("p/m")),
                Effect.tap(() => s.agent.turn({ ...request, messages: [{ role: "user", content: String(start) }] }))
              )
            )
            return { exit, ms: (yield* Clock.currentTimeMillis) - start }
          })
        const local = yield* stages("local").pipe(Effect.provide(connection))
        const reject = yield* stages("reject").pipe(Effect.provide(connection))
        for (const s of [local, reject]) assert.strictEqual((yield* one(s)).exit._tag, "Success")

        yield* Effect.promise(() => redis.stop()) // SIGKILL
        for (let i = 0; i < 5; i++) {
          const l = yield* one(local)
          const r = yield* one(reject)
          // each call makes 5 store calls in a row, each bounded by the timeout
          assert.isAtMost(l.ms, 5 * TIMEOUT + 500)
          assert.isAtMost(r.ms, 5 * TIMEOUT + 500)
          assert.strictEqual(l.exit._tag, "Success") // local: this instance's share serves the call
          assert.strictEqual(r.exit._tag, "Failure") // reject: refused, typed
        }

        // the same port again: the stores reconnect and share once more
        const again = spawn("redis-server", ["--port", String(redis.port), "--bind", "127.0.0.1", "--save", ""], {
          stdio: "ignore"
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => again.kill("SIGKILL")))
        let back = false
        for (let i = 0; i < 50 && !back; i++) {
          yield* Effect.sleep("200 millis")
          back = (yield* one(reject)).exit._tag === "Success"
        }
        assert.isTrue(back)
        const keys = yield* Effect.flatMap(Redis.Redis, (r) => r.send<Array<string>>("KEYS", "kill-reject:*")).pipe(
          Effect.provide(connection)
        )
        assert.isAbove(keys.length, 0) // written to Redis again
      }).pipe(Effect.scoped, quiet),
    60_000
  )
})

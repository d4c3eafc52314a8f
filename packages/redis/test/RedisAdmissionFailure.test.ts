/**
 * The Redis admission store when Redis fails: every call bounded, the local share (or a refusal) while it
 * is down, shared admission again once it is back; and the server clock and key expiry when it is up.
 */
import { afterEach, assert, describe, it } from "@effect/vitest"
import { NodeRedis } from "@effect/platform-node"
import { Clock, Effect, Layer, Metric } from "effect"
import { Redis } from "effect/persistence"
import type { AdmissionStore } from "@llm-resilience/core"
import { RedisAdmissionStore, RedisStore } from "@llm-resilience/redis"
import { startRedis, type RedisServer } from "./redisServer.ts"

const servers: Array<RedisServer> = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()))
})

const start = (port?: number) =>
  Effect.promise(async () => {
    const s = await startRedis(port)
    servers.push(s)
    return s
  })

const limits = (requests: number): AdmissionStore.Limits => ({
  windowMs: 60_000,
  requests,
  tokens: Infinity,
  inputTokens: Infinity,
  outputTokens: Infinity
})
const one: AdmissionStore.Cost = { requests: 1, tokens: 0, inputTokens: 0, outputTokens: 0 }

const run = <A>(a: A | Effect.Effect<A>): Effect.Effect<A> => (Effect.isEffect(a) ? a : Effect.succeed(a))

/** Runs `effect` and says how long it took (real time). */
const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const t0 = yield* Clock.currentTimeMillis
    const a = yield* effect
    return [a, (yield* Clock.currentTimeMillis) - t0] as const
  })

const withStore = (server: RedisServer, options: RedisAdmissionStore.Options) =>
  Effect.flatMap(Layer.build(NodeRedis.layer({ url: server.url, disableOfflineQueue: true })), (ctx) =>
    Effect.map(RedisAdmissionStore.make(options).pipe(Effect.provide(ctx)), (store) => ({
      store,
      redis: Redis.Redis.pipe(Effect.provide(ctx))
    }))
  )

const localGauge = Metric.value(Metric.withAttributes(RedisStore.metrics.local, { store: "admission" }))

describe("RedisAdmissionStore when Redis fails", { timeout: 30_000 }, () => {
  it.live("local: each instance admits its share, bounded; shared admission resumes when Redis returns", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const server = yield* start()
        const { store, redis } = yield* withStore(server, {
          prefix: "f:",
          timeout: 200,
          retryInterval: 100,
          onFailure: "local",
          instances: 4
        })
        const l = limits(8)
        const first = yield* run(store.tryReserve("p/m", l, one, 0))
        assert.strictEqual(first._tag, "Reserved")
        yield* Effect.promise(() => server.stop())

        // Redis is gone: the share is 8 / 4 = 2, of which the reservation made in Redis before takes one; every
        // call answers within the timeout (plus scheduling)
        const decisions: Array<string> = []
        for (let i = 0; i < 3; i++) {
          const [d, ms] = yield* timed(run(store.tryReserve("p/m", l, one, 0)))
          decisions.push(d._tag)
          assert.isBelow(ms, 1_000)
        }
        assert.deepStrictEqual(decisions, ["Reserved", "Wait", "Wait"])
        assert.strictEqual((yield* localGauge).value, 1)
        // settling the reservation Redis holds is bounded too, and does not fail
        if (first._tag === "Reserved") {
          const [, ms] = yield* timed(run(store.settle(first.reservation, one, [], 0)))
          assert.isBelow(ms, 1_000)
        }

        // Redis is back (empty): once the client has reconnected, reservations are shared again
        yield* start(server.port)
        let shared = false
        for (let i = 0; i < 100 && !shared; i++) {
          yield* Effect.sleep("100 millis")
          yield* run(store.tryReserve("p/other", l, one, 0))
          shared = (yield* localGauge).value === 0
        }
        assert.isTrue(shared)
        const r = yield* redis
        const stored = yield* r.send<string | null>("GET", "f:adm:k:p/other")
        assert.isNotNull(stored)
        // the shared limit holds again: 8 in Redis, whatever the local share was
        let reserved = 0
        for (let i = 0; i < 10; i++) {
          if ((yield* run(store.tryReserve("p/full", l, one, 0)))._tag === "Reserved") reserved++
        }
        assert.strictEqual(reserved, 8)
      })
    )
  )

  it.live("reject: calls that need a reservation are refused at once while Redis is down", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const server = yield* start()
        const { store } = yield* withStore(server, { prefix: "r:", timeout: 200, onFailure: "reject" })
        yield* Effect.promise(() => server.stop())
        const [d, ms] = yield* timed(run(store.tryReserve("p/m", limits(8), one, 0)))
        assert.strictEqual(d._tag, "Unavailable")
        assert.isBelow(ms, 1_000)
      })
    )
  )

  it.live("on the server clock: times come back in the caller's clock; every key expires", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const server = yield* start()
        const { store, redis } = yield* withStore(server, { prefix: "s:" })
        const l = { ...limits(1), groups: [{ name: "region", ...limits(5) }] }
        // the caller's clock is far from Redis': the window is Redis', the answer in the caller's time
        assert.strictEqual((yield* run(store.tryReserve("p/m", l, one, 1_000)))._tag, "Reserved")
        const d = yield* run(store.tryReserve("p/m", l, one, 1_000))
        assert.strictEqual(d._tag, "Wait")
        if (d._tag === "Wait") {
          assert.isAtLeast(d.availableAtMs, 1_000 + 59_000)
          assert.isAtMost(d.availableAtMs, 1_000 + 60_001)
        }
        const r = yield* redis
        for (const key of ["s:adm:k:p/m", "s:adm:g:region"]) {
          const ttl = yield* r.send<number>("PTTL", key)
          assert.isAbove(ttl, 0)
          assert.isAtMost(ttl, 120_000)
        }
      })
    )
  )
})

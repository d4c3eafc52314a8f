import { afterAll, beforeAll, describe } from "@effect/vitest"
import { NodeRedis } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { RedisAdmissionStore } from "@llm-resilience/redis"
import { admissionStoreSuite } from "../../core/test/admissionStoreSuite.ts"
import { startRedis, type RedisServer } from "./redisServer.ts"

let server: RedisServer | undefined
beforeAll(async () => {
  server = await startRedis()
}, 20_000)
afterAll(() => server?.stop())

let seq = 0

describe("RedisAdmissionStore (conformance, caller clock)", { timeout: 30_000 }, () => {
  // a failing Redis call must fail the test, not fall back to the local store
  admissionStoreSuite(() =>
    Effect.flatMap(Layer.build(NodeRedis.layer({ url: server!.url })), (redis) =>
      RedisAdmissionStore.make({
        prefix: `c${++seq}:`,
        clock: "caller",
        timeout: 5_000,
        onFailure: "reject"
      }).pipe(Effect.provide(redis))
    )
  )
})

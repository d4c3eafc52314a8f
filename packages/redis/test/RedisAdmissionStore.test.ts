import { describe } from "@effect/vitest"
import { NodeRedis } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { RedisAdmissionStore } from "@llm-resilience/redis"
import { admissionStoreSuite } from "../../core/test/admissionStoreSuite.ts"
import { useRedisServer } from "./useRedis.ts"

const redisServer = useRedisServer()

let seq = 0

describe("RedisAdmissionStore (conformance, caller clock)", { timeout: 30_000 }, () => {
  // a failing Redis call must fail the test, not fall back to the local store
  admissionStoreSuite(() =>
    Effect.flatMap(Layer.build(NodeRedis.layer({ url: redisServer().url })), (redis) =>
      RedisAdmissionStore.make({
        prefix: `c${++seq}:`,
        clock: "caller",
        timeout: 5_000,
        onFailure: "reject"
      }).pipe(Effect.provide(redis))
    )
  )
})

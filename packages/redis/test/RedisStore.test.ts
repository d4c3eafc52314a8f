/**
 * One `store` entry, one layer: two `Resilience` instances built from the same configuration share their
 * admission limits, agent turns and breaker through Redis, and every key they write expires.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Redis } from "effect/persistence"
import { NodeRedis } from "@effect/platform-node"
import { type LlmRequest, Resilience } from "@llm-resilience/core"
import { RedisStore } from "@llm-resilience/redis"
import { FakeProvider } from "@llm-resilience/testing"
import { useRedisServer } from "./useRedis.ts"

const redisServer = useRedisServer()

const request = (conversationId: string, model = "m"): LlmRequest.LlmRequest => ({
  model,
  messages: [{ role: "user", content: `hello ${conversationId}` }],
  metadata: { conversationId }
})

/** One instance: its own Redis client and its own fake provider, from the shared configuration. */
const instance = (config: Resilience.Config) =>
  Effect.gen(function* () {
    const fake = yield* FakeProvider.make({ name: "fake" })
    const ctx = yield* Layer.build(RedisStore.layer(config))
    const { provider } = yield* Resilience.make(config, [fake.provider]).pipe(Effect.provide(ctx))
    return { provider, fake }
  })

describe("RedisStore.layer", { timeout: 30_000 }, () => {
  it.live("two instances of one configuration share limits and turns; every key expires", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const config: Resilience.Config = {
          store: { url: redisServer().url, prefix: "one:", expectedInstances: 2 },
          models: { "fake/m": { requestsPerMinute: 3 } },
          admission: { maxWaitMs: 0 },
          agent: { maxTurns: 2 },
          paths: { default: { retry: "none" } }
        }
        const a = yield* instance(config)
        const b = yield* instance(config)
        // turns: the conversation's count is shared, the third turn is refused on either instance
        yield* a.provider.complete(request("c1"))
        yield* b.provider.complete(request("c1"))
        const turn = yield* Effect.flip(a.provider.complete(request("c1")))
        assert.strictEqual(turn._tag, "TurnLimitExceeded")
        // admission: 3 requests per window across both instances (2 taken above, 1 left)
        yield* b.provider.complete(request("c2"))
        const limited = yield* Effect.flip(a.provider.complete(request("c3")))
        assert.strictEqual(limited._tag, "AdmissionRejected")
        const redis = yield* Effect.flatMap(Layer.build(NodeRedis.layer({ url: redisServer().url })), (ctx) =>
          Effect.provide(Redis.Redis, ctx)
        )
        const keys = yield* redis.send<Array<string>>("KEYS", "one:*")
        assert.isTrue(keys.some((k) => k.startsWith("one:adm:k:fake/m")))
        assert.isAbove(keys.length, 1) // the turn store's keys too
        for (const key of keys) assert.isAbove(yield* redis.send<number>("PTTL", key), 0, `${key} expires`)
      })
    )
  )
})

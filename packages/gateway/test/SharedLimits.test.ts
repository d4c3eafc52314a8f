import { assert, describe, it } from "@effect/vitest"
import { ChaosServer } from "@llm-resilience/testing"
import { Context, Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import OpenAI from "openai"
import { startRedis } from "../../redis/test/redisServer.ts"
import { Gateway, type GatewayConfig } from "../src/index.ts"
import { upstreamKey } from "./support/gateway.ts"

const key = "gw-shared-key"

const configOf = (
  chaos: ChaosServer.ChaosServer["Service"],
  store: GatewayConfig.GatewayConfig["store"]
): GatewayConfig.GatewayConfig => ({
  server: { port: 0 },
  providers: { chaos: { kind: "openai", baseUrl: chaos.openAiBaseUrl(), apiKeyEnv: "K" } },
  models: { "chaos/limited": { requestsPerMinute: 4 }, "chaos/free": {} },
  // no wait in the admission queue: a call over the limit is refused at once
  routes: { chat: { retry: "none", maxWaitMs: 0, fallback: [{ provider: "chaos", model: "limited" }] } },
  keys: [{ sha256: Gateway.hashKey(key), tenant: "team", requestsPerMinute: 10 }],
  ...(store === undefined ? {} : { store })
})

/** Starts one gateway instance in the scope; an OpenAI client pointed at it. */
const instance = (config: GatewayConfig.GatewayConfig) =>
  Effect.map(Layer.build(Gateway.layer(config, { env: { K: upstreamKey } })), (context) => {
    const url = HttpServer.formatAddress(Context.get(context, HttpServer.HttpServer).address)
    return new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0 })
  })

/** Six calls alternating between two instances, one after the other: each one's status and code. */
const alternate = (a: OpenAI, b: OpenAI, model: string) =>
  Effect.promise(async () => {
    const outcomes: Array<string> = []
    for (let i = 0; i < 6; i++) {
      outcomes.push(
        await (i % 2 === 0 ? a : b).chat.completions
          .create({ model, messages: [{ role: "user", content: "hi" }] })
          .then(
            () => "200",
            (e: InstanceType<typeof OpenAI.APIError>) => `${e.status} ${e.code}`
          )
      )
    }
    return outcomes
  })

const count = (outcomes: ReadonlyArray<string>) => {
  const counts: Record<string, number> = {}
  for (const o of outcomes) counts[o] = (counts[o] ?? 0) + 1
  return counts
}

describe("Gateway instances sharing one Redis", () => {
  it.live(
    "two gateway instances sharing one Redis enforce limits jointly",
    () =>
      Effect.gen(function* () {
        const redis = yield* Effect.acquireRelease(
          Effect.promise(() => startRedis()),
          (r) => Effect.promise(() => r.stop())
        )
        const chaos = yield* ChaosServer.make()

        // apart (memory), each instance allows the model's 4 calls a minute: all six pass
        const apartA = yield* instance(configOf(chaos, undefined))
        const apartB = yield* instance(configOf(chaos, undefined))
        assert.deepStrictEqual(count(yield* alternate(apartA, apartB, "chat")), { "200": 6 })

        // sharing one Redis, the two enforce one limit of 4 calls for the model ...
        const store = { url: redis.url, prefix: "gw-test:" }
        const a = yield* instance(configOf(chaos, store))
        const b = yield* instance(configOf(chaos, store))
        assert.deepStrictEqual(count(yield* alternate(a, b, "chat")), { "200": 4, "429 admission_rejected": 2 })
        // ... and one limit of 10 requests a minute for the tenant (6 already counted above)
        assert.deepStrictEqual(count(yield* alternate(a, b, "free")), { "200": 4, "429 tenant_rate_limited": 2 })
      }),
    60_000
  )
})

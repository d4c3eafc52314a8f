/**
 * `x-llm-priority` orders the requests that wait in admission: an interactive request sent after
 * background ones is served before them.
 */
import { assert, describe, it } from "@effect/vitest"
import type { ChaosServer } from "@llm-resilience/testing"
import { Effect } from "effect"
import OpenAI from "openai"
import { Gateway, type GatewayConfig } from "../src/index.ts"
import { clientKey, startGateway } from "./support/gateway.ts"

/** One model that serves one call at a time. */
const config = (chaos: ChaosServer.ChaosServer["Service"]): GatewayConfig.GatewayConfig => ({
  server: { port: 0, shutdownGraceMs: 2_000 },
  providers: { chaos: { kind: "openai", baseUrl: chaos.openAiBaseUrl(), apiKeyEnv: "CHAOS_KEY" } },
  models: { "chaos/gpt-one": { maxConcurrency: 1 } },
  routes: { one: { retry: "none", maxWaitMs: 10_000, fallback: [{ provider: "chaos", model: "gpt-one" }] } },
  keys: [{ sha256: Gateway.hashKey(clientKey), tenant: "team-a" }]
})

/** Polls `check` every 20 ms for at most `ms`. */
const eventually = (check: Effect.Effect<boolean>, ms = 5_000) =>
  Effect.gen(function* () {
    for (let waited = 0; waited < ms; waited += 20) {
      if (yield* check) return
      yield* Effect.sleep(20)
    }
    assert.fail(`not within ${ms} ms`)
  })

describe("x-llm-priority", () => {
  it.live("an interactive request waiting in admission is served before background ones sent earlier", () =>
    Effect.gen(function* () {
      // the first call holds the model's one slot for 1.5 s, the others answer at once
      const { url, chaos } = yield* startGateway(config, {
        scenario: ["slow-headers", "ok", "ok", "ok"],
        slowHeadersMs: 1_500
      })
      const client = new OpenAI({ apiKey: clientKey, baseURL: `${url}/v1`, maxRetries: 0, timeout: 10_000 })
      const served: Array<string> = []
      const send = (name: string, priority: "interactive" | "background") =>
        client.chat.completions
          .create(
            { model: "one", messages: [{ role: "user", content: name }] },
            { headers: { "x-llm-priority": priority } }
          )
          .then(() => void served.push(name))

      const first = send("first", "background")
      yield* eventually(Effect.map(chaos.requests, (r) => r.length === 1))
      const background = [send("background-1", "background"), send("background-2", "background")]
      // the two wait for the slot (nothing reaches the upstream) before the interactive one comes
      yield* Effect.sleep(300)
      assert.strictEqual((yield* chaos.requests).length, 1)
      const interactive = send("interactive", "interactive")
      yield* Effect.promise(() => Promise.all([first, ...background, interactive]))
      assert.deepStrictEqual(served, ["first", "interactive", "background-1", "background-2"])
    }).pipe(Effect.scoped)
  )
})

import Anthropic from "@anthropic-ai/sdk"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import OpenAI from "openai"
import { Gateway } from "../src/index.ts"
import { baseConfig, clientKey, startGateway, text } from "./support/gateway.ts"

const user = [{ role: "user" as const, content: "Say hello" }]

/** The status and code of a failed call, or 200. */
const outcome = (call: Promise<unknown>) =>
  call.then(
    () => 200,
    (e: InstanceType<typeof OpenAI.APIError>) => `${e.status} ${e.code ?? e.type}`
  )

describe("Gateway per-request overrides", () => {
  it.live("fallbacks from the body or a header; a route from x-llm-path", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway(baseConfig)
      const openai = new OpenAI({ apiKey: clientKey, baseURL: `${url}/v1`, maxRetries: 0 })
      const anthropic = new Anthropic({ apiKey: clientKey, baseURL: url, maxRetries: 0 })

      // `solo` only has the overloaded provider: alone it fails
      assert.strictEqual(
        yield* Effect.promise(() => outcome(openai.chat.completions.create({ model: "solo", messages: user }))),
        "503 server_is_overloaded"
      )
      const { data, response } = yield* Effect.promise(() =>
        openai.chat.completions
          .create({ model: "solo", messages: user, ...{ fallbacks: ["claude-haiku"] } })
          .withResponse()
      )
      assert.strictEqual(data.choices[0].message.content, text)
      assert.strictEqual(data.model, "claude-haiku")
      assert.strictEqual(response.headers.get("x-llm-model"), "claude-haiku")
      const report = JSON.parse(response.headers.get("x-llm-report")!)
      assert.deepStrictEqual(
        report.attempts.map((a: { step: string }) => a.step),
        ["broken/gpt-large", "claude/claude-haiku"]
      )

      const streamed = yield* Effect.promise(() =>
        anthropic.messages
          .stream(
            { model: "solo", max_tokens: 50, messages: user },
            { headers: { "x-llm-fallbacks": "nope-first-is-fine, gpt-small" } }
          )
          .finalMessage()
          .then(
            (m) => m.model,
            (e: InstanceType<typeof Anthropic.APIError>) => `${e.status}`
          )
      )
      // an unknown name anywhere in the list is the client's mistake: 404 before any call
      assert.strictEqual(streamed, "404")
      const viaHeader = yield* Effect.promise(() =>
        anthropic.messages
          .stream({ model: "solo", max_tokens: 50, messages: user }, { headers: { "x-llm-fallbacks": "gpt-small" } })
          .finalMessage()
      )
      assert.strictEqual(viaHeader.model, "gpt-small")

      // x-llm-path picks the route whatever the body's model says
      const routed = yield* Effect.promise(() =>
        openai.chat.completions.create({ model: "gpt-large", messages: user }, { headers: { "x-llm-path": "chat" } })
      )
      assert.strictEqual(routed.model, "gpt-small")
      assert.strictEqual(
        yield* Effect.promise(() =>
          outcome(
            openai.chat.completions.create(
              { model: "chat", messages: user },
              { headers: { "x-llm-priority": "urgent" } }
            )
          )
        ),
        "400 invalid_request_error"
      )
    })
  )

  it.live("conversation id and tenant from headers feed the agent guard and tenant budgets", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway((chaos) => ({
        ...baseConfig(chaos),
        agent: { maxTurns: 2 },
        prices: { "gpt-small": { inputPerMillion: 1_000_000, outputPerMillion: 1_000_000 } },
        budgets: { budgets: [{ scope: "tenant", limitUsd: 1 }] },
        // a service key: it names the tenant of each request itself
        keys: [{ sha256: Gateway.hashKey("gw-service") }]
      }))
      const openai = new OpenAI({ apiKey: "gw-service", baseURL: `${url}/v1`, maxRetries: 0 })
      let turn = 0
      // each turn says something new: the same request repeated would be a loop, not a turn limit
      const ask = (headers: Record<string, string>) =>
        Effect.promise(() =>
          outcome(
            openai.chat.completions.create(
              { model: "gpt-small", messages: [{ role: "user", content: `turn ${++turn}` }] },
              { headers }
            )
          )
        )
      const turns = [
        yield* ask({ "x-llm-conversation-id": "c-1", "x-llm-tenant": "t-1" }),
        yield* ask({ "x-llm-conversation-id": "c-1", "x-llm-tenant": "t-2" }),
        yield* ask({ "x-llm-conversation-id": "c-1", "x-llm-tenant": "t-3" })
      ]
      assert.deepStrictEqual(turns, [200, 200, "429 turn_limit_exceeded"])
      // t-1 spent past its budget on its first call; t-4 has not
      assert.strictEqual(yield* ask({ "x-llm-tenant": "t-1" }), "429 budget_exceeded")
      assert.strictEqual(yield* ask({ "x-llm-tenant": "t-4" }), 200)
    })
  )
})

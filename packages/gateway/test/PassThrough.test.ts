import Anthropic from "@anthropic-ai/sdk"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import OpenAI from "openai"
import { startGateway, clientKey } from "./support/gateway.ts"

/** An upstream that records every body and answers with fields the toolkit does not read. */
const captureUpstream = Effect.acquireRelease(
  Effect.promise(
    () =>
      new Promise<{
        readonly url: string
        readonly bodies: Array<Record<string, unknown>>
        readonly server: Http.Server
      }>((resolve) => {
        const bodies: Array<Record<string, unknown>> = []
        const server = Http.createServer((req, res) => {
          let raw = ""
          req.on("data", (chunk: Buffer) => (raw += chunk.toString()))
          req.on("end", () => {
            const body = JSON.parse(raw) as Record<string, unknown>
            bodies.push(body)
            res.setHeader("content-type", "application/json")
            res.end(
              JSON.stringify(
                req.url!.endsWith("/chat/completions")
                  ? {
                      id: "chatcmpl-up",
                      object: "chat.completion",
                      created: 1,
                      model: body.model,
                      x_upstream_extra: { kept: true },
                      choices: [
                        {
                          index: 0,
                          message: {
                            role: "assistant",
                            content: null,
                            tool_calls: [
                              { id: "call_1", type: "function", function: { name: "lookup", arguments: '{"q":"x"}' } }
                            ]
                          },
                          finish_reason: "tool_calls"
                        }
                      ],
                      usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 }
                    }
                  : {
                      id: "msg_up",
                      type: "message",
                      role: "assistant",
                      model: body.model,
                      x_upstream_extra: { kept: true },
                      content: [{ type: "tool_use", id: "toolu_1", name: "lookup", input: { q: "x" } }],
                      stop_reason: "tool_use",
                      stop_sequence: null,
                      usage: { input_tokens: 5, output_tokens: 3 }
                    }
              )
            )
          })
        })
        server.listen(0, "127.0.0.1", () =>
          resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bodies, server })
        )
      })
  ),
  ({ server }) => Effect.promise(() => new Promise<void>((resolve) => server.close(() => resolve())))
)

const tools = [
  {
    type: "function" as const,
    function: { name: "lookup", parameters: { type: "object", properties: { q: { type: "string" } } } }
  }
]

describe("Gateway pass-through", () => {
  it.live("request fields it does not interpret reach the provider unchanged; unknown response fields come back", () =>
    Effect.gen(function* () {
      const upstream = yield* captureUpstream
      const { url } = yield* startGateway(() => ({
        server: { port: 0 },
        providers: {
          up: { kind: "openai", baseUrl: `${upstream.url}/v1`, apiKeyEnv: "CHAOS_KEY" },
          upa: { kind: "anthropic", baseUrl: upstream.url, apiKeyEnv: "CHAOS_KEY" }
        },
        models: { "up/gpt-tools": {}, "upa/claude-tools": {} },
        keys: []
      }))
      const openai = new OpenAI({ apiKey: clientKey, baseURL: `${url}/v1`, maxRetries: 0 })
      const messages = [
        { role: "user" as const, content: "look x up" },
        {
          role: "assistant" as const,
          content: null,
          tool_calls: [{ id: "call_0", type: "function" as const, function: { name: "lookup", arguments: "{}" } }]
        },
        { role: "tool" as const, tool_call_id: "call_0", content: "nothing" }
      ]
      const completion = yield* Effect.promise(() =>
        openai.chat.completions.create({
          model: "gpt-tools",
          messages,
          tools,
          top_p: 0.5,
          user: "u-1",
          max_tokens: 50,
          // a field no SDK knows: the gateway must pass it through
          ...{ x_custom: { a: 1 } }
        })
      )
      const sent = upstream.bodies[0]
      assert.deepStrictEqual(sent.tools, tools)
      assert.deepStrictEqual(sent.messages, messages)
      assert.strictEqual(sent.top_p, 0.5)
      assert.strictEqual(sent.user, "u-1")
      assert.deepStrictEqual(sent.x_custom, { a: 1 })
      assert.strictEqual(sent.max_completion_tokens, 50)
      assert.isFalse("max_tokens" in sent)
      assert.strictEqual(completion.choices[0].message.tool_calls?.[0].id, "call_1")
      assert.deepStrictEqual((completion as unknown as Record<string, unknown>).x_upstream_extra, { kept: true })

      const anthropic = new Anthropic({ apiKey: clientKey, baseURL: url, maxRetries: 0 })
      const message = yield* Effect.promise(() =>
        anthropic.messages.create({
          model: "claude-tools",
          max_tokens: 50,
          system: [{ type: "text", text: "be brief", cache_control: { type: "ephemeral" } }],
          messages: [{ role: "user", content: "look x up" }],
          tools: [{ name: "lookup", input_schema: { type: "object" } }],
          metadata: { user_id: "u-1" }
        })
      )
      const sentA = upstream.bodies[1]
      assert.deepStrictEqual(sentA.system, [{ type: "text", text: "be brief", cache_control: { type: "ephemeral" } }])
      assert.deepStrictEqual(sentA.tools, [{ name: "lookup", input_schema: { type: "object" } }])
      assert.deepStrictEqual(sentA.metadata, { user_id: "u-1" })
      assert.deepStrictEqual(message.content as unknown, [
        { type: "tool_use", id: "toolu_1", name: "lookup", input: { q: "x" } }
      ])
      assert.deepStrictEqual((message as unknown as Record<string, unknown>).x_upstream_extra, { kept: true })
    })
  )
})

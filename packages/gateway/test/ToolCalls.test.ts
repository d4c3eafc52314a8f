/**
 * Streamed tool calls through the gateway, assembled by the official clients' stream helpers: the chaos
 * server answers a request that forces a tool with a call whose arguments come in pieces.
 */
import Anthropic from "@anthropic-ai/sdk"
import { assert, describe, it } from "@effect/vitest"
import type { ChaosServer } from "@llm-resilience/testing"
import { Effect } from "effect"
import OpenAI from "openai"
import type { GatewayConfig } from "../src/index.ts"
import { baseConfig, clientKey, startGateway, text } from "./support/gateway.ts"

const openAiClient = (url: string) =>
  new OpenAI({ apiKey: clientKey, baseURL: `${url}/v1`, maxRetries: 0, timeout: 10_000 })
const anthropicClient = (url: string) =>
  new Anthropic({ apiKey: clientKey, baseURL: url, maxRetries: 0, timeout: 10_000 })

const user = [{ role: "user" as const, content: "Answer with the tool" }]
const parameters = { type: "object", properties: { text: { type: "string" } }, required: ["text"] }

/** A `continue` route from `first` to `then` (each `provider/model`). */
const cutThen = (first: string, then: string) => ({
  retry: "none" as const,
  midStream: "continue" as const,
  fallback: [first, then].map((step) => {
    const [provider, model] = step.split("/")
    return { provider, model }
  })
})

/** Routes whose first step cuts the stream after 4 pieces of the call's arguments (`continue` carries on). */
const config = (chaos: ChaosServer.ChaosServer["Service"]): GatewayConfig.GatewayConfig => {
  const base = baseConfig(chaos)
  return {
    ...base,
    providers: {
      ...base.providers,
      cut: { kind: "openai", baseUrl: chaos.openAiBaseUrl("truncated-stream"), apiKeyEnv: "CHAOS_KEY" },
      claudecut: { kind: "anthropic", baseUrl: chaos.anthropicBaseUrl("truncated-stream"), apiKeyEnv: "CHAOS_KEY" }
    },
    models: {
      ...base.models,
      // declared to take a prefill: a delivered tool call is still asked again, never prefilled
      "cut/gpt-cut": { prefill: true },
      "claudecut/claude-cut": { prefill: true }
    },
    routes: {
      ...base.routes,
      "openai-cut": cutThen("cut/gpt-cut", "chaos/gpt-small"),
      "anthropic-cut": cutThen("claudecut/claude-cut", "claude/claude-haiku")
    }
  }
}

const openAiCall = (url: string, model: string) =>
  Effect.promise(async () => {
    const stream = openAiClient(url).chat.completions.stream({
      model,
      messages: user,
      tools: [{ type: "function", function: { name: "answer", parameters } }],
      tool_choice: "required"
    })
    const ids = new Set<string>()
    stream.on("chunk", (chunk) => {
      for (const call of chunk.choices[0]?.delta.tool_calls ?? []) if (call.id !== undefined) ids.add(call.id)
    })
    return { completion: await stream.finalChatCompletion(), ids: [...ids] }
  })

const anthropicCall = (url: string, model: string) =>
  Effect.promise(async () => {
    const stream = anthropicClient(url).messages.stream({
      model,
      max_tokens: 200,
      messages: user,
      tools: [{ name: "answer", input_schema: parameters as Anthropic.Tool.InputSchema }],
      tool_choice: { type: "any" }
    })
    const blocks: Array<string> = []
    stream.on("streamEvent", (event) => {
      if (event.type === "content_block_start") blocks.push(event.content_block.type)
    })
    return { message: await stream.finalMessage(), blocks }
  })

/** Checks the upstream calls: the models called, in order; the `-cut` ones cut their stream. */
const upstreamCalls = (chaos: ChaosServer.ChaosServer["Service"], models: ReadonlyArray<string>) =>
  Effect.map(chaos.requests, (requests) =>
    assert.deepStrictEqual(
      requests.map((r) => [r.step, r.model]),
      models.map((m) => [m.endsWith("-cut") ? "truncated-stream" : "ok", m])
    )
  )

describe("streamed tool calls through the gateway", () => {
  it.live("OpenAI client: the stream helper assembles the call's name and JSON arguments", () =>
    Effect.gen(function* () {
      const { url, chaos } = yield* startGateway(config, { partialChunks: 4 })
      // an OpenAI upstream, one cut mid-call and carried on, and an Anthropic upstream (tools translated)
      for (const model of ["gpt-small", "openai-cut", "claude-haiku"]) {
        const { completion, ids } = yield* openAiCall(url, model)
        const choice = completion.choices[0]
        assert.strictEqual(choice.finish_reason, "tool_calls", model)
        const calls = choice.message.tool_calls ?? []
        assert.strictEqual(calls.length, 1, model)
        const call = calls[0]
        assert.strictEqual(call.type === "function" && call.function.name, "answer", model)
        assert.deepStrictEqual(call.type === "function" && JSON.parse(call.function.arguments), { text }, model)
        // after the cut the call goes on under the id the client was given first
        assert.strictEqual(ids.length, 1, model)
      }
      yield* upstreamCalls(chaos, ["gpt-small", "gpt-cut", "gpt-small", "claude-haiku"])
    }).pipe(Effect.scoped)
  )

  it.live("Anthropic client: the stream helper assembles the tool_use block and its input", () =>
    Effect.gen(function* () {
      const { url, chaos } = yield* startGateway(config, { partialChunks: 4 })
      for (const model of ["claude-haiku", "anthropic-cut", "gpt-small"]) {
        const { message, blocks } = yield* anthropicCall(url, model)
        assert.strictEqual(message.stop_reason, "tool_use", model)
        assert.deepStrictEqual(blocks, ["tool_use"], model)
        const [block] = message.content
        assert.strictEqual(block.type, "tool_use", model)
        assert.strictEqual(block.type === "tool_use" && block.name, "answer", model)
        assert.deepStrictEqual(block.type === "tool_use" && block.input, { text }, model)
      }
      yield* upstreamCalls(chaos, ["claude-haiku", "claude-cut", "claude-haiku", "gpt-small"])
    }).pipe(Effect.scoped)
  )

  it.live("the whole report ends the stream as an SSE comment: a mid-stream fallback the header could not know", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway(config, { partialChunks: 4 })
      const response = yield* Effect.promise(() =>
        fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${clientKey}` },
          body: JSON.stringify({
            model: "openai-cut",
            stream: true,
            messages: user,
            tools: [{ type: "function", function: { name: "answer", parameters } }],
            tool_choice: "required"
          }),
          signal: AbortSignal.timeout(10_000)
        })
      )
      const moves = (report: { events: ReadonlyArray<{ _tag: string; from?: string; to?: string }> }) =>
        report.events.filter((e) => e._tag === "FallbackMoved").map((e) => [e.from, e.to])
      // the header is sent with the first chunk, before the cut
      assert.deepStrictEqual(moves(JSON.parse(response.headers.get("x-llm-report")!)), [])
      const body = yield* Effect.promise(() => response.text())
      const lines = body.trimEnd().split("\n")
      const last = lines.at(-1)!
      assert.match(last, /^: llm-report \{/)
      assert.strictEqual(lines.at(-3), "data: [DONE]")
      assert.deepStrictEqual(moves(JSON.parse(last.slice(": llm-report ".length))), [
        ["cut/gpt-cut", "chaos/gpt-small"]
      ])
    }).pipe(Effect.scoped)
  )
})

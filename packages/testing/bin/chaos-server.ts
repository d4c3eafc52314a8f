/**
 * `npm run chaos-server`: starts the chaos server on $PORT (default 8787) and prints how to pick faults.
 *
 * Optional environment: PORT, HOST, CHAOS_STALL_MS, CHAOS_SLOW_HEADERS_MS, CHAOS_KEEP_ALIVE_MS.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer } from "effect"
import { ChaosServer } from "../src/index.ts"

const num = (name: string): number | undefined => {
  const raw = process.env[name]
  return raw === undefined || raw === "" ? undefined : Number(raw)
}

const options = {
  port: num("PORT") ?? 8787,
  host: process.env.HOST ?? "127.0.0.1",
  ...(num("CHAOS_STALL_MS") === undefined ? {} : { stallMs: num("CHAOS_STALL_MS") }),
  ...(num("CHAOS_SLOW_HEADERS_MS") === undefined ? {} : { slowHeadersMs: num("CHAOS_SLOW_HEADERS_MS") }),
  ...(num("CHAOS_KEEP_ALIVE_MS") === undefined ? {} : { keepAliveIntervalMs: num("CHAOS_KEEP_ALIVE_MS") })
}

const banner = Effect.gen(function* () {
  const chaos = yield* ChaosServer.ChaosServer
  const width = Math.max(...ChaosServer.faults.map((f) => f.length))
  yield* Console.log(
    [
      `chaos server listening on ${chaos.url}`,
      "",
      `  OpenAI base URL:    ${chaos.openAiBaseUrl()}      (POST /v1/chat/completions)`,
      `  Anthropic base URL: ${chaos.anthropicBaseUrl()}         (POST /v1/messages)`,
      "",
      "Pick a fault per request with a header or a path prefix:",
      `  curl -s ${chaos.url}/v1/chat/completions -H 'x-chaos-fault: rate-limit' \\`,
      `       -H 'content-type: application/json' -d '{"model":"gpt-5.4-mini","messages":[{"role":"user","content":"hi"}]}'`,
      `  OpenAI SDK:    baseURL: "${chaos.openAiBaseUrl("overloaded")}"`,
      `  Anthropic SDK: baseURL: "${chaos.anthropicBaseUrl("overloaded")}"`,
      "  x-chaos-delay-ms: <ms> overrides the stall / slow-headers delay of one request.",
      "",
      "Faults:",
      ...ChaosServer.faults.map((f) => `  ${f.padEnd(width)}  ${ChaosServer.describeFault(f)}`),
      "",
      "Ctrl-C to stop."
    ].join("\n")
  )
})

const main = Layer.effectDiscard(banner).pipe(Layer.provide(ChaosServer.layer(options)))

NodeRuntime.runMain(Layer.launch(main))

/** Starts a chaos server and a gateway in front of it, for tests with the official clients. */
import { ChaosServer } from "@llm-resilience/testing"
import { Context, Effect, Layer, type Scope } from "effect"
import { HttpServer } from "effect/http"
import { Gateway, type GatewayConfig } from "../../src/index.ts"

/** The upstream key the gateway holds; it must never reach a client, a log or a span. */
export const upstreamKey = "sk-upstream-SECRET-4242"

/** A gateway key and its hash. */
export const clientKey = "gw-client-key-1"

export const text = "Hello from the chaos server. Every byte of this answer arrived."

/** A configuration with two providers on the chaos server (`chaos`, and `broken` which injects `fault`). */
export const baseConfig = (chaos: ChaosServer.ChaosServer["Service"], fault: ChaosServer.Fault = "overloaded") =>
  ({
    server: { port: 0, shutdownGraceMs: 2_000 },
    providers: {
      chaos: { kind: "openai", baseUrl: chaos.openAiBaseUrl(), apiKeyEnv: "CHAOS_KEY" },
      broken: { kind: "openai", baseUrl: chaos.openAiBaseUrl(fault), apiKeyEnv: "CHAOS_KEY" },
      claude: { kind: "anthropic", baseUrl: chaos.anthropicBaseUrl(), apiKeyEnv: "CHAOS_KEY" }
    },
    models: {
      "chaos/gpt-small": { contextWindow: 128_000 },
      "broken/gpt-large": { contextWindow: 128_000 },
      "claude/claude-haiku": { contextWindow: 200_000 }
    },
    routes: {
      chat: {
        retry: "none",
        fallback: [
          { provider: "broken", model: "gpt-large" },
          { provider: "chaos", model: "gpt-small" }
        ]
      },
      solo: { retry: "none", fallback: [{ provider: "broken", model: "gpt-large" }] }
    },
    keys: [{ sha256: Gateway.hashKey(clientKey), tenant: "team-a" }]
  }) satisfies GatewayConfig.GatewayConfig

/** Runs a chaos server and a gateway for the scope; the gateway's base URL (`http://host:port`). */
export const startGateway = (
  configOf: (chaos: ChaosServer.ChaosServer["Service"]) => GatewayConfig.GatewayConfig,
  chaosOptions?: typeof ChaosServer.Options.Encoded
): Effect.Effect<{ readonly url: string; readonly chaos: ChaosServer.ChaosServer["Service"] }, unknown, Scope.Scope> =>
  Effect.gen(function* () {
    const chaos = yield* ChaosServer.make({ stallMs: 300, ...chaosOptions })
    const context = yield* Layer.build(Gateway.layer(configOf(chaos), { env: { CHAOS_KEY: upstreamKey } }))
    const url = HttpServer.formatAddress(Context.get(context, HttpServer.HttpServer).address)
    return { url, chaos }
  })

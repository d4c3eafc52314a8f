/**
 * An OpenAI-compatible endpoint over `Resilience` (examples/front/openai.ts): any OpenAI client can point its
 * base URL at it and get retries, fallbacks, breakers and timeouts without code of its own.
 *
 * With no arguments the two upstream providers are local chaos servers, so it runs with no key and no
 * network: the primary misbehaves in turn (429, 503, a cut stream, a reset, a malformed chunk) and the
 * fallback is healthy. Stop it with Ctrl-C.
 *
 *   npx node examples/openai-front.ts            # listens on 127.0.0.1:8080 (PORT to change)
 *   curl -N localhost:8080/v1/chat/completions -H 'content-type: application/json' \
 *     -d '{"model":"any","stream":true,"messages":[{"role":"user","content":"Hi"}]}'
 *
 * Against real providers, build the `primary` and `fallback` providers from their own layers instead
 * (`OpenAiProvider.layer({ name: "primary" })` ...) and keep the rest.
 */
import { createServer } from "node:http"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { LlmProvider, Resilience } from "@llm-resilience/core"
import { OpenAiProvider } from "@llm-resilience/providers"
import { ChaosServer } from "@llm-resilience/testing"
import { Console, Effect, Layer, Redacted } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import * as Front from "./front/openai.ts"

const port = Number(process.env.PORT ?? 8080)
const apiKey = Redacted.make("sk-local-chaos")

const Upstreams = Layer.effect(
  LlmProvider.LlmProvider,
  Effect.gen(function* () {
    const primary = yield* ChaosServer.make({
      scenario: ["rate-limit", "ok", "overloaded", "truncated-stream", "ok", "connection-reset", "malformed-json"],
      loopScenario: true,
      stallMs: 5_000
    })
    const fallback = yield* ChaosServer.make({})
    const providers = [
      yield* OpenAiProvider.make({ name: "primary", apiKey, baseUrl: primary.openAiBaseUrl() }),
      yield* OpenAiProvider.make({ name: "fallback", apiKey, baseUrl: fallback.openAiBaseUrl() })
    ]
    const { provider } = yield* Resilience.make(Front.baseline("gpt-primary", "gpt-fallback"), providers)
    return provider
  })
)

const Server = HttpRouter.serve(Front.routes, { disableLogger: true, disableListenLog: true }).pipe(
  Layer.provide(Upstreams),
  Layer.provide(NodeHttpClient.layerUndici),
  Layer.provideMerge(NodeHttpServer.layer(createServer, { port, host: "127.0.0.1" }))
)

const Banner = Layer.effectDiscard(
  Effect.flatMap(HttpServer.HttpServer, (server) =>
    Console.log(`OpenAI-compatible front: ${HttpServer.formatAddress(server.address)}/v1`)
  )
)

NodeRuntime.runMain(Layer.launch(Banner.pipe(Layer.provideMerge(Server))))

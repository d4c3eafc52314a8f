/**
 * `npm run gateway`: the gateway of `examples/gateway/gateway.yaml` in front of the chaos server, with no API
 * keys. The chaos server listens on 127.0.0.1:8787; the gateway on 127.0.0.1:8080. Its `chat` route falls
 * back from an overloaded OpenAI-style provider to an Anthropic-style one.
 *
 * Try:
 *
 * ```sh
 * curl -s localhost:8080/v1/chat/completions -H 'authorization: Bearer gw-demo-key' \
 *   -H 'content-type: application/json' -d '{"model":"chat","messages":[{"role":"user","content":"Hi"}]}'
 * ```
 *
 * Ctrl-C (or SIGTERM) drains in-flight requests and exits 0.
 */
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Gateway, GatewayCli, GatewayConfig } from "@llm-resilience/gateway"
import { ChaosServer } from "@llm-resilience/testing"
import { Console, Effect, Layer } from "effect"

const file = path.join(path.dirname(fileURLToPath(import.meta.url)), "gateway.yaml")

const program = Effect.gen(function* () {
  const config = yield* GatewayConfig.load(file)
  const chaos = ChaosServer.layer({ port: 8787 })
  // the chaos server takes any key: the variable only has to be set
  const gateway = Gateway.layer(config, { env: { CHAOS_API_KEY: "chaos-needs-no-key" } })
  const banner = Console.log(
    [
      "chaos server on http://127.0.0.1:8787, gateway on http://127.0.0.1:8080 (key: gw-demo-key)",
      `routes: chat (falls back from an overloaded provider), batch; see ${path.relative(process.cwd(), file)}`,
      `try: curl -s localhost:8080/v1/chat/completions -H 'authorization: Bearer gw-demo-key' -H 'content-type: application/json' -d '{"model":"chat","messages":[{"role":"user","content":"Hi"}]}'`
    ].join("\n")
  )
  return yield* Layer.launch(Layer.effectDiscard(banner).pipe(Layer.provide(Layer.merge(chaos, gateway))))
})

GatewayCli.run(program)

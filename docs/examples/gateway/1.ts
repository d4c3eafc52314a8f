// Generated from docs/gateway.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Layer } from "effect"
import { Gateway, GatewayCli, GatewayConfig } from "@llm-resilience/gateway"

export const config: GatewayConfig.GatewayConfig = {
  server: { port: 8080 },
  providers: { openai: { kind: "openai", apiKeyEnv: "OPENAI_API_KEY" } },
  models: { "openai/gpt-5.4-mini": { requestsPerMinute: 500 } },
  routes: { chat: { retry: "interactive", fallback: [{ provider: "openai", model: "gpt-5.4-mini" }] } }
}

// runs until SIGTERM, then drains and exits 0
export const main = () => GatewayCli.run(Layer.launch(Gateway.layer(config)).pipe(Effect.asVoid))

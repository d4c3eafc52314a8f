/**
 * @llm-resilience/gateway: an OpenAI- and Anthropic-compatible HTTP gateway that puts every policy of
 * @llm-resilience/core in front of any client.
 *
 * @since 0.1.0
 */
export * as Gateway from "./Gateway.ts"
export * as GatewayConfig from "./GatewayConfig.ts"
export * as GatewayCli from "./GatewayCli.ts"

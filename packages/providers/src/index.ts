/**
 * @llm-resilience/providers: OpenAI-compatible and Anthropic providers over effect/http, and an adapter for
 * the official SDKs.
 *
 * @since 0.1.0
 */
export * as AnthropicProvider from "./AnthropicProvider.ts"
export * as OpenAiProvider from "./OpenAiProvider.ts"
export * as SdkAdapter from "./SdkAdapter.ts"
export * as ProviderTelemetry from "./ProviderTelemetry.ts"

/**
 * @llm-resilience/providers: OpenAI-compatible (Chat Completions and Responses), Azure OpenAI, Anthropic and
 * Google Gemini providers over effect/http, and an adapter for the official SDKs.
 *
 * @since 0.1.0
 */
export * as AnthropicProvider from "./AnthropicProvider.ts"
export * as AzureOpenAiProvider from "./AzureOpenAiProvider.ts"
export * as GeminiProvider from "./GeminiProvider.ts"
export * as OpenAiProvider from "./OpenAiProvider.ts"
export * as OpenAiResponsesProvider from "./OpenAiResponsesProvider.ts"
export * as SdkAdapter from "./SdkAdapter.ts"
export * as ProviderTelemetry from "./ProviderTelemetry.ts"

/**
 * @llm-resilience/testing: a scripted, TestClock-driven FakeProvider and a chaos HTTP server that speaks the
 * OpenAI and Anthropic wire formats.
 *
 * @since 0.1.0
 */
export * as FakeProvider from "./FakeProvider.ts"
export * as ChaosServer from "./ChaosServer.ts"

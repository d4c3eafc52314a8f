// Generated from docs/configuration.md (block 3) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Layer, Schedule } from "effect"
import { AgentGuard, CircuitBreaker, LlmProvider, Resilience } from "@llm-resilience/core"

declare const OpenAi: Layer.Layer<LlmProvider.LlmProvider> // e.g. OpenAiProvider.layer()

export const Breaker = CircuitBreaker.layer({ openDuration: Schedule.exponential("5 seconds"), maxOpenDuration: "2 minutes" })
export const Agents = AgentGuard.layer({ maxTurns: 50, fingerprint: (request) => JSON.stringify(request.messages.at(-1)) })

export const Live = Resilience.layer({ paths: { chat: { retry: "interactive" } } }).pipe(
  Layer.provide(Layer.mergeAll(OpenAi, Breaker, Agents))
)

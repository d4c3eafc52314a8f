// Generated from docs/providers.md (block 5) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import Anthropic from "@anthropic-ai/sdk"
import { Effect } from "effect"
import { FallbackPlan, type LlmProvider } from "@llm-resilience/core"
import { SdkAdapter } from "@llm-resilience/providers"

declare const openai: LlmProvider.LlmProvider["Service"] // e.g. OpenAiProvider.make(...)

export const program = Effect.gen(function* () {
  const plan = yield* FallbackPlan.make([
    FallbackPlan.step(openai, { model: "gpt-5.4-mini" }),
    FallbackPlan.step(SdkAdapter.fromAnthropic(new Anthropic({ maxRetries: 0 })), { model: "claude-haiku-4-5" })
  ])
  return yield* plan.complete({ model: "default", messages: [{ role: "user", content: "Hi" }] })
})

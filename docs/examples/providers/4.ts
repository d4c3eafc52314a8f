// Generated from docs/providers.md (block 4) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import OpenAI from "openai"
import Anthropic from "@anthropic-ai/sdk"
import { SdkAdapter } from "@llm-resilience/providers"

// Turn the SDK's own retries OFF: retries happen once, in the toolkit.
export const openai = new OpenAI({ maxRetries: 0 })
export const anthropic = new Anthropic({ maxRetries: 0 })

export const answer = SdkAdapter.tryPromise({ provider: "openai", model: "gpt-5.4-mini" }, (signal) =>
  openai.chat.completions.create({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] }, { signal })
)

export const events = SdkAdapter.stream({ provider: "anthropic", model: "claude-sonnet-4-6" }, (signal) =>
  anthropic.messages.create(
    { model: "claude-sonnet-4-6", max_tokens: 256, stream: true, messages: [{ role: "user", content: "Hi" }] },
    { signal }
  )
)

// Generated from docs/providers.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { NodeHttpClient } from "@effect/platform-node"
import { Resilience } from "@llm-resilience/core"
import { AnthropicProvider, AzureOpenAiProvider, GeminiProvider } from "@llm-resilience/providers"
import { Layer } from "effect"

// keys from ANTHROPIC_API_KEY, GEMINI_API_KEY, AZURE_OPENAI_API_KEY (and AZURE_OPENAI_ENDPOINT)
export const Live = Resilience.layer(
  {
    fallback: [
      { provider: "anthropic", model: "claude-sonnet-4-6" },
      { provider: "gemini", model: "gemini-2.5-flash" },
      { provider: "azure-openai", model: "gpt-4o-eu" } // the model names the deployment
    ]
  },
  AnthropicProvider.layer(),
  GeminiProvider.layer(),
  AzureOpenAiProvider.layer()
).pipe(Layer.provide(NodeHttpClient.layerUndici))

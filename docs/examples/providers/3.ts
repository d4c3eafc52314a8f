// Generated from docs/providers.md (block 3) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Redacted } from "effect"
import { OpenAiProvider } from "@llm-resilience/providers"

// vLLM (`vllm serve ...`); the key is whatever --api-key you started it with
export const vllm = OpenAiProvider.layer({
  name: "vllm",
  baseUrl: "http://localhost:8000/v1",
  apiKey: Redacted.make("token-abc")
})

// Ollama: any non-empty key; older versions want max_tokens
export const ollama = OpenAiProvider.layer({
  name: "ollama",
  baseUrl: "http://localhost:11434/v1",
  apiKey: Redacted.make("ollama"),
  maxTokensField: "max_tokens"
})

// Azure OpenAI, v1 API (model = your deployment name); keys go in the api-key header
export const azure = OpenAiProvider.layer({
  name: "azure",
  baseUrl: "https://my-resource.openai.azure.com/openai/v1",
  authHeader: "api-key"
})
// Azure OpenAI deployment URLs with an api-version: use AzureOpenAiProvider

// OpenRouter (model ids like "anthropic/claude-sonnet-4.6")
export const openrouter = OpenAiProvider.layer({
  name: "openrouter",
  baseUrl: "https://openrouter.ai/api/v1",
  headers: { "HTTP-Referer": "https://example.com", "X-Title": "my-app" }
})

// Generated from docs/shared-state.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { NodeHttpClient } from "@effect/platform-node"
import { Resilience } from "@llm-resilience/core"
import { OpenAiProvider } from "@llm-resilience/providers"
import { RedisStore } from "@llm-resilience/redis"
import { Layer } from "effect"

export const config: Resilience.Config = {
  store: {
    url: "redis://redis.internal:6379",
    prefix: "chat:", // every key starts with it (default "llm:")
    onStoreFailure: "local", // or "reject"
    expectedInstances: 4, // for the local share while Redis is down
    timeoutMs: 250 // the longest one Redis call may take (default)
  },
  models: { "openai/gpt-5.4-mini": { requestsPerMinute: 500, tokensPerMinute: 200_000 } }
}

export const Live = Resilience.layer(config, OpenAiProvider.layer()).pipe(
  Layer.provide(RedisStore.layer(config)), // the same configuration object
  Layer.provide(NodeHttpClient.layerUndici)
)

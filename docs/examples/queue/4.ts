// Generated from docs/queue.md (block 4) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { DurableQueue } from "@llm-resilience/core"

// tell the application over HTTP
export const Notify = DurableQueue.layerWorkers({
  onComplete: DurableQueue.httpCallback("https://app.example.com/hooks/llm-done", {
    headers: { authorization: "Bearer hook-secret" }
  })
}).pipe(Layer.provide(NodeHttpClient.layerUndici))

// or run an Effect
export const Log = DurableQueue.layerWorkers({
  onComplete: (job) => Effect.log(`${job.ticket} is ${job.status}`)
})

// Generated from docs/admission.md (block 4) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { Bulkhead } from "@llm-resilience/core"

export const program = Effect.gen(function* () {
  const bulkhead = yield* Bulkhead.make({ key: "embeddings", maxConcurrency: 8, maxQueue: 100 })
  return yield* Effect.succeed("done").pipe(Bulkhead.withPermit(bulkhead, { priority: "background" }))
})

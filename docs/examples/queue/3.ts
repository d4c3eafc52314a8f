// Generated from docs/queue.md (block 3) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { DurableQueue } from "@llm-resilience/core"

export const triage = Effect.gen(function* () {
  const queue = yield* DurableQueue.DurableQueue
  const dead = yield* queue.deadLetters // oldest first
  for (const job of dead) {
    const last = job.failures.at(-1)
    yield* Effect.log(`${job.ticket}: ${job.reason} after ${job.attempts} attempts (${last?.message})`)
  }
  // the provider's key was fixed: try the authentication failures again
  for (const job of dead) if (job.reason === "Authentication") yield* queue.replay(job.ticket)
  // and give up on the rest
  yield* queue.purge()
})

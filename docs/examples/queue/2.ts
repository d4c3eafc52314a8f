// Generated from docs/queue.md (block 2) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Option } from "effect"
import { DurableQueue, LlmError, Resilience } from "@llm-resilience/core"

export const request = {
  model: "gpt-5.4-mini",
  messages: [{ role: "user" as const, content: "Summarise yesterday's support tickets" }],
  metadata: { idempotencyKey: "daily-summary-2026-11-29" }
}

// a caller: an answer now, or a ticket
export const ask = Resilience.call(request).pipe(
  Effect.map((response) => ({ answered: response.text })),
  Effect.catchTag("AcceptedForLater", (accepted: LlmError.AcceptedForLater) =>
    Effect.succeed({ ticket: accepted.ticketId })
  )
)

// or queue it directly, without trying first
export const queueIt = Effect.flatMap(DurableQueue.DurableQueue, (queue) => queue.accept(request))

// later: where is it?
export const check = (ticket: string) =>
  Effect.gen(function* () {
    const queue = yield* DurableQueue.DurableQueue
    const job = yield* queue.status(ticket)
    if (Option.isNone(job)) return "unknown ticket (or its result has expired)"
    switch (job.value.status) {
      case "queued":
      case "running":
        return `${job.value.status}, attempt ${job.value.attempts}`
      case "done":
        return job.value.response!.text
      case "dead":
        return `failed: ${job.value.reason}`
    }
  })

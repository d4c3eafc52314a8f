// Generated from docs/breakers.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Schedule } from "effect"
import { CircuitBreaker, LlmProvider } from "@llm-resilience/core"

export const program = Effect.gen(function* () {
  const llm = yield* LlmProvider.LlmProvider
  const breaker = yield* CircuitBreaker.make({
    failureRateThreshold: 0.2, // open at 20% failures ...
    window: "60 seconds", //      ... over the last 60 s ...
    minimumCalls: 10, //          ... once 10 calls are in the window
    consecutiveFailures: 5, //    or after 5 failed or slow calls in a row
    slowCallThreshold: "3 seconds", // a call running 3 s is slow, even before it ends
    slowCallRateThreshold: 0.2,
    openDuration: Schedule.exponential("15 seconds"), // 15 s, 30 s, 60 s, 60 s ...
    maxOpenDuration: "60 seconds",
    halfOpenProbes: 1
  })
  const request = { model: "gpt-5.4", messages: [{ role: "user" as const, content: "Hi" }] }
  // put the call's own timeout inside the breaker, so that a timeout counts as a failure
  return yield* llm.complete(request).pipe(breaker.protect("openai/gpt-5.4"))
})

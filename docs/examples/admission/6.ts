// Generated from docs/admission.md (block 6) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Clock, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { Admission, type LlmRequest, type LlmResponse } from "@llm-resilience/core"

export const request: LlmRequest.LlmRequest = {
  model: "m",
  messages: [{ role: "user", content: "x".repeat(1200) }], // ~300 input tokens + 200 output cap = ~500
  maxOutputTokens: 200
}
export const answer: LlmResponse.LlmResponse = {
  text: "ok",
  finishReason: "stop",
  usage: { inputTokens: 300, outputTokens: 200 },
  provider: "fake",
  model: "m"
}

export const burst = Effect.gen(function* () {
  const admittedAt: Array<number> = []
  const call = Effect.flatMap(Clock.currentTimeMillis, (t) => {
    admittedAt.push(t)
    return Effect.succeed(answer)
  }).pipe(Admission.admit(request, "fake/m"))
  const fibers = yield* Effect.forEach(Array.from({ length: 200 }), () => Effect.forkChild(call))
  yield* TestClock.adjust("10 minutes") // the queue drains exactly at the rate the limits allow
  yield* Fiber.joinAll(fibers)
  return admittedAt // about 20 per minute: the token limit is the tighter one
}).pipe(
  Effect.provide(
    Admission.layerMemory({ defaults: { requestsPerMinute: 60, tokensPerMinute: 10_000 }, maxWaitMs: 600_000 })
  )
)

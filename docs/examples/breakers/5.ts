// Generated from docs/breakers.md (block 5) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import { CircuitBreaker, QualityJudge } from "@llm-resilience/core"

export const program = Effect.gen(function* () {
  const breaker = yield* CircuitBreaker.make()
  const quality = yield* QualityJudge.make({
    judge: (_request, response) => Effect.succeed(response.text.trim().length === 0 ? 0 : 1),
    threshold: 0.5, // below: a breaker failure for the key
    sampleRate: 0.1, // judge 10% of responses (read from Random)
    breaker
  })
  return quality
})

// Generated from docs/breakers.md (block 2) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect } from "effect"
import type { CircuitBreaker } from "@llm-resilience/core"

// a fallback plan skips a step whose circuit would reject, without making a call
export const admits = (breaker: CircuitBreaker.CircuitBreaker, key: string) =>
  breaker.check(key).pipe(
    Effect.as(true),
    Effect.catchTag("CircuitOpen", () => Effect.succeed(false))
  )

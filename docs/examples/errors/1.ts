// Generated from docs/errors.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Classification, RateLimitSnapshot } from "@llm-resilience/core"
import { Clock, Effect } from "effect"

// in a provider adapter, after a non-2xx response:
export const fail = (status: number, headers: RateLimitSnapshot.HeaderInput, body: string) =>
  Effect.flatMap(Clock.currentTimeMillis, (nowMillis) =>
    Effect.fail(Classification.classify({ status, headers, body, provider: "openai", model: "gpt-5.4", nowMillis }))
  )

// for an in-stream error event (HTTP 200 stream, Anthropic `event: error`):
Classification.classify({
  status: 200,
  headers: {},
  body: '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
  nowMillis: 0
}) // Overloaded { status: 200, message: "Overloaded" }

// on every response, success included:
RateLimitSnapshot.fromHeaders({ "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6s" }, 0)
// { requests: { remaining: 0, resetAfterMs: 6000 } }

// Generated from docs/testing.md (block 4) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { LlmProvider } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

it.effect("429 exactly when the limit is exceeded", () =>
  Effect.gen(function* () {
    const llm = yield* LlmProvider.LlmProvider
    const request = { model: "m", messages: [{ role: "user" as const, content: "Hi" }] }
    yield* llm.complete(request)
    yield* llm.complete(request)
    const error = yield* Effect.flip(llm.complete(request))
    expect(error).toMatchObject({ _tag: "RateLimited", limit: "requests", retryAfterMs: 60_000 })
    yield* TestClock.adjust("60 seconds")
    yield* llm.complete(request) // the first two calls have left the window
  }).pipe(Effect.provide(FakeProvider.layer({ default: { capacity: { requestsPerMinute: 2 } } })))
)

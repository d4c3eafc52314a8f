// Generated from docs/testing.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { LlmProvider } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

it.effect("answers after 250 ms", () =>
  Effect.gen(function* () {
    const llm = yield* LlmProvider.LlmProvider
    const fiber = yield* Effect.forkChild(llm.complete({ model: "m", messages: [{ role: "user", content: "Hi" }] }))
    yield* TestClock.adjust("250 millis")
    const response = yield* Fiber.join(fiber)
    expect(response.text).toBe("Hello")
    const [call] = yield* FakeProvider.calls
    expect([call.startedAt, call.endedAt, call.outcome]).toEqual([0, 250, "success"])
  }).pipe(Effect.provide(FakeProvider.layer({ default: { latency: "250 millis", text: "Hello" } })))
)

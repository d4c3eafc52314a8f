// Generated from docs/testing.md (block 6) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { FakeProvider } from "@llm-resilience/testing"

export const request = { model: "m", messages: [{ role: "user" as const, content: "Hi" }] }

export const test = Effect.gen(function* () {
  const primary = yield* FakeProvider.make({ name: "primary", default: { behavior: FakeProvider.stall } })
  const backup = yield* FakeProvider.make({ name: "backup", default: { latency: 300 } })
  const fiber = yield* primary.provider.complete(request).pipe(
    Effect.timeout("1 second"),
    Effect.catch(() => backup.provider.complete(request)),
    Effect.forkChild
  )
  yield* TestClock.adjust("2 seconds")
  yield* Fiber.join(fiber)
  // primary: [{ startedAt: 0, endedAt: 1000, outcome: "interrupted" }]
  // backup:  [{ startedAt: 1000, endedAt: 1300, outcome: "success" }]
})

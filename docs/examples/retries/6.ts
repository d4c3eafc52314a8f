// Generated from docs/retries.md (block 6) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { assert, it } from "@effect/vitest"
import { Effect, Fiber, Random } from "effect"
import { TestClock } from "effect/testing"
import { LlmProvider, Retry } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

export const Half: Random.Random = { nextDoubleUnsafe: () => 0.5, nextIntUnsafe: () => 0 }

it.effect("interactive retries at 0, 125 and 375 ms", () =>
  Effect.gen(function* () {
    const llm = yield* LlmProvider.LlmProvider
    const call = llm.complete({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] })
    const fiber = yield* call.pipe(Retry.retry({ profile: "interactive" }), Effect.forkChild)
    yield* TestClock.adjust("1 minute")
    yield* Fiber.await(fiber)
    // interactive: full jitter from 250 ms => attempts at 0, 125, 375 ms
    const starts = (yield* FakeProvider.calls).map((c) => c.startedAt)
    assert.deepStrictEqual(starts, [0, 125, 375])
  }).pipe(
    Effect.provide(FakeProvider.layer({ default: { behavior: FakeProvider.fail(FakeProvider.overloaded()) } })),
    Effect.provideService(Random.Random, Half)
  )
)

/**
 * Quick start: call the simulated provider through the `LlmProvider` interface, once when it answers and once
 * when it is rate limited, and print what happened. No API key, no network.
 *
 * Run: `npx node examples/quick-start.ts`
 */
import { LlmError, LlmProvider } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"
import { Console, Effect } from "effect"

const request = {
  model: "fake-small",
  messages: [{ role: "user", content: "Say hello to the on-call engineer." }],
  maxOutputTokens: 64
} as const

const program = Effect.gen(function* () {
  const llm = yield* LlmProvider.LlmProvider
  const answer = yield* llm.complete(request)
  yield* Console.log(`answer: ${answer.text}`)
  yield* Console.log(`usage: ${answer.usage.inputTokens} in / ${answer.usage.outputTokens} out, model ${answer.model}`)

  const throttled = yield* Effect.flip(llm.complete(request))
  const retryable = LlmError.isRetryable(throttled)
  yield* Console.log(`second call failed with ${throttled._tag} (retryable: ${retryable}): ${throttled.message}`)
})

const fake = FakeProvider.layer({
  name: "simulated",
  models: {
    "fake-small": {
      latency: "20 millis",
      text: "Hello, on-call engineer!",
      script: [FakeProvider.succeed(), FakeProvider.fail(FakeProvider.rateLimited({ retryAfter: "2 seconds" }))]
    }
  }
})

Effect.runPromise(program.pipe(Effect.provide(fake))).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})

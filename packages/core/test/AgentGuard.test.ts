import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { TestClock } from "effect/testing"
import {
  AgentGuard,
  type LlmError,
  type LlmRequest,
  type LlmResponse,
  PriceTable,
  SpendGuard
} from "@llm-resilience/core"

const conversation = (id: string, content: string, model = "m"): LlmRequest.LlmRequest => ({
  model,
  messages: [{ role: "user", content }],
  metadata: { conversationId: id }
})

describe("AgentGuard", () => {
  it.effect("turn 21 of a conversation is refused by default; refused turns do not count", () =>
    Effect.gen(function* () {
      const guard = yield* AgentGuard.make()
      for (let turn = 1; turn <= 20; turn++) yield* guard.turn(conversation("c1", `step ${turn}`))
      const error = yield* Effect.flip(guard.turn(conversation("c1", "step 21")))
      assert.deepStrictEqual(
        error._tag === "TurnLimitExceeded" ? [error.conversationId, error.turns, error.limit] : error._tag,
        ["c1", 21, 20]
      )
      assert.strictEqual(yield* guard.turns("c1"), 20)
      // other conversations and requests without a conversation are unaffected
      yield* guard.turn(conversation("c2", "step 1"))
      yield* guard.turn({ model: "m", messages: [] })
      // ending a conversation forgets it
      yield* guard.end("c1")
      yield* guard.turn(conversation("c1", "fresh start"))
    })
  )

  it.effect("the same request K times within the window is a loop; outside the window it is not", () =>
    Effect.gen(function* () {
      const guard = yield* AgentGuard.make({ loopRepeats: 3, loopWindow: "1 minute" })
      const same = conversation("c1", "list the files")
      yield* guard.turn(same)
      yield* TestClock.adjust("10 seconds")
      yield* guard.turn(conversation("c1", "something else"))
      yield* guard.turn(same)
      const error = yield* Effect.flip(guard.turn(same))
      assert.deepStrictEqual(error._tag === "LoopDetected" ? [error.conversationId, error.repeats] : error._tag, [
        "c1",
        3
      ])
      // the first occurrence leaves the window after a minute: two in the window again, allowed
      yield* TestClock.adjust("51 seconds")
      yield* guard.turn(same)
      assert.strictEqual(yield* guard.turns("c1"), 4)
      // the same text to another model is another request
      yield* guard.turn(conversation("c1", "list the files", "other-model"))
    })
  )

  it.effect("a custom fingerprint decides what 'the same' means; refusals are counted", () =>
    Effect.gen(function* () {
      const guard = yield* AgentGuard.make({ loopRepeats: 2, fingerprint: (r) => r.model })
      yield* guard.turn(conversation("c1", "a"))
      const error = yield* Effect.flip(guard.turn(conversation("c1", "b")))
      assert.strictEqual(error._tag, "LoopDetected")
      const refused = yield* Metric.value(Metric.withAttributes(AgentGuard.metrics.refused, { reason: "loop" }))
      assert.strictEqual(refused.count, 1)
    }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("invalid options fail at construction, naming the field", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(AgentGuard.make({ maxTurns: 0, loopRepeats: 1 }))
      assert.include(error.message, "maxTurns")
      assert.include(error.message, "loopRepeats")
    })
  )
})

// ---------------------------------------------------------------------------------------------------
// the runaway agent loop
// ---------------------------------------------------------------------------------------------------

const KEY = "openai/gpt-5.4"
const price = PriceTable.examplePrices["gpt-5.4"]

/** Turn n: the transcript grows by 1,000 input tokens a turn (half of it cached after turn 1), 500 out. */
const usageOfTurn = (n: number): LlmResponse.Usage => ({
  inputTokens: 1_000 * n,
  cachedInputTokens: 500 * (n - 1),
  outputTokens: 500
})

/** An agent that calls forever, through the guards, until something stops it. */
const runawayAgent = (guardLimitUsd: number) =>
  Effect.gen(function* () {
    const agentGuard = yield* AgentGuard.make({ maxTurns: 20 })
    const spend = yield* SpendGuard.make({
      prices: PriceTable.examplePrices,
      budgets: [{ scope: "conversation", limitUsd: guardLimitUsd }]
    })
    const usages: Array<LlmResponse.Usage> = []
    const provider = (_request: LlmRequest.LlmRequest) =>
      Effect.sync((): LlmResponse.LlmResponse => {
        const usage = usageOfTurn(usages.length + 1)
        usages.push(usage)
        return {
          text: `tool call ${usages.length}`,
          finishReason: "tool_calls",
          usage,
          provider: "openai",
          model: "gpt-5.4"
        }
      })
    const messages: Array<LlmRequest.Message> = []
    let stoppedBy: LlmError.LlmError | undefined
    for (let turn = 1; stoppedBy === undefined; turn++) {
      messages.push({ role: "user", content: `observation ${turn}` })
      const request: LlmRequest.LlmRequest = {
        model: "gpt-5.4",
        messages: [...messages],
        metadata: { conversationId: "runaway", tenant: "acme" }
      }
      const result = yield* provider(request).pipe(
        spend.protect(KEY, request),
        agentGuard.protect(request),
        Effect.result
      )
      if (result._tag === "Failure") stoppedBy = result.failure
      else messages.push({ role: "assistant", content: result.success.text })
      yield* TestClock.adjust("2 seconds")
    }
    // the exact cost, computed independently from the usage the provider reported
    let expected = 0
    for (const usage of usages) expected += PriceTable.cost(price, usage)
    return { stoppedBy, providerCalls: usages.length, spent: yield* spend.spent("conversation:runaway"), expected }
  })

describe("the runaway agent loop", () => {
  it.effect("is stopped at turn 21 by the turn guard when the budget is larger", () =>
    Effect.gen(function* () {
      const { stoppedBy, providerCalls, spent, expected } = yield* runawayAgent(10)
      assert.strictEqual(stoppedBy?._tag, "TurnLimitExceeded")
      if (stoppedBy?._tag !== "TurnLimitExceeded") return
      assert.deepStrictEqual([stoppedBy.turns, stoppedBy.limit], [21, 20])
      assert.strictEqual(providerCalls, 20)
      assert.closeTo(spent, expected, 1e-9)
      // by hand: sum over n=1..20 of (500n + 500) * 2.5 + 500(n-1) * 0.25 + 500 * 15, per million
      let byHand = 0
      for (let n = 1; n <= 20; n++) byHand += ((500 * n + 500) * 2.5 + 500 * (n - 1) * 0.25 + 500 * 15) / 1e6
      assert.closeTo(spent, byHand, 1e-12)
      assert.closeTo(spent, 0.46125, 1e-12)
    })
  )

  it.effect("is stopped at its budget by the spend guard when the budget comes first", () =>
    Effect.gen(function* () {
      const { stoppedBy, providerCalls, spent, expected } = yield* runawayAgent(0.1)
      assert.strictEqual(stoppedBy?._tag, "BudgetExceeded")
      if (stoppedBy?._tag !== "BudgetExceeded") return
      // turn n costs $(1375n + 8625) / 1e6: cumulative $0.098875 after 7 turns, $0.1185 after 8; turn 9 is refused
      assert.strictEqual(providerCalls, 8)
      assert.closeTo(spent, 0.1185, 1e-12)
      assert.strictEqual(stoppedBy.scope, "conversation:runaway")
      assert.strictEqual(stoppedBy.limitUsd, 0.1)
      assert.closeTo(stoppedBy.spentUsd, expected, 1e-9)
      assert.closeTo(spent, expected, 1e-9)
      assert.isAtLeast(spent, 0.1)
      assert.isBelow(spent - PriceTable.cost(price, usageOfTurn(providerCalls)), 0.1)
    })
  )
})

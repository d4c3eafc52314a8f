import { readFileSync } from "node:fs"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import { countTokens } from "gpt-tokenizer"
import { TokenEstimator } from "@llm-resilience/core"

const request = (content: string, maxOutputTokens?: number) => ({
  model: "m",
  messages: [
    { role: "system" as const, content: "You are terse." },
    { role: "user" as const, content }
  ],
  ...(maxOutputTokens === undefined ? {} : { maxOutputTokens })
})

describe("TokenEstimator", () => {
  it.effect("defaults to the chars/4 heuristic with a default output cap, without being provided", () =>
    Effect.gen(function* () {
      const estimator = yield* TokenEstimator.TokenEstimator
      // 3 priming + 2 x 4 per message + ceil(14/4) + ceil(400/4)
      assert.deepStrictEqual(estimator.estimate(request("x".repeat(400))), {
        inputTokens: 3 + 8 + 4 + 100,
        outputTokens: 1024
      })
      assert.strictEqual(estimator.estimate(request("hi", 77)).outputTokens, 77)
    })
  )

  it("stays within 10% of o200k_base on real English documentation", () => {
    const text = readFileSync(new URL("../../../node_modules/cockatiel/readme.md", import.meta.url), "utf8").slice(
      0,
      10_240
    )
    const estimate = TokenEstimator.heuristic().countText(text)
    const exact = countTokens(text)
    assert.isBelow(Math.abs(estimate - exact) / exact, 0.1)
  })

  it.effect("accepts any counter and options through a layer", () =>
    Effect.gen(function* () {
      const estimator = yield* TokenEstimator.TokenEstimator
      const e = estimator.estimate(request("hello world"))
      assert.strictEqual(e.outputTokens, 256)
      assert.strictEqual(e.inputTokens, 3 + 0 + countTokens("You are terse.") + countTokens("hello world"))
    }).pipe(
      Effect.provide(
        TokenEstimator.layer(
          TokenEstimator.fromCounter(countTokens, { defaultMaxOutputTokens: 256, perMessageTokens: 0 })
        )
      )
    )
  )

  it.effect("validates options from configuration, naming the field", () =>
    Effect.gen(function* () {
      const ok = yield* TokenEstimator.make({ charsPerToken: 3 })
      assert.strictEqual(ok.countText("abcdef"), 2)
      const exit = yield* Effect.exit(TokenEstimator.make({ charsPerToken: 0 }))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "charsPerToken")
      const layerExit = yield* Effect.exit(
        Effect.scoped(Layer.build(TokenEstimator.layer({ defaultMaxOutputTokens: -1 })))
      )
      assert.include(String(Exit.isFailure(layerExit) ? layerExit.cause : ""), "defaultMaxOutputTokens")
    })
  )
})

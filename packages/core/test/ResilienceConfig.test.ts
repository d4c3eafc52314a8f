import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { type LlmProvider, Resilience } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

/** Builds a `Resilience` from `config` over providers named `names` (a FakeProvider each). */
const build = (config: unknown, names: ReadonlyArray<string> = ["fake"]) =>
  Effect.gen(function* () {
    const providers: Array<LlmProvider.LlmProvider["Service"]> = []
    for (const name of names) providers.push((yield* FakeProvider.make({ name })).provider)
    return yield* Effect.exit(Resilience.make(config as Resilience.Config, providers))
  }).pipe(Effect.scoped)

/** Fails unless `config` is refused with `InvalidConfig` at `field`, its issue containing `says`. */
const refused = (config: unknown, field: string, says: string, names?: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const exit = yield* build(config, names)
    assert.isTrue(Exit.isFailure(exit), `expected ${JSON.stringify(config)} to be refused`)
    const error = yield* Effect.flip(exit as Exit.Exit<unknown, Resilience.InvalidConfig>)
    assert.instanceOf(error, Resilience.InvalidConfig)
    assert.strictEqual(error.field, field)
    assert.include(error.issue, says)
  })

/** Fails unless `config` builds. */
const accepted = (config: unknown, names?: ReadonlyArray<string>) =>
  Effect.map(build(config, names), (exit) => assert.isTrue(Exit.isSuccess(exit), String(exit)))

describe("Resilience configuration is refused at construction when it cannot work", () => {
  it.effect("a models key whose provider does not exist", () =>
    Effect.gen(function* () {
      yield* refused(
        { models: { "openai/m": { requestsPerMinute: 10 } } },
        "models.openai/m",
        "no provider named openai"
      )
      yield* accepted({ models: { "fake/m": { requestsPerMinute: 10 } } })
    })
  )

  it.effect("a fallback step with an empty model", () =>
    Effect.gen(function* () {
      yield* refused({ fallback: [{ provider: "fake", model: "" }] }, "fallback[0].model", "length")
      yield* refused(
        { paths: { chat: { fallback: [{ provider: "fake", model: "" }] } } },
        "paths.chat.fallback[0].model",
        "length"
      )
      yield* accepted({ fallback: [{ provider: "fake", model: "m" }] })
    })
  )

  it.effect("a retry cap smaller than its base", () =>
    Effect.gen(function* () {
      yield* refused(
        { paths: { chat: { retry: { baseMs: 500, capMs: 100 } } } },
        "paths.chat.retry.capMs",
        "capMs must be at least baseMs"
      )
      // the interactive profile's cap is 2 s: a base above it is the field at fault
      yield* refused(
        { paths: { chat: { retry: { baseMs: 5_000 } } } },
        "paths.chat.retry.baseMs",
        "capMs must be at least baseMs"
      )
      yield* accepted({ paths: { chat: { retry: { baseMs: 100, capMs: 100 } } } })
    })
  )

  it.effect("hedge on a path with no later provider step", () =>
    Effect.gen(function* () {
      yield* refused({ paths: { chat: { hedge: { delayMs: 100 } } } }, "paths.chat.hedge", "later provider step")
      yield* refused(
        { paths: { chat: { hedge: {}, fallback: [{ provider: "fake", model: "m" }, { staticAnswer: "busy" }] } } },
        "paths.chat.hedge",
        "later provider step"
      )
      yield* accepted(
        {
          paths: {
            chat: {
              hedge: {},
              fallback: [
                { provider: "a", model: "m" },
                { provider: "b", model: "m" }
              ]
            }
          }
        },
        ["a", "b"]
      )
    })
  )

  it.effect("two providers with the same name", () =>
    Effect.gen(function* () {
      yield* refused({}, "providers[1]", "names must be unique", ["fake", "fake"])
      yield* accepted({}, ["fake", "other"])
    })
  )

  it.effect("limits so small that no request can ever be admitted", () =>
    Effect.gen(function* () {
      for (const limit of ["tokensPerMinute", "inputTokensPerMinute", "outputTokensPerMinute"]) {
        yield* refused({ models: { "fake/m": { [limit]: 0.0001 } } }, `models.fake/m.${limit}`, "admits no request")
        yield* accepted({ models: { "fake/m": { [limit]: 1 } } })
      }
    })
  )

  it.effect("an integer too large to be exact says so, not only that it is not an integer", () =>
    Effect.gen(function* () {
      yield* refused(
        { models: { "fake/m": { requestsPerMinute: 1e308 } } },
        "models.fake/m.requestsPerMinute",
        "largest exact integer"
      )
      yield* refused(
        { models: { "fake/m": { requestsPerMinute: 1.5 } } },
        "models.fake/m.requestsPerMinute",
        "whole number"
      )
    })
  )

  it.effect("a fallback entry of no accepted shape lists the shapes", () =>
    Effect.gen(function* () {
      const shapes = "{ provider, model }, { staticAnswer"
      yield* refused({ fallback: [{ provider: "fake", model: "m" }, { cached: false }] }, "fallback[1]", shapes)
      yield* refused(
        { paths: { chat: { fallback: [{ provider: "fake", model: "m" }, "static"] } } },
        "paths.chat.fallback[1]",
        shapes
      )
      yield* refused(
        {
          fallback: [
            { provider: "fake", model: "m" },
            { staticAnswer: "x", cached: true }
          ]
        },
        "fallback[1]",
        shapes
      )
      // a provider step keeps its own field-level message
      yield* refused({ fallback: [{ provider: "fake" }] }, "fallback[0].model", "Missing key")
    })
  )
})

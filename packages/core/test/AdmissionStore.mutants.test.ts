import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { AdmissionStore } from "@llm-resilience/core"

describe("AdmissionStore (in memory, its own edges)", () => {
  it("settling a reservation another store made changes nothing", () => {
    const store = AdmissionStore.makeMemory()
    const limits = { windowMs: 60_000, requests: 1, tokens: Infinity, inputTokens: Infinity, outputTokens: Infinity }
    const one = { requests: 1, tokens: 0, inputTokens: 0, outputTokens: 0 }
    const foreign = { key: "p/m", atMs: 0, reserved: one, limits }
    assert.strictEqual((store.tryReserve("p/m", limits, one, 0) as AdmissionStore.Decision)._tag, "Reserved")
    store.settle(foreign, { ...one, requests: 0 }, [{ dimension: "requests", drain: true }], 0)
    assert.deepStrictEqual(Effect.runSync(store.usage("p/m", limits, 0)), one)
    assert.strictEqual((store.tryReserve("p/m", limits, one, 60_000) as AdmissionStore.Decision)._tag, "Reserved")
  })
})

describe("AdmissionStore.share", () => {
  it("divides every budget of the key and its groups, at least one request each", () => {
    const limits: AdmissionStore.Limits = {
      windowMs: 30_000,
      requests: 10,
      tokens: 1_000,
      inputTokens: Infinity,
      outputTokens: 300,
      groups: [{ name: "g", requests: 3, tokens: 90, inputTokens: 40, outputTokens: Infinity }]
    }
    assert.deepStrictEqual(AdmissionStore.share(limits, 4), {
      windowMs: 30_000,
      requests: 2,
      tokens: 250,
      inputTokens: Infinity,
      outputTokens: 75,
      groups: [{ name: "g", requests: 1, tokens: 22.5, inputTokens: 10, outputTokens: Infinity }]
    })
    const alone = { ...limits, groups: undefined }
    assert.deepStrictEqual(AdmissionStore.share(alone, 1), alone)
  })
})

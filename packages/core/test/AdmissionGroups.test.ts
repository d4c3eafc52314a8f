import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Latch, Layer } from "effect"
import { TestClock } from "effect/testing"
import {
  Admission,
  AdmissionStore,
  LlmError,
  type LlmRequest,
  type LlmResponse,
  Resilience,
  TokenEstimator
} from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

/** Every request is estimated at 100 tokens (90 in, 10 out). */
const estimator: TokenEstimator.TokenEstimatorShape = {
  countText: (s) => s.length,
  estimate: () => ({ inputTokens: 90, outputTokens: 10 })
}

const request = (model: string): LlmRequest.LlmRequest => ({ model, messages: [{ role: "user", content: "hi" }] })

const answer = (model: string, usage: readonly [number, number]) =>
  ({
    text: "ok",
    finishReason: "stop",
    usage: { inputTokens: usage[0], outputTokens: usage[1] },
    provider: "azure",
    model
  }) as LlmResponse.LlmResponse

describe("Admission limit groups", () => {
  it.effect("deployments of 450 tokens each share a regional 300: the group binds, a refund admits a peer", () =>
    Effect.gen(function* () {
      const admission = yield* Admission.Admission
      const at: Record<string, number> = {}
      const call = (model: string, usage: readonly [number, number]) =>
        admission.run(
          request(model),
          `azure/${model}`,
          Effect.map(Clock.currentTimeMillis, (now) => {
            at[model] = now
            return answer(model, usage)
          }),
          (r) => r
        )
      // a uses 200 of the region (estimated 100 each, reported 100), b takes the third 100
      yield* call("a", [90, 10])
      yield* call("a", [90, 10])
      yield* call("b", [90, 10])
      // b's own budget (450) allows more, the region does not: b waits
      const waiting = yield* Effect.forkChild(call("b2", [90, 10]))
      yield* Effect.yieldNow
      assert.isUndefined(at.b2)
      assert.strictEqual((yield* admission.stats("azure/b2")).queued, 1)
      // the region frees when a's first reservations leave the window
      yield* TestClock.adjust("59 seconds")
      assert.isUndefined(at.b2)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(waiting)
      assert.strictEqual(at.b2, 60_000)
    }).pipe(
      Effect.provide(
        Admission.layerMemory({
          limitGroups: { eastus: { tokensPerMinute: 300 } },
          defaults: { tokensPerMinute: 450, groups: ["eastus"] }
        })
      ),
      Effect.provideService(TokenEstimator.TokenEstimator, estimator)
    )
  )

  it.effect("a refund in one key of a group admits the waiter of another key at once", () =>
    Effect.gen(function* () {
      const admission = yield* Admission.Admission
      const gate = yield* Latch.make(false)
      // a holds the whole group (3 x 100) while its calls run; the third fails before reaching the provider
      const hold = (fail: boolean) =>
        admission.run(
          request("a"),
          "azure/a",
          Effect.andThen(
            gate.await,
            fail
              ? Effect.fail(new LlmError.CircuitOpen({ key: "azure/a", retryAfterMs: 1 }))
              : Effect.succeed(answer("a", [90, 10]))
          ),
          (r) => r
        )
      yield* Effect.forkChild(hold(false))
      yield* Effect.forkChild(hold(false))
      const failing = yield* Effect.forkChild(Effect.exit(hold(true)))
      yield* Effect.yieldNow
      const b = yield* Effect.forkChild(
        admission.run(request("b"), "azure/b", Effect.succeed(answer("b", [90, 10])), (r) => r)
      )
      yield* Effect.yieldNow
      assert.strictEqual((yield* admission.stats("azure/b")).queued, 1)
      yield* gate.open
      yield* Fiber.join(failing)
      // the refusal refunded a's reservation in the group: b is admitted without waiting for the window
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      assert.strictEqual((yield* admission.stats("azure/b")).queued, 0)
      const exit = yield* Fiber.await(b)
      assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(yield* Clock.currentTimeMillis, 0)
    }).pipe(
      Effect.provide(
        Admission.layerMemory({
          limitGroups: { eastus: { tokensPerMinute: 300 } },
          keys: { "azure/a": { groups: ["eastus"] }, "azure/b": { groups: ["eastus"] } }
        })
      ),
      Effect.provideService(TokenEstimator.TokenEstimator, estimator)
    )
  )

  it.effect("a key naming an undeclared group is refused at construction, naming the field", () =>
    Effect.gen(function* () {
      const admissionError = yield* Effect.flip(
        Admission.make({ keys: { "azure/a": { groups: ["westus"] } } }).pipe(
          Effect.provide(AdmissionStore.layerMemory),
          Effect.scoped
        )
      )
      assert.include(admissionError.message, "no limit group named westus")
      const configError = yield* Effect.flip(
        Layer.build(
          Resilience.layer({ models: { "fake/m": { groups: ["westus"] } } }).pipe(
            Layer.provide(FakeProvider.layer({ name: "fake" }))
          )
        ).pipe(Effect.scoped)
      )
      assert.strictEqual(configError._tag, "InvalidConfig")
      assert.strictEqual((configError as Resilience.InvalidConfig).field, "models.fake/m.groups[0]")
    })
  )

  it.effect("a shared store that cannot answer under `reject` refuses the call (store-unavailable)", () =>
    Effect.gen(function* () {
      const admission = yield* Admission.Admission
      const error = yield* Effect.flip(
        admission.run(request("m"), "p/m", Effect.succeed(answer("m", [1, 1])), (r) => r)
      )
      assert.instanceOf(error, LlmError.AdmissionRejected)
      assert.strictEqual((error as LlmError.AdmissionRejected).reason, "store-unavailable")
    }).pipe(
      Effect.provide(
        Admission.layer({ defaults: { requestsPerMinute: 10 } }).pipe(
          Layer.provide(
            Layer.succeed(AdmissionStore.AdmissionStore, {
              ...AdmissionStore.makeMemory(),
              tryReserve: () => Effect.succeed({ _tag: "Unavailable" } as const)
            })
          )
        )
      ),
      Effect.provideService(TokenEstimator.TokenEstimator, estimator)
    )
  )

  it.effect("a configuration with `store` needs the store's layer", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Layer.build(
          Resilience.layer({ store: { url: "redis://127.0.0.1:6379" } }).pipe(
            Layer.provide(FakeProvider.layer({ name: "fake" }))
          )
        ).pipe(Effect.scoped)
      )
      assert.strictEqual((error as Resilience.InvalidConfig).field, "store")
    })
  )
})

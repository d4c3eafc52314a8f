import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Metric, Random, Stream } from "effect"
import { TestClock } from "effect/testing"
import { FallbackPlan, LlmError, type LlmProvider, OutputMonitor, QualityBreaker } from "@llm-resilience/core"

const minute = 60_000
const words = "the invoice lists each line with its price and taxes apply after the discount on every order".split(" ")
const sentence = (i: number) =>
  Array.from({ length: 12 }, (_, j) => words[(i * 7 + j * 13 + ((i * j) % 5)) % words.length]).join(" ") + "."

/** A provider whose answers are healthy, or (while `broken()`) one in five carries a Thai word. */
const provider = (name: string, broken: () => boolean): LlmProvider.LlmProvider["Service"] => {
  let n = 0
  return {
    name,
    complete: (request) =>
      Effect.sync(() => {
        const i = n++
        const text = broken() && i % 5 === 0 ? sentence(i).replace("price", "ราคา") : sentence(i)
        return {
          text,
          finishReason: "stop" as const,
          usage: { inputTokens: 5, outputTokens: 20 },
          provider: name,
          model: request.model
        }
      }),
    stream: () => {
      throw new Error("not used")
    }
  }
}

const request = { model: "m", messages: [{ role: "user" as const, content: "Total?" }] }

describe("QualityBreaker", () => {
  it.effect("moves the path's traffic to the next step at the first call after a drift, and back after recovery", () =>
    Effect.gen(function* () {
      let broken = false
      const monitor = yield* OutputMonitor.make({
        window: "10 minutes",
        reference: "30 minutes",
        minSamples: 20,
        permutations: 50
      })
      const circuit = yield* QualityBreaker.make(monitor, { probeRate: 0.25 })
      const events: Array<OutputMonitor.DriftEvent> = []
      yield* Effect.forkChild(Stream.runForEach(monitor.events, (e) => Effect.sync(() => events.push(e))))
      const observed = monitor.policy()
      const plan = yield* FallbackPlan.make(
        [
          FallbackPlan.step(
            provider("primary", () => broken),
            { model: "m", policy: observed }
          ),
          FallbackPlan.step(
            provider("secondary", () => false),
            { model: "m", policy: observed }
          )
        ],
        { circuit }
      )
      const served: Array<{ at: number; by: string }> = []
      const minutes = (n: number) =>
        Effect.gen(function* () {
          for (let m = 0; m < n; m++) {
            for (let i = 0; i < 40; i++) {
              const r = yield* plan.complete(request)
              served.push({ at: yield* Clock.currentTimeMillis, by: r.provider })
            }
            yield* TestClock.adjust(minute)
          }
        })
      yield* minutes(45)
      assert.isTrue(served.every((s) => s.by === "primary"))
      broken = true
      yield* minutes(10)
      const drifted = yield* monitor.drifted("primary/m")
      assert.deepStrictEqual(drifted, ["mixed_script"])
      const brokenFrom = 45 * minute
      const firstMoved = served.find((s) => s.by === "secondary")!
      // moved at the detection itself: the next call goes to the fallback (the goal is within 5 minutes)
      const detected = events.find((e) => e._tag === "DriftDetected")!
      assert.isAbove(detected.at, brokenFrom)
      assert.strictEqual(firstMoved.at, detected.at)
      const afterMove = served.slice(served.indexOf(firstMoved))
      const probes = afterMove.filter((s) => s.by === "primary").length / afterMove.length
      assert.closeTo(probes, 0.25, 0.08)
      const diverted = yield* Metric.value(Metric.withAttributes(QualityBreaker.diverted, { key: "primary/m" }))
      assert.strictEqual(diverted.count, afterMove.filter((s) => s.by === "secondary").length)

      // fixed: the probes' outputs clear the window, the drift ends and the traffic comes back
      broken = false
      yield* minutes(20)
      assert.deepStrictEqual(yield* monitor.drifted("primary/m"), [])
      assert.isTrue(served.slice(-40).every((s) => s.by === "primary"))
    }).pipe(Random.withSeed(3), Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("the wrapped circuit is consulted first; without a drift the call goes through", () =>
    Effect.gen(function* () {
      const monitor = yield* OutputMonitor.make()
      const open = yield* QualityBreaker.make(monitor, {
        circuit: { check: (key) => Effect.fail(new LlmError.CircuitOpen({ key, retryAfterMs: 5 })) }
      })
      const failed = yield* Effect.exit(open.check("a/b"))
      assert.isTrue(Exit.isFailure(failed))
      const closed = yield* QualityBreaker.make(monitor, { circuit: { check: () => Effect.void } })
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(closed.check("a/b"))))
      const invalid = yield* Effect.exit(QualityBreaker.make(monitor, { probeRate: 2 }))
      assert.include(String(Exit.isFailure(invalid) ? invalid.cause : ""), "probeRate")
    })
  )
})

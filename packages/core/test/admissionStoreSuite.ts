/**
 * The conformance tests of an admission store, run on every store: in memory here, on Redis (Lua scripts on
 * its own redis-server) by @llm-resilience/redis. Time is passed explicitly (`nowMs`), so the tests are exact
 * for both.
 */
import { assert, it } from "@effect/vitest"
import { Effect, type Scope } from "effect"
import { AdmissionStore } from "@llm-resilience/core"

type Cost = AdmissionStore.Cost

/** Builds a fresh, empty store for one test. */
export type MakeStore = () => Effect.Effect<AdmissionStore.AdmissionStoreShape, unknown, Scope.Scope>

const INF = Infinity
const W = 60_000

const cost = (requests: number, inputTokens = 0, outputTokens = 0): Cost => ({
  requests,
  tokens: inputTokens + outputTokens,
  inputTokens,
  outputTokens
})

const limits = (
  l: Partial<Cost>,
  groups?: ReadonlyArray<AdmissionStore.Group>,
  windowMs = W
): AdmissionStore.Limits => ({
  windowMs,
  requests: l.requests ?? INF,
  tokens: l.tokens ?? INF,
  inputTokens: l.inputTokens ?? INF,
  outputTokens: l.outputTokens ?? INF,
  groups
})

const group = (name: string, l: Partial<Cost>): AdmissionStore.Group => ({ ...limits(l), name })

const run = <A>(a: A | Effect.Effect<A>): Effect.Effect<A> => (Effect.isEffect(a) ? a : Effect.succeed(a))

/** The store with its answers as effects, whatever its kind. */
const driver = (store: AdmissionStore.AdmissionStoreShape) => ({
  reserve: (key: string, l: AdmissionStore.Limits, c: Cost, now: number, within?: Cost) =>
    run(store.tryReserve(key, l, c, now, within)),
  reserved: (key: string, l: AdmissionStore.Limits, c: Cost, now: number) =>
    Effect.flatMap(run(store.tryReserve(key, l, c, now)), (d) =>
      d._tag === "Reserved" ? Effect.succeed(d.reservation) : Effect.die(`expected Reserved at ${now}, got ${d._tag}`)
    ),
  settle: (
    r: AdmissionStore.Reservation,
    actual: Cost | undefined,
    now: number,
    corrections: ReadonlyArray<AdmissionStore.Correction> = []
  ) => run(store.settle(r, actual, corrections, now)),
  correct: store.correct,
  usage: store.usage
})

const waitOf = (d: AdmissionStore.Decision) => {
  if (d._tag !== "Wait") throw new Error(`expected Wait, got ${d._tag}`)
  return d
}

/** Registers the suite under the current `describe`. */
export const admissionStoreSuite = (make: MakeStore): void => {
  const test = (name: string, body: (s: ReturnType<typeof driver>) => Effect.Effect<void, unknown>) =>
    it.effect(name, () => Effect.scoped(Effect.flatMap(make(), (store) => body(driver(store)))))

  test("reserves until a budget is spent, then says when the window frees it", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 3 })
      yield* s.reserved("p/m", l, cost(1), 1_000)
      yield* s.reserved("p/m", l, cost(1), 5_000)
      yield* s.reserved("p/m", l, cost(1), 5_000)
      const d = waitOf(yield* s.reserve("p/m", l, cost(1), 6_000))
      // the first bucket (its latest reservation at 1 000) leaves the window at 61 000
      assert.strictEqual(d.availableAtMs, 61_000)
      assert.deepStrictEqual(d.free, { requests: 0, tokens: INF, inputTokens: INF, outputTokens: INF })
      assert.deepStrictEqual(d.slack, { requests: 0, tokens: INF, inputTokens: INF, outputTokens: INF })
      assert.strictEqual((yield* s.reserve("p/m", l, cost(1), 60_999))._tag, "Wait")
      assert.strictEqual((yield* s.reserve("p/m", l, cost(1), 61_000))._tag, "Reserved")
      assert.deepStrictEqual(yield* s.usage("p/m", l, 61_000), cost(3))
      // keys are independent
      assert.strictEqual((yield* s.reserve("p/other", l, cost(1), 61_000))._tag, "Reserved")
    }))

  test("reservations close together share a bucket that counts until its latest one leaves", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 2 })
      yield* s.reserved("k/m", l, cost(1), 0)
      yield* s.reserved("k/m", l, cost(1), 900) // within windowMs / 60 = 1 000 of the first: same bucket
      const d = waitOf(yield* s.reserve("k/m", l, cost(1), 1_000))
      assert.strictEqual(d.availableAtMs, 60_900)
    }))

  test("takes every budget or none: a token budget that does not allow it leaves the request budget alone", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 10, tokens: 1_000, inputTokens: 700, outputTokens: 400 })
      yield* s.reserved("a/b", l, cost(1, 500, 300), 0)
      const d = waitOf(yield* s.reserve("a/b", l, cost(1, 300, 50), 10_000)) // input 800 > 700, tokens 1 150
      assert.strictEqual(d.availableAtMs, 60_000)
      assert.deepStrictEqual(d.free, { requests: 9, tokens: 200, inputTokens: 200, outputTokens: 100 })
      assert.deepStrictEqual(yield* s.usage("a/b", l, 10_000), cost(1, 500, 300))
      const out = waitOf(yield* s.reserve("a/b", l, cost(1, 10, 150), 10_000)) // output 450 > 400
      assert.strictEqual(out.availableAtMs, 60_000)
      assert.strictEqual((yield* s.reserve("a/b", l, cost(1, 100, 100), 10_000))._tag, "Reserved")
    }))

  test("a blocked head leaves slack for backfill; a backfill reserves only within it", (s) =>
    Effect.gen(function* () {
      const l = limits({ tokens: 1_000 })
      yield* s.reserved("h/m", l, cost(1, 400), 0)
      yield* s.reserved("h/m", l, cost(1, 400), 30_000)
      // a head of 500 fits once the first 400 leave at 60 000; until then 100 are free, and taking 100 now
      // still leaves room for the head then (1 000 - 500 - 400)
      const d = waitOf(yield* s.reserve("h/m", l, cost(1, 500), 40_000))
      assert.strictEqual(d.availableAtMs, 60_000)
      assert.strictEqual(d.slack.tokens, 100)
      assert.strictEqual(d.free.tokens, 200)
      const tooBig = yield* s.reserve("h/m", l, cost(1, 150), 40_000, d.slack)
      assert.strictEqual(tooBig._tag, "Wait")
      assert.ok(Number.isNaN(waitOf(tooBig).availableAtMs))
      assert.strictEqual((yield* s.reserve("h/m", l, cost(1, 100), 40_000, d.slack))._tag, "Reserved")
      assert.strictEqual((yield* s.usage("h/m", l, 40_000)).tokens, 900)
    }))

  test("settling replaces the estimate with the actual usage; a refund frees the budget at once", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 2, tokens: 1_000 })
      const a = yield* s.reserved("s/m", l, cost(1, 300, 500), 0)
      const b = yield* s.reserved("s/m", l, cost(1, 100, 100), 10)
      yield* s.settle(a, cost(1, 300, 20), 100)
      assert.deepStrictEqual(yield* s.usage("s/m", l, 100), cost(2, 400, 120))
      yield* s.settle(b, cost(0), 200) // refund
      assert.deepStrictEqual(yield* s.usage("s/m", l, 200), cost(1, 300, 20))
      // settling again is relative to the last settlement
      yield* s.settle(a, cost(1, 300, 40), 300)
      assert.deepStrictEqual(yield* s.usage("s/m", l, 300), cost(1, 300, 40))
      // a reservation that left the window is not settled into the next one
      yield* s.reserved("s/m", l, cost(1, 10), 60_010)
      yield* s.settle(a, cost(0), 60_011)
      assert.deepStrictEqual(yield* s.usage("s/m", l, 60_011), cost(1, 10))
    }))

  test("a 429 drains the budget it names until its reset; settling keeps the estimate", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 100 })
      const r = yield* s.reserved("q/m", l, cost(1), 0)
      yield* s.settle(r, undefined, 1_000, [{ dimension: "requests", drain: true, resetAfterMs: 5_000 }])
      assert.deepStrictEqual(yield* s.usage("q/m", l, 1_000), cost(1))
      const d = waitOf(yield* s.reserve("q/m", l, cost(1), 2_000))
      assert.strictEqual(d.availableAtMs, 6_000)
      assert.strictEqual((yield* s.reserve("q/m", l, cost(1), 6_000))._tag, "Reserved")
    }))

  test("provider feedback: remaining below the view is a debit until the reset, a lower limit caps", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 10, tokens: 10_000 })
      const r = yield* s.reserved("g/m", l, cost(1, 1_000), 0)
      yield* s.reserved("g/m", l, cost(1, 1_000), 500)
      // when r was sent the provider had 4 000 left where we saw 9 000 (the usage at r, not now): 5 000 used
      // by others until 20 000
      yield* s.settle(r, undefined, 1_000, [{ dimension: "tokens", remaining: 4_000, resetAfterMs: 19_000 }])
      // usage 2 000 + debit 5 000: 3 000 fit, 3 001 wait until the debit ends
      const w = waitOf(yield* s.reserve("g/m", l, cost(1, 3_001), 2_000))
      assert.strictEqual(w.availableAtMs, 20_000)
      assert.strictEqual(w.free.tokens, 3_000)
      assert.strictEqual((yield* s.reserve("g/m", l, cost(1, 3_000), 2_000))._tag, "Reserved")
      assert.deepStrictEqual(yield* s.usage("g/m", l, 2_000), cost(3, 5_000)) // debits are not usage
      // a remaining at or above the view clears the debit
      yield* s.correct("g/m", l, [{ dimension: "tokens", remaining: 9_000 }], 3_000)
      assert.strictEqual((yield* s.reserve("g/m", l, cost(1, 4_000), 3_000))._tag, "Reserved")
      // the provider's lower limit caps the configured one
      yield* s.correct("g/m", l, [{ dimension: "requests", limit: 4 }], 4_000)
      const capped = waitOf(yield* s.reserve("g/m", l, cost(1), 4_000))
      assert.strictEqual(capped.free.requests, 0)
      assert.strictEqual(capped.availableAtMs, 60_500)
    }))

  test("a key in a limit group draws on both, atomically; settling frees both", (s) =>
    Effect.gen(function* () {
      // two deployments of 450 tokens each share a regional 300
      const region = group("eastus", { tokens: 300 })
      const a = limits({ tokens: 450 }, [region])
      const b = limits({ tokens: 450 }, [region])
      const ra = yield* s.reserved("azure/a", a, cost(1, 200), 0)
      yield* s.reserved("azure/b", b, cost(1, 100), 1_000)
      const d = waitOf(yield* s.reserve("azure/b", b, cost(1, 50), 2_000))
      assert.strictEqual(d.availableAtMs, 60_000) // the group frees when the first 200 leave
      assert.strictEqual(d.free.tokens, 0)
      // the key's own budget was not taken by the refused call
      assert.deepStrictEqual(yield* s.usage("azure/b", b, 2_000), cost(1, 100))
      // a key outside the group is not limited by it
      assert.strictEqual((yield* s.reserve("azure/c", limits({ tokens: 450 }), cost(1, 400), 2_000))._tag, "Reserved")
      yield* s.settle(ra, cost(1, 150), 3_000)
      assert.strictEqual((yield* s.reserve("azure/b", b, cost(1, 50), 3_000))._tag, "Reserved")
      assert.strictEqual((yield* s.reserve("azure/a", a, cost(1, 1), 3_000))._tag, "Wait")
      // the key's own limit still binds below the group's
      const own = limits({ tokens: 100 }, [group("wide", { tokens: 1_000 })])
      yield* s.reserved("azure/d", own, cost(1, 100), 0)
      const w = waitOf(yield* s.reserve("azure/d", own, cost(1, 1), 0))
      assert.strictEqual(w.free.tokens, 0)
    }))

  test("a reservation at the bucket's span opens a new bucket; one from an earlier clock never shortens the last", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 2 })
      yield* s.reserved("b/m", l, cost(1), 0)
      yield* s.reserved("b/m", l, cost(1), 1_000) // windowMs / 60 after the first: a bucket of its own
      assert.strictEqual(waitOf(yield* s.reserve("b/m", l, cost(1), 1_500)).availableAtMs, 60_000)
      // a caller whose clock reads earlier than the last reservation gets a bucket of its own: the later
      // reservation still counts until it leaves the window
      yield* s.reserved("o/m", l, cost(1), 5_000)
      yield* s.reserved("o/m", l, cost(1), 4_000)
      assert.strictEqual(waitOf(yield* s.reserve("o/m", l, cost(1), 6_000)).availableAtMs, 65_000)
    }))

  test("a cost above a provider-lowered limit looks again after one window; a limit of 0 is ignored", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 5, tokens: 1_000 })
      yield* s.correct("c/m", l, [{ dimension: "tokens", limit: 300 }], 0)
      const d = waitOf(yield* s.reserve("c/m", l, cost(1, 500), 1_000))
      assert.strictEqual(d.availableAtMs, 61_000)
      assert.strictEqual(d.free.tokens, 300)
      assert.strictEqual((yield* s.reserve("c/m", l, cost(1, 300), 1_000))._tag, "Reserved")
      // a reported limit of 0 (or none) says nothing about the budget
      yield* s.correct("z/m", l, [{ dimension: "requests", limit: 0 }], 0)
      assert.strictEqual((yield* s.reserve("z/m", l, cost(1), 0))._tag, "Reserved")
    }))

  test("a debit that outlasts the window frees the budget when the window frees it", (s) =>
    Effect.gen(function* () {
      const l = limits({ tokens: 1_000 })
      yield* s.reserved("d/m", l, cost(1, 600), 0)
      // the provider has 100 left where we see 400: a debit of 300 until 80 000
      yield* s.correct("d/m", l, [{ dimension: "tokens", remaining: 100, resetAfterMs: 30_000 }], 50_000)
      const d = waitOf(yield* s.reserve("d/m", l, cost(1, 200), 51_000))
      // 600 leave at 60 000, and 300 debit + 200 fit in 1 000 then, before the debit ends
      assert.strictEqual(d.availableAtMs, 60_000)
      assert.strictEqual(d.free.tokens, 100)
      assert.strictEqual(d.slack.tokens, 500)
      assert.strictEqual((yield* s.reserve("d/m", l, cost(1, 200), 59_999))._tag, "Wait")
      assert.strictEqual((yield* s.reserve("d/m", l, cost(1, 800), 60_000))._tag, "Wait")
      assert.strictEqual((yield* s.reserve("d/m", l, cost(1, 700), 60_000))._tag, "Reserved")
      // a limit alone leaves the debit; a remaining exactly at the local view clears it
      yield* s.correct("e/m", l, [{ dimension: "tokens", remaining: 100, resetAfterMs: 30_000 }], 0)
      yield* s.correct("e/m", l, [{ dimension: "tokens", limit: 2_000 }], 500)
      assert.strictEqual(waitOf(yield* s.reserve("e/m", l, cost(1, 101), 500)).availableAtMs, 30_000)
      yield* s.correct("e/m", l, [{ dimension: "tokens", remaining: 1_000 }], 1_000)
      assert.strictEqual((yield* s.reserve("e/m", l, cost(1, 1_000), 1_000))._tag, "Reserved")
      // without a reset the debit lasts one window
      yield* s.correct("f/m", l, [{ dimension: "tokens", remaining: 400 }], 1_000)
      const f = waitOf(yield* s.reserve("f/m", l, cost(1, 401), 2_000))
      assert.strictEqual(f.availableAtMs, 61_000)
      assert.strictEqual(f.free.tokens, 400)
    }))

  test("a drain lasts until its latest reset, one window without one, and overrides a remaining", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 10 })
      yield* s.correct("r/m", l, [{ dimension: "requests", drain: true, resetAfterMs: 10_000 }], 0)
      // a later drain with an earlier reset does not shorten it
      yield* s.correct("r/m", l, [{ dimension: "requests", drain: true, resetAfterMs: 1_000 }], 2_000)
      assert.strictEqual(waitOf(yield* s.reserve("r/m", l, cost(1), 3_000)).availableAtMs, 10_000)
      assert.strictEqual((yield* s.reserve("r/m", l, cost(1), 10_000))._tag, "Reserved")
      yield* s.correct("w/m", l, [{ dimension: "requests", drain: true }], 1_000)
      const w = waitOf(yield* s.reserve("w/m", l, cost(1), 2_000))
      assert.strictEqual(w.availableAtMs, 61_000)
      // nothing fits now, whatever it costs: every store says so with -Infinity (not a large finite number)
      assert.strictEqual(w.free.requests, -Infinity)
      // a drain that also reports a remaining still takes everything until the reset
      yield* s.reserved("x/m", l, cost(1), 0)
      yield* s.correct("x/m", l, [{ dimension: "requests", drain: true, remaining: 0, resetAfterMs: 120_000 }], 1_000)
      assert.strictEqual(waitOf(yield* s.reserve("x/m", l, cost(1), 2_000)).availableAtMs, 121_000)
    }))

  test("a drained budget does not hold a request that costs nothing in it", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 1, inputTokens: 1_000 })
      yield* s.correct("n/m", l, [{ dimension: "inputTokens", drain: true, resetAfterMs: 100_000 }], 0)
      assert.strictEqual((yield* s.reserve("n/m", l, cost(1, 0, 50), 0))._tag, "Reserved")
      // blocked by its requests, it waits for them only
      const w = waitOf(yield* s.reserve("n/m", l, cost(1, 0, 50), 1_000))
      assert.strictEqual(w.availableAtMs, 60_000)
      // the drain outlasts that moment: no input token is free now or then
      assert.strictEqual(w.free.inputTokens, -Infinity)
      assert.strictEqual(w.slack.inputTokens, -Infinity)
      assert.strictEqual(w.free.outputTokens, Infinity)
      assert.strictEqual(waitOf(yield* s.reserve("n/m", l, cost(1, 10, 50), 1_000)).availableAtMs, 100_000)
    }))

  test("a drained budget without a configured limit has nothing free either (not NaN, not 0)", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 1 }) // tokens not limited
      yield* s.correct("u/m", l, [{ dimension: "tokens", drain: true, resetAfterMs: 100_000 }], 0)
      // the drain of the unlimited tokens blocks a call that needs tokens until its reset
      const w = waitOf(yield* s.reserve("u/m", l, cost(1, 10), 1_000))
      assert.strictEqual(w.availableAtMs, 100_000)
      assert.strictEqual(w.free.tokens, -Infinity)
      assert.strictEqual(w.free.requests, 1)
      assert.strictEqual(w.free.inputTokens, Infinity)
    }))

  test("a backfill attempt reserves only what fits both the store and every budget of its slack", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 10, tokens: 1_000, inputTokens: 1_000, outputTokens: 1_000 })
      const wide = { requests: 5, tokens: 500, inputTokens: 500, outputTokens: 500 }
      for (const [name, within] of [
        ["requests", { ...wide, requests: 0 }],
        ["tokens", { ...wide, tokens: 99 }],
        ["inputTokens", { ...wide, inputTokens: 49 }],
        ["outputTokens", { ...wide, outputTokens: 49 }]
      ] as const) {
        const d = waitOf(yield* s.reserve(`v/${name}`, l, cost(1, 50, 50), 0, within))
        assert.ok(Number.isNaN(d.availableAtMs), name)
        assert.deepStrictEqual(yield* s.usage(`v/${name}`, l, 0), cost(0), name)
      }
      // within its slack but not within the store's budget: not reserved either
      yield* s.reserved("v/full", l, cost(1, 500, 500), 0)
      const d = waitOf(yield* s.reserve("v/full", l, cost(1, 50, 50), 0, wide))
      assert.ok(Number.isNaN(d.availableAtMs))
      assert.strictEqual((yield* s.reserve("v/ok", l, cost(1, 50, 50), 0, wide))._tag, "Reserved")
      // a cost exactly its slack fits
      assert.strictEqual((yield* s.reserve("v/exact", l, cost(1, 50, 50), 0, cost(1, 50, 50)))._tag, "Reserved")
    }))

  test("slack and free are the least any log of the key and its groups leaves", (s) =>
    Effect.gen(function* () {
      const l = limits({ tokens: 1_000, outputTokens: 600 }, [group("g", { tokens: 800, outputTokens: 2_000 })])
      yield* s.reserved("s/a", l, cost(1, 100, 300), 0)
      yield* s.reserved("s/b", limits({}, [group("g", { tokens: 800 })]), cost(1, 200), 30_000)
      const d = waitOf(yield* s.reserve("s/a", l, cost(1, 100, 300), 40_000))
      // the group holds 600 of 800 until 60 000: the head (400) fits then, with the 200 reserved at 30 000
      assert.strictEqual(d.availableAtMs, 60_000)
      assert.deepStrictEqual(d.free, { requests: INF, tokens: 200, inputTokens: INF, outputTokens: 300 })
      // at 60 000: the key's output 600 - 300 (head) = 300, the group's tokens 800 - 400 - 200 = 200
      assert.deepStrictEqual(d.slack, { requests: INF, tokens: 200, inputTokens: INF, outputTokens: 300 })
    }))

  test("once the window is empty its usage is exactly zero", (s) =>
    Effect.gen(function* () {
      const l = limits({ tokens: 1 })
      yield* s.reserved("f/m", l, { requests: 1, tokens: 0.3, inputTokens: 0.1, outputTokens: 0.2 }, 0)
      yield* s.reserved("f/m", l, { requests: 1, tokens: 0.6, inputTokens: 0.2, outputTokens: 0.4 }, 2_000)
      // (sums of fractions drift in the last bit while the window holds some)
      const u = yield* s.usage("f/m", l, 61_000)
      for (const [d, x] of [
        ["requests", 1],
        ["tokens", 0.6],
        ["inputTokens", 0.2],
        ["outputTokens", 0.4]
      ] as const) {
        assert.closeTo(u[d], x, 1e-9, d)
      }
      assert.deepStrictEqual(yield* s.usage("f/m", l, 62_000), cost(0))
    }))

  test("the time a request fits is the latest over its budgets, counting every bucket it needs", (s) =>
    Effect.gen(function* () {
      const l = limits({ requests: 1, tokens: 1_000 })
      yield* s.reserved("t/m", l, cost(0, 600), 0)
      yield* s.reserved("t/m", l, cost(1), 10_000)
      // requests free at 70 000, tokens at 60 000
      assert.strictEqual(waitOf(yield* s.reserve("t/m", l, cost(1, 500), 20_000)).availableAtMs, 70_000)
      const t = limits({ tokens: 1_000 })
      yield* s.reserved("u/m", t, cost(1, 400), 0)
      yield* s.reserved("u/m", t, cost(1, 400), 10_000)
      // the whole budget: both buckets must leave
      assert.strictEqual(waitOf(yield* s.reserve("u/m", t, cost(1, 1_000), 20_000)).availableAtMs, 70_000)
      const h = limits({ tokens: 500 })
      yield* s.reserved("h/m", h, cost(1, 200), 0)
      assert.strictEqual(waitOf(yield* s.reserve("h/m", h, cost(1, 500), 1_000)).availableAtMs, 60_000)
    }))

  test("a debit that ends before the window frees waits for the window; a remaining above the view adds nothing", (s) =>
    Effect.gen(function* () {
      const l = limits({ tokens: 1_000 })
      yield* s.reserved("a/m", l, cost(1, 800), 0)
      yield* s.correct("a/m", l, [{ dimension: "tokens", remaining: 100, resetAfterMs: 9_000 }], 1_000)
      assert.strictEqual(waitOf(yield* s.reserve("a/m", l, cost(1, 300), 2_000)).availableAtMs, 60_000)
      yield* s.reserved("b/m", l, cost(1, 500), 0)
      yield* s.correct("b/m", l, [{ dimension: "tokens", remaining: 1_000 }], 1_000)
      assert.strictEqual(waitOf(yield* s.reserve("b/m", l, cost(1, 600), 1_000)).availableAtMs, 60_000)
      // feedback compares with the usage of the current window
      yield* s.reserved("c/m", l, cost(1, 600), 0)
      yield* s.correct("c/m", l, [{ dimension: "tokens", remaining: 500, resetAfterMs: 60_000 }], 61_000)
      assert.deepStrictEqual(yield* s.usage("c/m", l, 61_000), cost(0))
      assert.strictEqual(waitOf(yield* s.reserve("c/m", l, cost(1, 600), 61_000)).availableAtMs, 121_000)
    }))

  test("a settled reservation leaves the window with what it was settled to", (s) =>
    Effect.gen(function* () {
      const l = limits({ tokens: 1_000 })
      const a = yield* s.reserved("r/m", l, cost(1, 500), 0)
      yield* s.reserved("r/m", l, cost(1, 100), 30_000)
      yield* s.settle(a, cost(1, 200), 1_000)
      assert.deepStrictEqual(yield* s.usage("r/m", l, 60_000), cost(1, 100))
    }))
}

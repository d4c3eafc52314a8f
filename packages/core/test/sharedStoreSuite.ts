/**
 * The conformance tests of the shared-state stores (breaker, retry budget, spend, agent turns), run on every
 * implementation: in memory (TestClock) by core, on Redis (live clock, its own redis-server) by
 * @llm-resilience/redis. Two stage instances sharing one store stand for two processes sharing Redis.
 */
import { assert, type it } from "@effect/vitest"
import { Clock, Deferred, Effect, Fiber } from "effect"
import { AgentGuard, CircuitBreaker, LlmError, PriceTable, RetryBudget, SpendGuard } from "@llm-resilience/core"

export interface Stores {
  readonly breaker: CircuitBreaker.Store
  readonly retry: RetryBudget.Store
  readonly spend: SpendGuard.Store
  readonly turns: AgentGuard.Store
}

export interface Harness {
  readonly name: string
  readonly test: typeof it.effect
  /** Runs a test with fresh stores (a fresh key prefix on Redis). */
  readonly withStores: <E>(f: (stores: Stores) => Effect.Effect<void, E>) => Effect.Effect<void, unknown>
  /** Lets `ms` of virtual or real time pass. */
  readonly sleep: (ms: number) => Effect.Effect<void>
}

const KEY = "openai/gpt-5.4-mini"
const down = Effect.fail(new LlmError.ServerError({ message: "down", status: 503 }))

/** A call that counts its runs. */
const counted = <A, E>(self: Effect.Effect<A, E>) => {
  const state = { runs: 0 }
  return { state, call: Effect.suspend(() => (state.runs++, self)) }
}

export const sharedStoreSuite = (h: Harness) => {
  const breakers = (store: CircuitBreaker.Store, options: CircuitBreaker.Options = {}) =>
    Effect.all([CircuitBreaker.make({ store, ...options }), CircuitBreaker.make({ store, ...options })])

  h.test(`${h.name}: breaker: A opens; B's next call is rejected without reaching the provider`, () =>
    h.withStores((s) =>
      Effect.gen(function* () {
        const [a, b] = yield* breakers(s.breaker, { consecutiveFailures: 2, openDuration: "2 seconds" })
        for (let i = 0; i < 2; i++) yield* Effect.exit(down.pipe(a.protect(KEY)))
        const { state, call } = counted(Effect.succeed("ok"))
        const rejected = yield* Effect.flip(call.pipe(b.protect(KEY)))
        assert.strictEqual(rejected._tag, "CircuitOpen")
        assert.isAbove((rejected as LlmError.CircuitOpen).retryAfterMs ?? 0, 1_000)
        assert.strictEqual(state.runs, 0)
        assert.strictEqual((yield* b.status(KEY))._tag, "Open")
      })
    )
  )

  h.test(`${h.name}: breaker: probes across instances respect the probe limit; a close is shared`, () =>
    h.withStores((s) =>
      Effect.gen(function* () {
        const options: CircuitBreaker.Options = {
          consecutiveFailures: 1,
          openDuration: "300 millis",
          halfOpenProbes: 2,
          probeTimeout: "5 seconds"
        }
        const [a, b] = yield* breakers(s.breaker, options)
        yield* Effect.exit(down.pipe(a.protect(KEY)))
        yield* h.sleep(350)
        const gates = [yield* Deferred.make<void>(), yield* Deferred.make<void>()]
        const probe = (i: number) => Effect.as(Deferred.await(gates[i]), "probed")
        const p1 = yield* Effect.forkChild(probe(0).pipe(a.protect(KEY)), { startImmediately: true })
        const p2 = yield* Effect.forkChild(probe(1).pipe(b.protect(KEY)), { startImmediately: true })
        yield* h.sleep(50)
        // both probes are leased: a third caller, at either instance, is rejected
        const { state, call } = counted(Effect.succeed("ok"))
        for (const breaker of [a, b])
          assert.strictEqual((yield* Effect.flip(call.pipe(breaker.protect(KEY))))._tag, "CircuitOpen")
        assert.strictEqual(state.runs, 0)
        yield* Deferred.succeed(gates[0], undefined)
        yield* Fiber.join(p1)
        assert.strictEqual((yield* Effect.flip(call.pipe(b.protect(KEY))))._tag, "CircuitOpen") // one probe left
        yield* Deferred.succeed(gates[1], undefined)
        yield* Fiber.join(p2)
        // closed for both, also the instance whose own probe did not close it
        assert.strictEqual(yield* call.pipe(a.protect(KEY)), "ok")
        assert.strictEqual(yield* call.pipe(b.protect(KEY)), "ok")
        assert.strictEqual((yield* a.status(KEY))._tag, "Closed")
      })
    )
  )

  h.test(`${h.name}: breaker: a hung probe's lease expires and the circuit reopens`, () =>
    h.withStores((s) =>
      Effect.gen(function* () {
        const options: CircuitBreaker.Options = {
          consecutiveFailures: 1,
          openDuration: "300 millis",
          probeTimeout: "300 millis"
        }
        const [a, b] = yield* breakers(s.breaker, options)
        yield* Effect.exit(down.pipe(a.protect(KEY)))
        yield* h.sleep(350)
        const hung = yield* Effect.forkChild(Effect.never.pipe(a.protect(KEY)), { startImmediately: true })
        yield* h.sleep(50)
        const { state, call } = counted(Effect.succeed("ok"))
        assert.strictEqual((yield* Effect.flip(call.pipe(b.protect(KEY))))._tag, "CircuitOpen")
        yield* h.sleep(300) // the lease is gone: the next caller finds the circuit reopened, not wedged
        assert.strictEqual((yield* Effect.flip(call.pipe(b.protect(KEY))))._tag, "CircuitOpen")
        assert.strictEqual((yield* b.status(KEY))._tag, "Open")
        yield* h.sleep(650) // the second opening has passed: B probes and closes
        assert.strictEqual(yield* call.pipe(b.protect(KEY)), "ok")
        assert.strictEqual(state.runs, 1)
        yield* Fiber.interrupt(hung)
      })
    )
  )

  h.test(`${h.name}: spend: concurrent calls overshoot a budget by at most the estimates in flight`, () =>
    h.withStores((s) =>
      Effect.gen(function* () {
        const prices = { m: { inputPerMillion: 1_000, outputPerMillion: 1_000 } }
        const budgets = [{ scope: "conversation" as const, limitUsd: 1 }]
        const guards = yield* Effect.all([
          SpendGuard.make({ prices, budgets, store: s.spend }),
          SpendGuard.make({ prices, budgets, store: s.spend })
        ])
        // each call's estimate: its input (about 8 tokens here) plus 200 output tokens at $1,000/M: ~$0.21
        const request = {
          model: "m",
          messages: [{ role: "user" as const, content: "hi" }],
          maxOutputTokens: 200,
          metadata: { conversationId: "c1" }
        }
        const response = {
          text: "x",
          model: "m",
          provider: "p",
          finishReason: "stop" as const,
          usage: { inputTokens: 10, outputTokens: 200 }
        }
        let admitted = 0
        const call = (i: number) =>
          Effect.exit(
            Effect.as(h.sleep(100), response).pipe(
              Effect.tap(() => Effect.sync(() => admitted++)),
              guards[i % 2].protect("p/m", request)
            )
          )
        const exits = yield* Effect.all(
          Array.from({ length: 20 }, (_, i) => call(i)),
          { concurrency: "unbounded" }
        )
        const spent = yield* guards[0].spent("conversation:c1")
        const cost = PriceTable.cost(prices.m, response.usage)
        assert.closeTo(spent, admitted * cost, 1e-9)
        // 20 concurrent calls, but only those whose estimates fitted were let through: one estimate of overshoot
        assert.isAtMost(admitted, 5)
        assert.isAtLeast(spent, 0.8)
        assert.isAtMost(spent, 1 + 0.25)
        assert.strictEqual(exits.filter((e) => e._tag === "Failure").length, 20 - admitted)
        // the budget is used up for every instance now
        for (const g of guards)
          assert.strictEqual((yield* Effect.flip(g.check({ key: "p/m", conversationId: "c1" })))._tag, "BudgetExceeded")
      })
    )
  )

  h.test(`${h.name}: spend: a reservation never settled stops counting after its time-to-live`, () =>
    h.withStores((s) =>
      Effect.gen(function* () {
        const accounts = [{ name: "tenant:t", limitUsd: 1, windowMs: undefined }]
        const reserve = (id: string) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            const r = s.spend.reserve(id, accounts, 1, now)
            return Effect.isEffect(r) ? r : Effect.succeed(r)
          })
        assert.strictEqual((yield* reserve("crashed"))._tag, "Reserved") // its caller never settles
        assert.strictEqual((yield* reserve("next"))._tag, "Refused")
        yield* h.sleep(1_100) // the harness's reservation time-to-live is 1 s
        assert.strictEqual((yield* reserve("after"))._tag, "Reserved")
      })
    )
  )

  h.test(`${h.name}: turns: one count per conversation across instances`, () =>
    h.withStores((s) =>
      Effect.gen(function* () {
        const [a, b] = yield* Effect.all([
          AgentGuard.make({ maxTurns: 3, store: s.turns }),
          AgentGuard.make({ maxTurns: 3, store: s.turns })
        ])
        const turn = (g: AgentGuard.AgentGuard, i: number) =>
          g.turn({ model: "m", messages: [{ role: "user", content: `step ${i}` }], metadata: { conversationId: "c" } })
        yield* turn(a, 1)
        yield* turn(b, 2)
        yield* turn(a, 3)
        const refused = yield* Effect.flip(turn(b, 4))
        assert.deepStrictEqual([refused._tag, (refused as LlmError.TurnLimitExceeded).turns], ["TurnLimitExceeded", 4])
        assert.strictEqual(yield* a.turns("c"), 3) // the refused turn is not counted
        yield* b.end("c")
        assert.strictEqual(yield* a.turns("c"), 0)
      })
    )
  )

  h.test(`${h.name}: retry budget: credit earned at one instance is spent at another; the floor is per window`, () =>
    h.withStores((s) =>
      Effect.gen(function* () {
        const [a, b] = yield* Effect.all([
          RetryBudget.make({ ratio: 0.5, window: "10 seconds", minRetries: 0, store: s.retry }),
          RetryBudget.make({ ratio: 0.5, window: "10 seconds", minRetries: 0, store: s.retry })
        ])
        for (let i = 0; i < 4; i++) yield* a.deposit(KEY)
        const granted = [yield* b.withdraw(KEY), yield* b.withdraw(KEY), yield* a.withdraw(KEY)]
        assert.deepStrictEqual(granted, [true, true, false])
        // the floor: 2 retries per window however few the requests; taken retries leave with their window
        const floor = yield* RetryBudget.make({ ratio: 0, window: "1 second", minRetries: 2, store: s.retry })
        const key = `${KEY}#floor`
        const three = Effect.all([floor.withdraw(key), floor.withdraw(key), floor.withdraw(key)])
        assert.deepStrictEqual(yield* three, [true, true, false])
        yield* h.sleep(1_150)
        assert.deepStrictEqual(yield* three, [true, true, false])
      })
    )
  )
}

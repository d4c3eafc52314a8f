/**
 * The breaker's state machine (`internal/circuit.ts`) driven with explicit times: each test pins a decision
 * (when it trips, for how long, what a probe's outcome does, what leaves the window) that a wrong
 * implementation gets wrong.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { CircuitBreaker, LlmError } from "@llm-resilience/core"
import {
  Circuit,
  CLOSED,
  FAILURE,
  FORCED_CLOSED,
  HALF_OPEN,
  IGNORED,
  ISOLATED,
  OPEN,
  type OutcomeCode,
  type Policy,
  SUCCESS,
  type Transition
} from "../src/internal/circuit.ts"

const policy = (overrides: Partial<Policy>): Policy => ({
  consecutiveFailures: Number.POSITIVE_INFINITY,
  failureRateThreshold: Number.POSITIVE_INFINITY,
  slowCallRateThreshold: Number.POSITIVE_INFINITY,
  slowCallMs: Number.POSITIVE_INFINITY,
  windowMs: 10_000,
  buckets: 10,
  minimumCalls: 1,
  probes: 1,
  probeTimeoutMs: 30_000,
  openDurationsMs: [1_000, 2_000, 4_000],
  maxRetryAfterMs: 60_000,
  isolateRetryAfterMs: 5_000,
  metricsOnly: false,
  ...overrides
})

const circuit = (overrides: Partial<Policy> = {}, now = 0) => {
  const transitions: Array<Transition> = []
  const c = new Circuit("p/m", policy(overrides), (t) => transitions.push(t), now)
  return { c, transitions }
}

/** One call admitted at `start` that ends at `end` with `outcome`. */
const call = (c: Circuit, outcome: OutcomeCode, start: number, end = start, retryAfterMs?: number) => {
  const admitted = c.admit(start)
  assert.isDefined(admitted, `call at ${start} was rejected`)
  c.complete(admitted!, outcome, end, retryAfterMs)
}

/** What `status` reports while Closed: in-flight calls already counted as slow are in both counts. */
const counts = (c: Circuit) => ({
  calls: c.calls + c.pendingSlow,
  failures: c.failures,
  slow: c.slowCalls + c.pendingSlow,
  streak: c.streak
})

const brief = (t: Transition) => `${t.from}->${t.to}@${t.at}:${t.reason}`

/** Opens a fresh circuit at time 0 with one failure (consecutive policy of 1). */
const opened = (overrides: Partial<Policy> = {}) => {
  const r = circuit({ consecutiveFailures: 1, ...overrides })
  call(r.c, FAILURE, 0)
  assert.strictEqual(r.c.state, OPEN)
  return r
}

describe("circuit: consecutive failures", () => {
  it("trips on exactly the n-th failure in a row, with the first open duration", () => {
    const { c, transitions } = circuit({ consecutiveFailures: 3 })
    call(c, FAILURE, 10)
    call(c, FAILURE, 20)
    assert.strictEqual(c.state, CLOSED)
    assert.deepStrictEqual(counts(c), { calls: 2, failures: 2, slow: 0, streak: 2 })
    call(c, FAILURE, 30)
    assert.strictEqual(c.state, OPEN)
    assert.deepStrictEqual(transitions, [
      { key: "p/m", from: "Closed", to: "Open", at: 30, reason: "consecutive-failures", openForMs: 1_000, openings: 1 }
    ])
    assert.strictEqual(c.openUntil, 1_030)
  })

  it("a success breaks the streak; ignored calls neither break nor extend it", () => {
    const { c } = circuit({ consecutiveFailures: 3 })
    call(c, FAILURE, 0)
    call(c, FAILURE, 1)
    call(c, SUCCESS, 2)
    call(c, FAILURE, 3)
    call(c, FAILURE, 4)
    assert.strictEqual(c.state, CLOSED)
    call(c, IGNORED, 5)
    assert.deepStrictEqual(counts(c), { calls: 5, failures: 4, slow: 0, streak: 2 })
    call(c, FAILURE, 6)
    assert.strictEqual(c.state, OPEN)
  })
})

describe("circuit: failure rate", () => {
  it("trips at exactly the threshold, not below it", () => {
    const below = circuit({ failureRateThreshold: 0.5, minimumCalls: 4 }).c
    for (const o of [SUCCESS, SUCCESS, SUCCESS, FAILURE] as const) call(below, o, 0)
    assert.strictEqual(below.state, CLOSED)
    const at = circuit({ failureRateThreshold: 0.5, minimumCalls: 4 })
    for (const o of [SUCCESS, SUCCESS, FAILURE, FAILURE] as const) call(at.c, o, 0)
    assert.strictEqual(at.c.state, OPEN)
    assert.strictEqual(at.transitions[0].reason, "failure-rate")
  })

  it("waits for the minimum number of calls", () => {
    const { c } = circuit({ failureRateThreshold: 0.5, minimumCalls: 3 })
    call(c, FAILURE, 0)
    call(c, FAILURE, 0)
    assert.strictEqual(c.state, CLOSED)
    call(c, SUCCESS, 0)
    assert.strictEqual(c.state, OPEN)
  })

  it("a threshold of 0 never trips without a failure", () => {
    const { c } = circuit({ failureRateThreshold: 0, minimumCalls: 1 })
    for (let i = 0; i < 5; i++) call(c, SUCCESS, i)
    assert.strictEqual(c.state, CLOSED)
    call(c, FAILURE, 10)
    assert.strictEqual(c.state, OPEN)
  })

  it("failures leave the window when their bucket does, and not before", () => {
    // window 10 s in ten 1 s buckets: a failure at 0.5 s counts until 10 s
    const inside = circuit({ failureRateThreshold: 0.3, minimumCalls: 3 }).c
    call(inside, FAILURE, 500)
    call(inside, SUCCESS, 9_999)
    call(inside, SUCCESS, 9_999)
    assert.strictEqual(inside.state, OPEN)
    const outside = circuit({ failureRateThreshold: 0.3, minimumCalls: 3 }).c
    call(outside, FAILURE, 500)
    call(outside, SUCCESS, 10_000)
    call(outside, SUCCESS, 10_000)
    assert.strictEqual(outside.state, CLOSED)
    assert.deepStrictEqual(counts(outside), { calls: 2, failures: 0, slow: 0, streak: 0 })
  })

  it("a long gap clears the whole window; buckets wrap around correctly", () => {
    const { c } = circuit({ failureRateThreshold: 0.6, minimumCalls: 2 })
    call(c, FAILURE, 0)
    call(c, SUCCESS, 3_000)
    for (let t = 4_000; t < 13_000; t += 1_000) call(c, SUCCESS, t)
    // at 12.x s the buckets of 0-2 s have left: the failure is gone, the successes of 3-12 s remain
    assert.deepStrictEqual(counts(c), { calls: 10, failures: 0, slow: 0, streak: 0 })
    c.refresh(1_000_000)
    assert.deepStrictEqual(counts(c), { calls: 0, failures: 0, slow: 0, streak: 0 })
    call(c, FAILURE, 1_000_000)
    assert.strictEqual(c.state, CLOSED)
    call(c, FAILURE, 1_000_000)
    assert.strictEqual(c.state, OPEN)
  })

  it("a time-only refresh can trip: rate evaluated when old successes leave", () => {
    const { c, transitions } = circuit({ failureRateThreshold: 0.6, minimumCalls: 1 })
    call(c, SUCCESS, 0)
    call(c, FAILURE, 5_000)
    assert.strictEqual(c.state, CLOSED)
    c.refresh(10_000)
    assert.strictEqual(c.state, OPEN)
    assert.strictEqual(brief(transitions[0]), "Closed->Open@10000:failure-rate")
  })
})

describe("circuit: slow calls", () => {
  it("a call is slow from exactly the threshold, counted when it ends", () => {
    const { c } = circuit({ slowCallMs: 1_000, slowCallRateThreshold: 0.5, minimumCalls: 3 })
    call(c, SUCCESS, 0, 999)
    assert.deepStrictEqual(counts(c), { calls: 1, failures: 0, slow: 0, streak: 0 })
    call(c, SUCCESS, 0, 1_000)
    assert.deepStrictEqual(counts(c), { calls: 2, failures: 0, slow: 1, streak: 1 })
    assert.strictEqual(c.state, CLOSED)
    call(c, SUCCESS, 1_000, 2_000)
    assert.strictEqual(c.state, OPEN)
  })

  it("a hanging call counts as slow while in flight, and trips the breaker without ending", () => {
    const { c, transitions } = circuit({ slowCallMs: 1_000, consecutiveFailures: 1 })
    assert.isDefined(c.admit(0))
    c.refresh(999)
    assert.strictEqual(c.state, CLOSED)
    c.refresh(1_000)
    assert.strictEqual(c.state, OPEN)
    assert.strictEqual(brief(transitions[0]), "Closed->Open@1000:consecutive-failures")
  })

  it("admission notices a hanging call too", () => {
    const { c } = circuit({ slowCallMs: 1_000, slowCallRateThreshold: 0.5, minimumCalls: 2 })
    call(c, SUCCESS, 0)
    assert.isDefined(c.admit(0))
    assert.isDefined(c.admit(999))
    assert.isUndefined(c.admit(1_000))
    assert.strictEqual(c.state, OPEN)
  })

  it("a call counted slow in flight is counted once: not again, and never un-counted, when it ends", () => {
    const { c } = circuit({ slowCallMs: 1_000, consecutiveFailures: 10 })
    const hung = c.admit(0)!
    c.refresh(1_500)
    assert.deepStrictEqual(counts(c), { calls: 1, failures: 0, slow: 1, streak: 1 })
    c.complete(hung, FAILURE, 2_000, undefined)
    assert.deepStrictEqual(counts(c), { calls: 1, failures: 1, slow: 1, streak: 1 })
    const quick = c.admit(2_000)!
    c.complete(quick, SUCCESS, 2_001, undefined)
    assert.deepStrictEqual(counts(c), { calls: 2, failures: 1, slow: 1, streak: 0 })
  })

  it("slow calls leave the window like any other", () => {
    const { c } = circuit({ slowCallMs: 1_000 })
    call(c, SUCCESS, 0, 1_500)
    assert.strictEqual(counts(c).slow, 1)
    c.refresh(11_000)
    assert.strictEqual(counts(c).slow, 0)
    assert.strictEqual(counts(c).calls, 0)
  })

  it("an interrupted call counts only when it was slow", () => {
    const { c } = circuit({ slowCallMs: 1_000 })
    call(c, IGNORED, 0, 999)
    assert.deepStrictEqual(counts(c), { calls: 0, failures: 0, slow: 0, streak: 0 })
    call(c, IGNORED, 0, 1_000)
    assert.deepStrictEqual(counts(c), { calls: 1, failures: 0, slow: 1, streak: 1 })
  })

  it("with many calls finished around one that hangs, exactly that one turns slow", () => {
    const { c } = circuit({ slowCallMs: 1_000 })
    const calls = Array.from({ length: 3_000 }, (_, i) => c.admit(i / 10)!)
    calls.forEach((x, i) => {
      if (i !== 2_500) c.complete(x, SUCCESS, i / 10 + 1, undefined)
    })
    // later admissions prune the finished head
    for (let i = 0; i < 3; i++) call(c, SUCCESS, 400 + i)
    c.refresh(250 + 999)
    assert.strictEqual(c.pendingSlow, 0)
    c.refresh(250 + 1_000)
    assert.strictEqual(c.pendingSlow, 1)
    assert.strictEqual(counts(c).streak, 1)
  })

  it("a reported latency counts as slow from the threshold, even for an ignored outcome", () => {
    const { c } = circuit({ slowCallMs: 1_000 })
    c.report(IGNORED, 0, 999, undefined)
    assert.strictEqual(counts(c).calls, 0)
    c.report(IGNORED, 0, 1_000, undefined)
    assert.deepStrictEqual(counts(c), { calls: 1, failures: 0, slow: 1, streak: 1 })
    c.report(SUCCESS, 0, undefined, undefined)
    assert.deepStrictEqual(counts(c), { calls: 2, failures: 0, slow: 1, streak: 0 })
  })
})

describe("circuit: open", () => {
  it("rejects until its time has passed, saying how long remains", () => {
    const { c, transitions } = opened()
    assert.isUndefined(c.admit(400))
    assert.strictEqual(c.rejectRetryAfterMs, 600)
    assert.strictEqual(c.rejections, 1)
    assert.isFalse(c.wouldAdmit(999))
    assert.strictEqual(c.rejectRetryAfterMs, 1)
    assert.isTrue(c.wouldAdmit(1_000))
    assert.strictEqual(c.state, HALF_OPEN)
    // the transition carries the time the opening ended, not the time it was noticed
    c.refresh(5_000)
    assert.deepStrictEqual(transitions.map(brief), [
      "Closed->Open@0:consecutive-failures",
      "Open->HalfOpen@1000:open-elapsed"
    ])
  })

  it("outcomes of calls admitted before the circuit opened are dropped", () => {
    const { c } = circuit({ consecutiveFailures: 2 })
    const early = c.admit(0)!
    call(c, FAILURE, 1)
    call(c, FAILURE, 2)
    assert.strictEqual(c.state, OPEN)
    c.complete(early, FAILURE, 3, 600_000)
    assert.strictEqual(c.openUntil, 1_002)
    c.refresh(1_002)
    assert.strictEqual(c.state, HALF_OPEN)
  })

  it("a provider's Retry-After lengthens the opening, capped", () => {
    const r1 = opened({ maxRetryAfterMs: 60_000 })
    assert.strictEqual(r1.c.openUntil, 1_000)
    const r2 = circuit({ consecutiveFailures: 1, maxRetryAfterMs: 60_000 })
    call(r2.c, FAILURE, 0, 0, 5_000)
    assert.strictEqual(r2.c.openUntil, 5_000)
    assert.strictEqual(r2.transitions[0].openForMs, 5_000)
    const r3 = circuit({ consecutiveFailures: 1, maxRetryAfterMs: 60_000 })
    call(r3.c, FAILURE, 0, 0, 600_000)
    assert.strictEqual(r3.c.openUntil, 60_000)
    // shorter than the schedule's duration: the schedule wins
    const r4 = circuit({ consecutiveFailures: 1 })
    call(r4.c, FAILURE, 0, 0, 10)
    assert.strictEqual(r4.c.openUntil, 1_000)
  })

  it("a Retry-After seen earlier in the closed state still lengthens the opening", () => {
    const { c } = circuit({ consecutiveFailures: 2 })
    call(c, FAILURE, 0, 0, 3_000)
    call(c, FAILURE, 100, 100, 100) // a shorter one later does not shorten the first
    assert.strictEqual(c.openUntil, 3_000)
  })

  it("a Retry-After reported while open extends the opening, never shortens it", () => {
    const { c, transitions } = opened()
    c.report(FAILURE, 500, undefined, 3_000)
    assert.strictEqual(c.openUntil, 3_500)
    assert.strictEqual(c.lastOpenForMs, 3_500)
    c.report(FAILURE, 600, undefined, 100)
    assert.strictEqual(c.openUntil, 3_500)
    c.report(FAILURE, 700, undefined, 600_000)
    assert.strictEqual(c.openUntil, 60_700)
    assert.isFalse(c.wouldAdmit(60_699))
    assert.isTrue(c.wouldAdmit(60_700))
    assert.strictEqual(brief(transitions[1]), "Open->HalfOpen@60700:open-elapsed")
  })

  it("escalates the open duration over consecutive openings, and stays at the last one", () => {
    const { c, transitions } = opened()
    for (let i = 0; i < 3; i++) call(c, FAILURE, c.openUntil) // the probe fails
    const opens = transitions.filter((x) => x.to === "Open")
    assert.deepStrictEqual(
      opens.map((x) => [x.openForMs, x.openings, x.reason]),
      [
        [1_000, 1, "consecutive-failures"],
        [2_000, 2, "probe-failed"],
        [4_000, 3, "probe-failed"],
        [4_000, 4, "probe-failed"]
      ]
    )
  })

  it("after a close, reopening soon keeps escalating; after as long again as the last opening, it starts over", () => {
    const soon = opened()
    call(soon.c, FAILURE, 1_000) // probe fails: second opening, 2 s
    call(soon.c, SUCCESS, 3_000) // probe succeeds: closed at 3 s, escalation kept until 5 s
    assert.strictEqual(soon.c.state, CLOSED)
    call(soon.c, FAILURE, 4_999)
    assert.strictEqual(soon.transitions.at(-1)!.openForMs, 4_000)
    assert.strictEqual(soon.transitions.at(-1)!.openings, 3)

    const late = opened()
    call(late.c, FAILURE, 1_000)
    call(late.c, SUCCESS, 3_000)
    call(late.c, FAILURE, 5_000)
    assert.strictEqual(late.transitions.at(-1)!.openForMs, 1_000)
    assert.strictEqual(late.transitions.at(-1)!.openings, 1)
  })

  it("the counters start fresh after a close", () => {
    const { c } = circuit({ consecutiveFailures: 2 })
    call(c, FAILURE, 0)
    assert.strictEqual(c.state, CLOSED) // one failure is not enough
    call(c, FAILURE, 1)
    assert.strictEqual(c.state, OPEN)
    call(c, SUCCESS, 1_001)
    assert.strictEqual(c.state, CLOSED)
    assert.deepStrictEqual(counts(c), { calls: 0, failures: 0, slow: 0, streak: 0 })
    call(c, FAILURE, 1_002)
    assert.strictEqual(c.state, CLOSED)
  })
})

describe("circuit: half-open probes", () => {
  const halfOpen = (overrides: Partial<Policy> = {}) => {
    const r = opened(overrides)
    r.c.refresh(1_000)
    assert.strictEqual(r.c.state, HALF_OPEN)
    return r
  }

  it("admits exactly `probes` probes; others wait for the earliest probe timeout", () => {
    const { c } = halfOpen({ probes: 2, probeTimeoutMs: 5_000 })
    const a = c.admit(1_000)
    const b = c.admit(1_200)
    assert.isDefined(a)
    assert.isDefined(b)
    assert.isUndefined(c.admit(1_300))
    assert.strictEqual(c.rejectRetryAfterMs, 4_700)
    assert.isFalse(c.wouldAdmit(1_300))
    assert.strictEqual(c.rejectRetryAfterMs, 4_700)
  })

  it("closes only when every probe has succeeded", () => {
    const { c, transitions } = halfOpen({ probes: 3 })
    const probes = [c.admit(1_000)!, c.admit(1_000)!, c.admit(1_000)!]
    c.complete(probes[0], SUCCESS, 1_010, undefined)
    assert.strictEqual(c.state, HALF_OPEN)
    c.complete(probes[1], SUCCESS, 1_020, undefined)
    assert.strictEqual(c.state, HALF_OPEN)
    c.complete(probes[2], SUCCESS, 1_030, undefined)
    assert.strictEqual(c.state, CLOSED)
    assert.strictEqual(brief(transitions.at(-1)!), "HalfOpen->Closed@1030:probes-succeeded")
  })

  it("an ignored (interrupted) probe decides nothing and frees its slot", () => {
    const { c, transitions } = halfOpen({ probes: 1 })
    const probe = c.admit(1_000)!
    assert.isUndefined(c.admit(1_001))
    c.complete(probe, IGNORED, 1_010, undefined)
    assert.strictEqual(c.state, HALF_OPEN)
    assert.strictEqual(transitions.length, 2)
    const next = c.admit(1_020)
    assert.isDefined(next)
    c.complete(next!, SUCCESS, 1_030, undefined)
    assert.strictEqual(c.state, CLOSED)
  })

  it("with two probes, an ignored one and a success do not close", () => {
    const { c } = halfOpen({ probes: 2 })
    const a = c.admit(1_000)!
    const b = c.admit(1_000)!
    c.complete(a, IGNORED, 1_010, undefined)
    c.complete(b, SUCCESS, 1_020, undefined)
    assert.strictEqual(c.state, HALF_OPEN)
    call(c, SUCCESS, 1_030)
    assert.strictEqual(c.state, CLOSED)
  })

  it("a failed probe reopens for the next duration, with a Retry-After taken into account", () => {
    const { c, transitions } = halfOpen()
    call(c, FAILURE, 1_000, 1_100, 9_000)
    assert.strictEqual(c.state, OPEN)
    assert.strictEqual(brief(transitions.at(-1)!), "HalfOpen->Open@1100:probe-failed")
    assert.strictEqual(c.openUntil, 10_100)
  })

  it("a slow probe that succeeds still reopens", () => {
    const { c } = halfOpen({ slowCallMs: 500, probeTimeoutMs: 30_000 })
    call(c, SUCCESS, 1_000, 1_500)
    assert.strictEqual(c.state, OPEN)
    const fast = halfOpen({ slowCallMs: 500, probeTimeoutMs: 30_000 }).c
    call(fast, SUCCESS, 1_000, 1_499)
    assert.strictEqual(fast.state, CLOSED)
  })

  it("a hung probe is released at its timeout and reopens, at the logical time", () => {
    const { c, transitions } = halfOpen({ probes: 2, probeTimeoutMs: 5_000 })
    const a = c.admit(1_000)!
    c.admit(2_000)
    c.refresh(5_999)
    assert.strictEqual(c.state, HALF_OPEN)
    c.refresh(6_000)
    assert.strictEqual(c.state, OPEN)
    assert.strictEqual(brief(transitions.at(-1)!), "HalfOpen->Open@6000:probe-timeout")
    // the released probe's late outcome is dropped
    c.complete(a, SUCCESS, 6_100, undefined)
    assert.strictEqual(c.state, OPEN)
    assert.strictEqual(c.openUntil, 8_000)
  })

  it("a failure reported by another stage reopens; a success reported does not close", () => {
    const { c, transitions } = halfOpen()
    c.report(SUCCESS, 1_100, 10, undefined)
    assert.strictEqual(c.state, HALF_OPEN)
    c.report(FAILURE, 1_200, undefined, undefined)
    assert.strictEqual(brief(transitions.at(-1)!), "HalfOpen->Open@1200:reported-failure")
    const slow = halfOpen({ slowCallMs: 100 }).c
    c.report(SUCCESS, 1_100, 100, undefined)
    slow.report(SUCCESS, 1_100, 100, undefined)
    assert.strictEqual(slow.state, OPEN)
  })

  it("a downgrade while half-open reopens", () => {
    const { c, transitions } = halfOpen()
    c.downgrade(1_500)
    assert.strictEqual(brief(transitions.at(-1)!), "HalfOpen->Open@1500:reported-failure")
  })
})

describe("circuit: downgrades", () => {
  it("turns the latest success into a failure, in the window and in the streak", () => {
    const { c } = circuit({ consecutiveFailures: 2 })
    call(c, FAILURE, 0)
    call(c, SUCCESS, 1)
    assert.deepStrictEqual(counts(c), { calls: 2, failures: 1, slow: 0, streak: 0 })
    c.downgrade(2)
    assert.strictEqual(c.state, OPEN)
  })

  it("before the success is recorded, counts the next success as a failure", () => {
    const { c } = circuit({ consecutiveFailures: 3 })
    c.downgrade(0)
    call(c, SUCCESS, 1)
    assert.deepStrictEqual(counts(c), { calls: 1, failures: 1, slow: 0, streak: 1 })
    call(c, SUCCESS, 2)
    assert.deepStrictEqual(counts(c), { calls: 2, failures: 1, slow: 0, streak: 0 })
    // the failure sits in its bucket and leaves the window with it
    c.refresh(20_000)
    assert.deepStrictEqual(counts(c), { calls: 0, failures: 0, slow: 0, streak: 0 })
  })

  it("a pending downgrade waits for a success that is neither failed nor slow", () => {
    const { c } = circuit({ slowCallMs: 1_000 })
    c.downgrade(0)
    call(c, FAILURE, 0)
    call(c, SUCCESS, 0, 1_000)
    assert.deepStrictEqual(counts(c), { calls: 2, failures: 1, slow: 1, streak: 2 })
    call(c, SUCCESS, 1_000, 1_001)
    assert.deepStrictEqual(counts(c), { calls: 3, failures: 2, slow: 1, streak: 3 })
  })

  it("two downgrades turn two successes into failures in the window", () => {
    const { c, transitions } = circuit({ failureRateThreshold: 1, minimumCalls: 3 })
    call(c, FAILURE, 0)
    call(c, SUCCESS, 1)
    call(c, SUCCESS, 2)
    c.downgrade(3)
    assert.strictEqual(c.state, CLOSED)
    assert.deepStrictEqual(counts(c), { calls: 3, failures: 2, slow: 0, streak: 1 })
    c.downgrade(3)
    assert.strictEqual(brief(transitions[0]), "Closed->Open@3:failure-rate")
  })

  it("is counted in the current bucket, which leaves the window in time", () => {
    const { c } = circuit({})
    call(c, SUCCESS, 0)
    c.downgrade(5_000)
    assert.strictEqual(counts(c).failures, 1)
    c.refresh(14_999)
    assert.strictEqual(counts(c).failures, 1)
    c.refresh(15_999)
    assert.strictEqual(counts(c).failures, 0)
  })
})

describe("circuit: manual control and metrics-only", () => {
  it("isolated: rejects with the isolation retry-after; isolating again is no transition", () => {
    const { c, transitions } = circuit({})
    c.isolate(5)
    c.isolate(6)
    assert.strictEqual(c.state, ISOLATED)
    assert.isUndefined(c.admit(10))
    assert.strictEqual(c.rejectRetryAfterMs, 5_000)
    assert.isFalse(c.wouldAdmit(10_000_000))
    assert.deepStrictEqual(transitions.map(brief), ["Closed->Isolated@5:isolated"])
  })

  it("forced closed: records but never trips, and the window still moves", () => {
    const { c, transitions } = circuit({ consecutiveFailures: 1 })
    c.forceClose(0)
    for (let i = 0; i < 5; i++) call(c, FAILURE, i)
    assert.strictEqual(c.state, FORCED_CLOSED)
    assert.strictEqual(counts(c).failures, 5)
    c.report(FAILURE, 6, undefined, undefined)
    assert.strictEqual(counts(c).failures, 6)
    c.refresh(20_000)
    assert.strictEqual(counts(c).failures, 0)
    c.forceClose(20_001)
    assert.deepStrictEqual(transitions.map(brief), ["Closed->ForcedClosed@0:forced-closed"])
  })

  it("reset: back to Closed with the first open duration again; no transition when already closed", () => {
    const { c, transitions } = opened()
    call(c, FAILURE, 1_000)
    assert.strictEqual(c.openings, 2)
    c.reset(1_500)
    assert.strictEqual(c.state, CLOSED)
    call(c, FAILURE, 1_600)
    assert.strictEqual(transitions.at(-1)!.openForMs, 1_000)
    assert.strictEqual(transitions.at(-1)!.openings, 1)
    const fresh = circuit({})
    fresh.c.reset(0)
    assert.deepStrictEqual(fresh.transitions, [])
  })

  it("metrics-only: a call that would be rejected is counted and admitted, and its outcome ignored", () => {
    const { c } = opened({ metricsOnly: true })
    const untracked = c.admit(100)
    assert.isDefined(untracked)
    assert.strictEqual(c.rejections, 1)
    assert.strictEqual(c.rejectRetryAfterMs, 900)
    c.complete(untracked!, FAILURE, 200, 600_000)
    assert.strictEqual(c.openUntil, 1_000)
    const enforcing = opened().c
    assert.isUndefined(enforcing.admit(100))
  })

  it("completing the same call twice counts it once", () => {
    const { c } = circuit({ consecutiveFailures: 2 })
    const x = c.admit(0)!
    c.complete(x, FAILURE, 1, undefined)
    c.complete(x, FAILURE, 2, undefined)
    assert.strictEqual(c.state, CLOSED)
    assert.strictEqual(counts(c).failures, 1)
  })
})

describe("CircuitBreaker: which outcomes count", () => {
  const errors = {
    Timeout: new LlmError.Timeout({ message: "t", phase: "total", afterMs: 1 }),
    ConnectionError: new LlmError.ConnectionError({ message: "c" }),
    StreamTruncated: new LlmError.StreamTruncated({ message: "s", receivedChunks: 1 }),
    ServerError: new LlmError.ServerError({ message: "s", status: 500 }),
    Overloaded: new LlmError.Overloaded({ message: "o" }),
    RateLimited: new LlmError.RateLimited({ message: "r", limit: "requests" }),
    BadRequest: new LlmError.BadRequest({ message: "b" }),
    CircuitOpen: new LlmError.CircuitOpen({ key: "x", retryAfterMs: 1 }),
    AdmissionRejected: new LlmError.AdmissionRejected({ key: "x", reason: "queue-full" })
  }

  it("the default failure tags are the provider's health: timeouts, 5xx, overload, connection, truncation", () => {
    assert.deepStrictEqual([...LlmError.breakerFailureTags].sort(), [
      "ConnectionError",
      "Overloaded",
      "ServerError",
      "StreamTruncated",
      "Timeout"
    ])
  })

  it.effect("each default failure trips a consecutive-1 breaker; 429s, client errors and rejections do not", () =>
    Effect.gen(function* () {
      for (const [tag, error] of Object.entries(errors)) {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1 })
        yield* Effect.exit(Effect.fail(error).pipe(breaker.protect("k")))
        const status = yield* breaker.status("k")
        const trips = LlmError.breakerFailureTags.includes(tag as LlmError.LlmError["_tag"])
        assert.strictEqual(status._tag, trips ? "Open" : "Closed", tag)
      }
    })
  )

  it.effect("the toolkit's own rejections are not successes: they do not break a failure streak", () =>
    Effect.gen(function* () {
      for (const rejection of [errors.CircuitOpen, errors.AdmissionRejected]) {
        const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
        yield* Effect.exit(Effect.fail(errors.ServerError).pipe(breaker.protect("k")))
        yield* Effect.exit(Effect.fail(rejection).pipe(breaker.protect("k")))
        yield* Effect.exit(Effect.fail(errors.ServerError).pipe(breaker.protect("k")))
        assert.strictEqual((yield* breaker.status("k"))._tag, "Open", rejection._tag)
      }
      // while a client error is an answer: it does break the streak
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 2 })
      for (const e of [errors.ServerError, errors.BadRequest, errors.ServerError]) {
        yield* Effect.exit(Effect.fail(e).pipe(breaker.protect("k")))
      }
      assert.strictEqual((yield* breaker.status("k"))._tag, "Closed")
    })
  )

  it.effect("countRateLimited makes a 429 count", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, countRateLimited: true })
      const exit = yield* Effect.exit(Effect.fail(errors.RateLimited).pipe(breaker.protect("k")))
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual((yield* breaker.status("k"))._tag, "Open")
    })
  )

  it.effect("a reported latency reaches the slow-call check", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 1, slowCallThreshold: "1 second" })
      yield* breaker.record("k", CircuitBreaker.success, "999 millis")
      assert.strictEqual((yield* breaker.status("k"))._tag, "Closed")
      yield* breaker.record("k", CircuitBreaker.success, "1 second")
      assert.strictEqual((yield* breaker.status("k"))._tag, "Open")
    })
  )
})

describe("circuit: more edges", () => {
  it("admission applies the window's expiry too, and can find the circuit tripped", () => {
    const { c } = circuit({ failureRateThreshold: 0.6, minimumCalls: 1 })
    call(c, SUCCESS, 0)
    call(c, FAILURE, 5_000)
    assert.isUndefined(c.admit(10_000))
    assert.strictEqual(c.state, OPEN)
  })

  it("the slow-call rate trips at exactly its threshold; a threshold of 0 needs a slow call", () => {
    const { c } = circuit({ slowCallMs: 1_000, slowCallRateThreshold: 0.5, minimumCalls: 2 })
    call(c, SUCCESS, 0, 10)
    call(c, SUCCESS, 0, 1_000)
    assert.strictEqual(c.state, OPEN)
    const zero = circuit({ slowCallMs: 1_000, slowCallRateThreshold: 0, minimumCalls: 1 }).c
    for (let i = 0; i < 3; i++) call(zero, SUCCESS, i, i + 10)
    assert.strictEqual(zero.state, CLOSED)
    call(zero, SUCCESS, 100, 1_100)
    assert.strictEqual(zero.state, OPEN)
  })

  it("a finished probe no longer counts toward the probe timeout", () => {
    const { c } = opened({ probes: 2, probeTimeoutMs: 5_000 })
    const a = c.admit(1_000)!
    c.admit(3_000)
    c.complete(a, SUCCESS, 1_010, undefined)
    c.refresh(7_999)
    assert.strictEqual(c.state, HALF_OPEN)
    c.refresh(8_000)
    assert.strictEqual(c.state, OPEN)
  })

  it("of several hung probes, the earliest decides when the circuit reopened", () => {
    const { c, transitions } = opened({ probes: 2, probeTimeoutMs: 5_000 })
    c.admit(2_000)
    c.admit(1_000)
    c.refresh(50_000)
    const reopened = transitions.find((t) => t.reason === "probe-timeout")!
    assert.strictEqual(reopened.at, 6_000)
    assert.deepStrictEqual(transitions[1], {
      key: "p/m",
      from: "Open",
      to: "HalfOpen",
      at: 1_000,
      reason: "open-elapsed"
    })
  })

  it("a call still hanging from before an opening is not counted after the close", () => {
    const { c } = circuit({ consecutiveFailures: 2, slowCallMs: 5_000 })
    c.admit(0) // hangs
    call(c, FAILURE, 1)
    call(c, FAILURE, 2)
    assert.strictEqual(c.state, OPEN)
    call(c, SUCCESS, 1_002) // probe: closed again
    assert.strictEqual(c.state, CLOSED)
    c.refresh(6_000)
    assert.strictEqual(c.state, CLOSED)
    assert.deepStrictEqual(counts(c), { calls: 0, failures: 0, slow: 0, streak: 0 })
  })

  it("finished calls are not retained while a slow-call threshold is set", () => {
    const { c } = circuit({ slowCallMs: 1_000 })
    for (let i = 0; i < 3_000; i++) call(c, SUCCESS, i / 100)
    assert.isAtMost(c.pending.length, 1)
    // one call hangs at the head, thousands finish behind it, another hangs at the tail
    const { c: d } = circuit({ slowCallMs: 1_000 })
    d.admit(0)
    for (let i = 0; i < 2_000; i++) call(d, SUCCESS, 1)
    d.admit(500)
    d.refresh(1_000) // the head turns slow; the scan stops at the tail's call
    assert.strictEqual(d.pendingSlow, 1)
    call(d, SUCCESS, 1_001)
    assert.isAtMost(d.pending.length, 3)
    d.refresh(1_500)
    assert.strictEqual(d.pendingSlow, 2)
  })

  it("a downgrade while forced closed is recorded but never trips", () => {
    const { c } = circuit({ consecutiveFailures: 1 })
    c.forceClose(0)
    call(c, SUCCESS, 1)
    c.downgrade(2)
    assert.strictEqual(c.state, FORCED_CLOSED)
    assert.strictEqual(counts(c).failures, 1)
  })

  it("at most 1,024 recorded successes can be downgraded; later downgrades wait for the next success", () => {
    const { c } = circuit({})
    for (let i = 0; i < 1_100; i++) call(c, SUCCESS, 0)
    for (let i = 0; i < 1_025; i++) c.downgrade(0)
    assert.strictEqual(counts(c).failures, 1_024)
    call(c, SUCCESS, 0)
    assert.strictEqual(counts(c).failures, 1_025)
  })
})

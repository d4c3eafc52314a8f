/**
 * The engine behind `CircuitBreaker`: option decoding into a {@link Policy}, the classification of exits,
 * and the keyed set of circuits with its metrics, transitions stream and stage hooks. The state machine of
 * one circuit is `internal/circuit.ts`.
 *
 * The Closed happy path reads the clock once, compares two numbers and updates a counter when the call
 * ends: no fiber, no timer, no Schedule. Time-driven transitions are evaluated whenever the circuit is
 * consulted (admission, an outcome, a status query).
 *
 * @internal
 */
import { Cause, Clock, Effect, type Exit, type Fiber, Metric, PubSub, Stream } from "effect"
import type * as CB from "../CircuitBreaker.ts"
import * as CallReport from "../CallReport.ts"
import { breakerFailureTags, CircuitOpen, rejectionTags as rejectionTagList } from "../LlmError.ts"
import type { Stage } from "../Stage.ts"
import * as Attempts from "./attempt.ts"
import * as internal from "./circuit.ts"
import { durationMs, policyOf } from "./breakerOptions.ts"
import * as Shared from "./sharedBreaker.ts"
import { keyOnly } from "./keyOnly.ts"
import { KeyedState } from "./keyedState.ts"
import { keyLabel, tagged } from "./metrics.ts"

type Outcome = CB.Outcome
type Status = CB.Status
type Permit = CB.Permit
type Transition = CB.Transition

/** @internal */
export const success: Outcome = { _tag: "Success" }
/** @internal */
export const ignored: Outcome = { _tag: "Ignored" }
/** @internal */
export const failureOutcome: Outcome = { _tag: "Failure" }

/** @internal */
export const PermitTypeId = "~@llm-resilience/core/CircuitBreaker/Permit" as const

const rejectionTags: ReadonlySet<string> = new Set(rejectionTagList)

/** @internal */
export const metrics = {
  state: Metric.gauge("llm_breaker_state", {
    description: "0 closed, 1 open, 2 half-open, 3 isolated, 4 forced closed"
  }),
  transitions: Metric.counter("llm_breaker_transitions", {
    description: "breaker state transitions by key, from and to",
    incremental: true
  }),
  rejections: Metric.counter("llm_breaker_rejections", {
    description: "calls rejected by an open breaker (or that would have been, in metrics-only mode)",
    incremental: true
  })
}

interface CircuitMetrics {
  readonly state: Metric.Metric<number, unknown>
  readonly rejections: Metric.Metric<number, unknown>
}

const stackTraceLimitWritable = (() => {
  const descriptor = Object.getOwnPropertyDescriptor(Error, "stackTraceLimit")
  return descriptor === undefined || descriptor.writable === true || descriptor.set !== undefined
})()

/**
 * Builds a rejection without capturing a stack trace: it would only point into the breaker, and capturing
 * it costs several microseconds, the bulk of a rejection (as Effect does for its own internal errors).
 */
const withoutStackTrace = <A>(f: () => A): A => {
  if (!stackTraceLimitWritable) return f()
  const limit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  try {
    return f()
  } finally {
    Error.stackTraceLimit = limit
  }
}

/**
 * The breaker of `options` (already validated).
 *
 * @internal
 */
export const make = Effect.fnUntraced(function* (options: CB.Options) {
  const policy = yield* policyOf(options)
  const failureTags = new Set(options.failureTags ?? breakerFailureTags)
  if (options.countRateLimited) failureTags.add("RateLimited")

  const pubsub = yield* PubSub.sliding<Transition>(1024)
  const circuits = new KeyedState<internal.Circuit>(options.keys, (c) => c.state === internal.CLOSED)
  const circuitMetrics = new WeakMap<internal.Circuit, CircuitMetrics>()
  const label = (key: string) => keyLabel(options.metricModels, key)
  const outbox: Array<Transition> = []
  const sink: internal.Sink = (t) => {
    outbox.push(t)
  }

  const circuitFor = (key: string, now: number): internal.Circuit => {
    return circuits.getOrCreate(key, now, () => {
      const circuit = new internal.Circuit(key, policy, sink, now)
      circuitMetrics.set(circuit, {
        state: tagged(metrics.state, { key: label(key) }),
        rejections: tagged(metrics.rejections, { key: label(key) })
      })
      return circuit
    })
  }

  const flush = (fiber: Fiber.Fiber<unknown, unknown>): void => {
    const context = fiber.context
    for (let i = 0; i < outbox.length; i++) {
      const t = outbox[i]
      PubSub.publishUnsafe(pubsub, t)
      const m = circuits.get(t.key)
      if (m !== undefined) circuitMetrics.get(m)?.state.updateUnsafe(internal.stateNames.indexOf(t.to), context)
      tagged(metrics.transitions, { key: label(t.key), from: t.from, to: t.to }).updateUnsafe(1, context)
      CallReport.emitUnsafe(fiber, () => ({ _tag: "BreakerTransition", key: t.key, from: t.from, to: t.to }))
    }
    outbox.length = 0
  }

  const rejectWith = (circuit: internal.Circuit, fiber: Fiber.Fiber<unknown, unknown>): void => {
    circuitMetrics.get(circuit)?.rejections.updateUnsafe(1, fiber.context)
  }

  const classifyError = (error: unknown): Outcome => {
    const tag =
      typeof error === "object" && error !== null && "_tag" in error ? (error as { _tag: unknown })._tag : undefined
    if (typeof tag !== "string") return failureOutcome
    if (failureTags.has(tag)) {
      const ra = (error as { retryAfterMs?: unknown }).retryAfterMs
      return typeof ra === "number" ? { _tag: "Failure", retryAfterMs: ra } : failureOutcome
    }
    return rejectionTags.has(tag) ? ignored : success
  }

  const classifyExit = (exit: Exit.Exit<unknown, unknown>): Outcome => {
    if (exit._tag === "Success") return success
    if (Cause.hasInterruptsOnly(exit.cause)) return ignored
    const error = Cause.findErrorOption(exit.cause)
    return error._tag === "None" ? failureOutcome : classifyError(error.value)
  }

  const outcomeCode = (o: Outcome): internal.OutcomeCode =>
    o._tag === "Success" ? internal.SUCCESS : o._tag === "Failure" ? internal.FAILURE : internal.IGNORED

  const finish = (
    call: internal.Call,
    outcome: internal.OutcomeCode,
    retryAfterMs: number | undefined,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>
  ) => {
    call.circuit.complete(call, outcome, now, retryAfterMs)
    if (outbox.length > 0) flush(fiber)
  }

  const rejection = (circuit: internal.Circuit, fiber: Fiber.Fiber<unknown, unknown>): CircuitOpen => {
    rejectWith(circuit, fiber)
    return withoutStackTrace(() => new CircuitOpen({ key: circuit.key, retryAfterMs: circuit.rejectRetryAfterMs }))
  }

  const admitUnsafe = (key: string, now: number, fiber: Fiber.Fiber<unknown, unknown>): internal.Call | CircuitOpen => {
    const circuit = circuitFor(key, now)
    const call = circuit.admit(now)
    if (outbox.length > 0) flush(fiber)
    if (call === undefined) return rejection(circuit, fiber)
    if (call.kind === internal.UNTRACKED) rejectWith(circuit, fiber)
    return call
  }

  const untracked = (circuit: internal.Circuit, fiber: Fiber.Fiber<unknown, unknown>, now: number) => {
    rejectWith(circuit, fiber)
    return new internal.Call(circuit, now, -1, internal.UNTRACKED)
  }

  // Without a store, a call is admitted and recorded by this process's circuit alone.
  const local = {
    enter: (key: string, now: number, fiber: Fiber.Fiber<unknown, unknown>) => {
      const call = admitUnsafe(key, now, fiber)
      return call instanceof internal.Call ? call : Effect.fail(call)
    },
    exit: (
      call: Shared.Ticket,
      outcome: internal.OutcomeCode,
      retryAfterMs: number | undefined,
      now: number,
      fiber: Fiber.Fiber<unknown, unknown>
    ) => {
      if (call instanceof internal.Call) finish(call, outcome, retryAfterMs, now, fiber)
    }
  }
  const hooks: {
    readonly enter: (
      key: string,
      now: number,
      fiber: Fiber.Fiber<unknown, unknown>
    ) => Shared.Ticket | Effect.Effect<Shared.Ticket, CircuitOpen>
    readonly exit: typeof local.exit | ReturnType<typeof Shared.make>["exit"]
  } =
    options.store === undefined
      ? local
      : Shared.make(options.store, { policy, circuitFor, admitUnsafe, rejection, untracked, finish, flush })

  const exitWith = (
    ticket: Shared.Ticket,
    outcome: Outcome,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>
  ): void | Effect.Effect<void> =>
    hooks.exit(ticket, outcomeCode(outcome), outcome._tag === "Failure" ? outcome.retryAfterMs : undefined, now, fiber)

  const stageWith = (classify: (exit: Exit.Exit<unknown, unknown>) => Outcome): Stage<Shared.Ticket> => ({
    name: "circuit-breaker",
    enter: (attempt) =>
      hooks.enter(attempt.key, attempt.fiber.getRef(Clock.Clock).currentTimeMillisUnsafe(), attempt.fiber),
    exit: (ticket, exit, attempt) => exitWith(ticket, classify(exit), attempt.endMs, attempt.fiber)
  })
  const stage = stageWith(classifyExit)

  const gate: Stage<undefined> = {
    name: "circuit-breaker-gate",
    enter: (attempt) => {
      if (policy.metricsOnly) return undefined
      const fiber = attempt.fiber
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const circuit = circuitFor(attempt.key, now)
      const open = !circuit.wouldAdmit(now)
      if (outbox.length > 0) flush(fiber)
      return open ? Effect.fail(rejection(circuit, fiber)) : undefined
    },
    exit: () => undefined
  }

  const protect: CB.CircuitBreaker["protect"] = (key, protectOptions) => {
    const stages = [protectOptions?.classify === undefined ? stage : stageWith(protectOptions.classify)]
    const request = keyOnly(key)
    return (self) => Attempts.run(stages, request, key, self)
  }

  const permits = new WeakMap<Permit, Shared.Ticket>()

  const admit = (key: string): Effect.Effect<Permit, CircuitOpen> =>
    Effect.withFiber((fiber) => {
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const toPermit = (ticket: Shared.Ticket): Permit => {
        const probe = ticket instanceof internal.Call ? ticket.kind === internal.PROBE : true
        const permit: Permit = { [PermitTypeId]: PermitTypeId, key, startedAt: now, probe }
        permits.set(permit, ticket)
        return permit
      }
      const ticket = hooks.enter(key, now, fiber)
      return Effect.isEffect(ticket) ? Effect.map(ticket, toPermit) : Effect.succeed(toPermit(ticket))
    })

  const complete = (permit: Permit, outcome: Outcome): Effect.Effect<void> =>
    Effect.withFiber((fiber) => {
      const ticket = permits.get(permit)
      if (ticket === undefined) return Effect.void
      const rest = exitWith(ticket, outcome, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe(), fiber)
      return rest ?? Effect.void
    })

  const withCircuit = <A>(key: string, f: (circuit: internal.Circuit, now: number) => A): Effect.Effect<A> =>
    Effect.withFiber((fiber) => {
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const result = f(circuitFor(key, now), now)
      if (outbox.length > 0) flush(fiber)
      return Effect.succeed(result)
    })

  const record: CB.CircuitBreaker["record"] = (key, outcome, latency) =>
    withCircuit(key, (circuit, now) =>
      circuit.report(
        outcomeCode(outcome),
        now,
        latency === undefined ? undefined : durationMs(latency, 0),
        outcome._tag === "Failure" ? outcome.retryAfterMs : undefined
      )
    )

  const downgrade = (key: string): Effect.Effect<void> => withCircuit(key, (circuit, now) => circuit.downgrade(now))

  // one step (it runs before admission on every call): read the circuit, flush its transitions, answer
  const check = (key: string): Effect.Effect<void, CircuitOpen> =>
    Effect.withFiber((fiber) => {
      const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const circuit = circuitFor(key, now)
      const retryAfterMs = circuit.wouldAdmit(now) ? undefined : circuit.rejectRetryAfterMs
      if (outbox.length > 0) flush(fiber)
      return retryAfterMs === undefined || policy.metricsOnly
        ? Effect.void
        : Effect.fail(withoutStackTrace(() => new CircuitOpen({ key, retryAfterMs })))
    })

  const status = (key: string): Effect.Effect<Status> =>
    withCircuit(key, (c, now): Status => {
      c.refresh(now)
      switch (c.state) {
        case internal.CLOSED:
          return {
            _tag: "Closed",
            key,
            calls: c.calls + c.pendingSlow,
            failures: c.failures,
            slowCalls: c.slowCalls + c.pendingSlow,
            consecutiveFailures: c.streak
          }
        case internal.OPEN:
          return { _tag: "Open", key, retryAfterMs: Math.max(0, c.openUntil - now), openings: c.openings }
        case internal.HALF_OPEN:
          return { _tag: "HalfOpen", key, probesInFlight: c.probes.length, openings: c.openings }
        case internal.ISOLATED:
          return { _tag: "Isolated", key }
        default:
          return { _tag: "ForcedClosed", key }
      }
    })

  const breaker: CB.CircuitBreaker = {
    protect,
    admit,
    complete,
    record,
    downgrade,
    check,
    status,
    transitions: Stream.fromPubSub(pubsub),
    isolate: (key) => withCircuit(key, (c, now) => c.isolate(now)),
    forceClosed: (key) => withCircuit(key, (c, now) => c.forceClose(now)),
    reset: (key) => withCircuit(key, (c, now) => c.reset(now)),
    classify: classifyExit,
    stage,
    gate
  }
  return breaker
})

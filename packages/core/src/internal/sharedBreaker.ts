/**
 * A breaker whose transitions are shared through a store: before each call the store's verdict decides
 * (closed, a probe lease, open), this instance's circuit follows it for `status`, metrics and transitions,
 * and an opening this instance decides from its own counts is published with `trip`.
 *
 * @internal
 */
import { Effect, type Fiber } from "effect"
import type { CircuitOpen } from "../LlmError.ts"
import type * as Store from "./breakerStore.ts"
import * as internal from "./circuit.ts"

/** A half-open probe leased from the store. @internal */
export class SharedProbe {
  done = false
  readonly key: string
  readonly lease: string
  readonly start: number
  constructor(key: string, lease: string, start: number) {
    this.key = key
    this.lease = lease
    this.start = start
  }
}

/** @internal */
export type Ticket = internal.Call | SharedProbe

/** What the engine lends the shared layer. @internal */
export interface Engine {
  readonly policy: internal.Policy
  readonly circuitFor: (key: string, now: number) => internal.Circuit
  readonly admitUnsafe: (key: string, now: number, fiber: Fiber.Fiber<unknown, unknown>) => internal.Call | CircuitOpen
  readonly rejection: (circuit: internal.Circuit, fiber: Fiber.Fiber<unknown, unknown>) => CircuitOpen
  readonly untracked: (circuit: internal.Circuit, fiber: Fiber.Fiber<unknown, unknown>, now: number) => internal.Call
  readonly finish: (
    call: internal.Call,
    outcome: internal.OutcomeCode,
    retryAfterMs: number | undefined,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>
  ) => void
  readonly flush: (fiber: Fiber.Fiber<unknown, unknown>) => void
}

const orEffect = <A>(a: A | Effect.Effect<A>, f: (a: A) => void): void | Effect.Effect<void> =>
  Effect.isEffect(a) ? Effect.map(a, f) : f(a)

/** The enter and exit of a breaker sharing its transitions through `store`. @internal */
export const make = (store: Store.Store, engine: Engine) => {
  const { policy } = engine
  const shared: Store.SharedPolicy = policy

  /** Publishes an opening when this call's outcome (or the time) opened the local circuit. */
  const tripped = (circuit: internal.Circuit, before: number, retryAfterMs: number | undefined, now: number) =>
    before === internal.CLOSED && circuit.state === internal.OPEN
      ? store.trip(circuit.key, shared, retryAfterMs, now)
      : undefined

  const closedAdmit = (key: string, now: number, fiber: Fiber.Fiber<unknown, unknown>) => {
    const circuit = engine.circuitFor(key, now)
    circuit.follow(internal.CLOSED, now)
    const before = circuit.state
    const call = engine.admitUnsafe(key, now, fiber)
    const trip = tripped(circuit, before, undefined, now)
    if (!(call instanceof internal.Call)) {
      return trip === undefined ? Effect.fail(call) : Effect.andThen(trip, Effect.fail(call))
    }
    return trip === undefined ? call : Effect.as(trip, call)
  }

  const decide = (
    verdict: Store.Verdict,
    key: string,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>
  ): Ticket | Effect.Effect<Ticket, CircuitOpen> => {
    switch (verdict._tag) {
      case "Local": {
        const call = engine.admitUnsafe(key, now, fiber)
        return call instanceof internal.Call ? call : Effect.fail(call)
      }
      case "Closed":
        return closedAdmit(key, now, fiber)
      case "Probe": {
        const circuit = engine.circuitFor(key, now)
        circuit.follow(internal.HALF_OPEN, now)
        engine.flush(fiber)
        return new SharedProbe(key, verdict.lease, now)
      }
      case "Open": {
        const circuit = engine.circuitFor(key, now)
        if (circuit.state === internal.FORCED_CLOSED) return closedAdmit(key, now, fiber)
        if (verdict.halfOpen) circuit.follow(internal.HALF_OPEN, now)
        else circuit.follow(internal.OPEN, now, verdict.retryAfterMs, verdict.openings)
        engine.flush(fiber)
        circuit.rejectRetryAfterMs = Math.max(0, verdict.retryAfterMs)
        if (policy.metricsOnly) return engine.untracked(circuit, fiber, now)
        return Effect.fail(engine.rejection(circuit, fiber))
      }
    }
  }

  const enter = (
    key: string,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>
  ): Ticket | Effect.Effect<Ticket, CircuitOpen> => {
    const verdict = store.enter(key, shared, now)
    return Effect.isEffect(verdict)
      ? Effect.flatMap(verdict, (v) => {
          const ticket = decide(v, key, now, fiber)
          return Effect.isEffect(ticket) ? ticket : Effect.succeed(ticket)
        })
      : decide(verdict, key, now, fiber)
  }

  const exit = (
    ticket: Ticket,
    outcome: internal.OutcomeCode,
    retryAfterMs: number | undefined,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>
  ): void | Effect.Effect<void> => {
    if (ticket instanceof internal.Call) {
      const circuit = ticket.circuit
      const before = circuit.state
      engine.finish(ticket, outcome, retryAfterMs, now, fiber)
      return tripped(circuit, before, retryAfterMs, now)
    }
    if (ticket.done) return
    ticket.done = true
    const slow = now - ticket.start >= policy.slowCallMs
    const result: Store.ProbeResult =
      outcome === internal.FAILURE || slow ? "failure" : outcome === internal.SUCCESS ? "success" : "ignored"
    return orEffect(store.probeDone(ticket.key, ticket.lease, result, shared, retryAfterMs, now), (state) => {
      const circuit = engine.circuitFor(ticket.key, now)
      if (state === "Closed") circuit.follow(internal.CLOSED, now)
      else if (state === "Open") circuit.follow(internal.OPEN, now, 0, circuit.openings + 1)
      engine.flush(fiber)
    })
  }

  return { enter, exit }
}

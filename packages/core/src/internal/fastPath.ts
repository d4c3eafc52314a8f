/**
 * The synchronous hooks that the stages built by this toolkit offer to the composed pipeline.
 *
 * Each stage is an Effect combinator (`protect`, `run` ...) that a user can use alone or replace. Composed
 * one inside the other, every stage pushes its own frame and keeps its own closures for the whole call, and
 * in-flight memory is what decides how many concurrent calls a process holds. So each stage built by
 * `make` also carries, under {@link FastPath}, the synchronous core of its combinator: what it does before
 * the provider is called and what it does when the call ends. `Resilience` runs a call that nobody makes
 * wait as those plain function calls around one frame (internal/step.ts), and hands anything else (a queue
 * wait, a retry, a span) to the composed combinators. A stage provided by the user has no hooks, and the
 * pipeline then composes it as an Effect like any other.
 *
 * @internal
 */
import type { Effect, Exit, Fiber } from "effect"
import type { Call } from "./circuit.ts"
import type { Outcome } from "../CircuitBreaker.ts"
import type { CircuitOpen, Timeout } from "../LlmError.ts"
import type { LlmRequest } from "../LlmRequest.ts"
import type { LlmResponse } from "../LlmResponse.ts"
import type { Guard } from "./deadline.ts"

/** @internal */
export const FastPath: unique symbol = Symbol.for("@llm-resilience/core/FastPath")

type AnyFiber = Fiber.Fiber<unknown, unknown>

/** @internal */
export interface BreakerHooks {
  /** Admits one call to `key` at `now`: its record, or the rejection to fail with. */
  readonly admit: (key: string, now: number, fiber: AnyFiber) => Call | CircuitOpen
  /** Records how an admitted call ended. */
  readonly finish: (call: Call, outcome: Outcome, now: number, fiber: AnyFiber) => void
}

/** @internal */
export interface AdmissionTicket {
  readonly settled: boolean
}

/** @internal */
export interface AdmissionHooks {
  /**
   * Admits `request` under `key` at once, or returns `undefined` having taken nothing, when the call must
   * wait (or the store is remote): the call then takes `run`. `null`: the key has no limits.
   */
  readonly admitNow: (
    key: string,
    request: LlmRequest,
    fiber: AnyFiber,
    now: number
  ) => AdmissionTicket | null | undefined
  /** Settles a ticket with the call's exit; what is left to run (a remote reconcile, a queue drain), if any. */
  readonly settle: (
    ticket: AdmissionTicket,
    exit: Exit.Exit<LlmResponse, unknown>,
    fiber: AnyFiber,
    now: number
  ) => Effect.Effect<void> | undefined
}

/** @internal */
export interface TimeoutHooks {
  /** The total limit of `request`'s path (`Infinity`: none). */
  readonly totalMs: (request: LlmRequest) => number
  /** Whether `guard` can guard `fiber` now (it can be resumed from outside and is interruptible; deadline.ts). */
  readonly canGuard: (fiber: AnyFiber) => boolean
  /** Guards `fiber` for `totalMs` from now; only where `canGuard`. */
  readonly guard: (fiber: AnyFiber, totalMs: number) => Guard | undefined
  readonly error: (request: LlmRequest, provider: string, totalMs: number) => Timeout
}

/** @internal */
export interface AgentHooks {
  /** Whether the guard does anything for `request` (it counts the turns of conversations only). */
  readonly counts: (request: LlmRequest) => boolean
}

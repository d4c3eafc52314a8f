/**
 * One provider step of the composed pipeline (retry -> breaker -> admission -> timeouts -> provider, plus
 * the call's telemetry) as one frame per call.
 *
 * Composed as Effects, each stage keeps a frame and its closures on the fiber for as long as the call is in
 * flight. Here a call that nobody makes wait runs the stages' synchronous hooks (internal/fastPath.ts)
 * around the provider call, inside a single `matchCauseEffect` frame whose two handlers end the attempt for
 * every stage at once: the timeout guard, the breaker's record, admission's settlement, then the retry
 * decision and the call's metrics. Only what needs more takes the composed stages, and only for that part:
 *
 * - a call that admission would make wait (or that cannot be guarded on its own fiber) runs its attempt
 *   through `attempt`, the stages composed as Effects;
 * - a failed attempt is handed to the retry stage, which runs further attempts through `attempt`;
 * - the call's telemetry is recorded by the frame itself on the happy path, by an `onExit` after a retry.
 *
 * The order of the hooks is the order of the stages: the breaker is consulted before admission and records
 * the attempt's outcome (timeouts included) before admission settles it.
 *
 * @internal
 */
import { Clock, type Context, Effect, Exit, type Fiber } from "effect"
import * as CircuitBreaker from "../CircuitBreaker.ts"
import type { LlmError } from "../LlmError.ts"
import type { LlmProvider } from "../LlmProvider.ts"
import type { LlmRequest } from "../LlmRequest.ts"
import type { LlmResponse } from "../LlmResponse.ts"
import * as Retry from "../Retry.ts"
import * as Telemetry from "../Telemetry.ts"
import { Call } from "./circuit.ts"
import type { Guard } from "./deadline.ts"
import type { AdmissionHooks, AdmissionTicket, BreakerHooks, TimeoutHooks } from "./fastPath.ts"

/** What one `provider/model` of the step needs: its key and its retry stage (none without a profile). */
export interface Model {
  readonly key: string
  readonly retry: ReturnType<typeof Retry.stage> | undefined
}

/** @internal */
export interface Options {
  readonly provider: LlmProvider["Service"]
  readonly model: (model: string) => Model
  readonly breaker: BreakerHooks
  readonly classify: (exit: Exit.Exit<unknown, unknown>) => CircuitBreaker.Outcome
  readonly admission: AdmissionHooks
  readonly timeouts: TimeoutHooks
  /** One attempt through the stages composed as Effects (no retry): for what the step does not take. */
  readonly attempt: (request: LlmRequest) => Effect.Effect<LlmResponse, LlmError>
  /** The whole step composed as Effects (retry included), for a caller the deadline could not resume. */
  readonly composed: (request: LlmRequest) => Effect.Effect<LlmResponse, LlmError>
}

/**
 * Completes `request`; with `observe` (the path's name), also records the call's telemetry (no span: a
 * caller that needs one composes `Telemetry.observeCall` around the step instead).
 *
 * @internal
 */
export type Step = (request: LlmRequest, observe: string | undefined) => Effect.Effect<LlmResponse, LlmError>

type AnyFiber = Fiber.Fiber<unknown, unknown>

/** Everything one call keeps while in flight. */
class State {
  call: Call | undefined = undefined
  ticket: AdmissionTicket | undefined = undefined
  guard: Guard | undefined = undefined
  totalMs = 0
  readonly request: LlmRequest
  readonly model: Model
  readonly observe: string | undefined
  readonly fiber: AnyFiber
  /** The caller's context while the attempt runs marked as inside a retry; `undefined` when not retrying. */
  readonly outer: Context.Context<never> | undefined
  readonly startMs: number
  constructor(
    request: LlmRequest,
    model: Model,
    observe: string | undefined,
    fiber: AnyFiber,
    outer: Context.Context<never> | undefined,
    startMs: number
  ) {
    this.request = request
    this.model = model
    this.observe = observe
    this.fiber = fiber
    this.outer = outer
    this.startMs = startMs
  }
}

/** @internal */
export const make = (o: Options): Step => {
  const { provider, breaker, admission, timeouts } = o

  /**
   * Before the provider call; runs inside the frame, uninterruptibly, so whatever it takes is given back
   * however the call ends. What may wait (the provider call, the composed attempt) runs interruptibly.
   */
  const enter = (s: State): Effect.Effect<LlmResponse, LlmError> => {
    const fiber = s.fiber
    if (s.outer !== undefined) fiber.setContext(s.model.retry!.mark(s.outer))
    const key = s.model.key
    const call = breaker.admit(key, s.startMs, fiber)
    if (!(call instanceof Call)) return Effect.fail(call)
    const ticket = admission.admitNow(key, s.request, fiber, s.startMs)
    if (ticket === undefined) {
      // admission would make it wait: the composed stages take this attempt (and decide again from scratch)
      breaker.finish(call, CircuitBreaker.ignored, s.startMs, fiber)
      return Effect.interruptible(o.attempt(s.request))
    }
    s.call = call
    if (ticket !== null) s.ticket = ticket
    const totalMs = timeouts.totalMs(s.request)
    if (totalMs !== Infinity) {
      s.guard = timeouts.guard(fiber, totalMs)
      s.totalMs = totalMs
    }
    return Effect.interruptible(provider.complete(s.request))
  }

  /** The attempt ended: every stage records it, then the retry stage decides and the call is observed. */
  const ended = (s: State, attempt: Exit.Exit<LlmResponse, LlmError>): Effect.Effect<LlmResponse, LlmError> => {
    const fiber = s.fiber
    let exit = attempt
    if (s.guard !== undefined && s.guard.end()) exit = Exit.fail(timeouts.error(s.request, provider.name, s.totalMs))
    if (s.outer !== undefined) fiber.setContext(s.outer)
    const now = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    if (s.call !== undefined) breaker.finish(s.call, o.classify(exit), now, fiber)
    const rest = s.ticket === undefined ? undefined : admission.settle(s.ticket, exit, fiber, now)
    let result: Effect.Effect<LlmResponse, LlmError> = exit
    if (exit._tag === "Failure" && s.outer !== undefined) {
      const retry = s.model.retry!
      result = Effect.catch(exit, (error) => Effect.interruptible(retry.after(o.attempt(s.request), s.startMs, error)))
    }
    if (rest !== undefined) result = Effect.andThen(rest, result)
    if (s.observe === undefined) return result
    if (result === exit) {
      Telemetry.finishUnsafe(fiber, s.request, s.observe, s.startMs, exit, undefined, now)
      return exit
    }
    return Effect.onExit(result, (final) =>
      Effect.sync(() => Telemetry.finishUnsafe(fiber, s.request, s.observe!, s.startMs, final))
    )
  }

  const step: Step = (request, observe) =>
    Effect.withFiber((fiber) => {
      // a span needs the composed telemetry stage (it puts the span in the context of the whole call)
      if (observe !== undefined && Telemetry.spanVisible(fiber)) {
        return Telemetry.observeCall(request, observe)(step(request, undefined))
      }
      // a caller that the deadline could not resume (it is uninterruptible): the composed stages
      if (!timeouts.canGuard(fiber)) {
        return observe === undefined
          ? o.composed(request)
          : Telemetry.observeCall(request, observe)(o.composed(request))
      }
      const startMs = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const model = o.model(request.model)
      const retry = model.retry
      const retrying = retry !== undefined && !fiber.getRef(Retry.InsideRetry)
      if (retrying) retry.budget?.depositUnsafe!(model.key, startMs)
      const s = new State(request, model, observe, fiber, retrying ? fiber.context : undefined, startMs)
      // Uninterruptible around the frame (the provider call itself is interruptible): an interruption of the
      // caller then still reaches the frame's handlers, which give back what the call took.
      return Effect.uninterruptible(
        Effect.matchCauseEffect(
          Effect.suspend(() => enter(s)),
          {
            onSuccess: (response: LlmResponse) => ended(s, Exit.succeed(response)),
            onFailure: (cause) => ended(s, Exit.failCause(cause))
          }
        )
      )
    })
  return step
}

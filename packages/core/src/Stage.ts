/**
 * The one contract of a stage that guards an attempt: the circuit breaker, admission control, the
 * bulkhead, the spend guard, the agent guard and timeouts all implement it, and so can a stage of your own.
 *
 * A stage has two hooks around one attempt of a call:
 *
 * - `enter(attempt)` before the provider is called: returns the stage's **ticket** (what it needs to
 *   remember until the attempt ends), or `Effect.fail(error)` to refuse the attempt, or an `Effect` that
 *   produces the ticket when the stage must wait (a queue, a remote store). A ticket is any value that is
 *   not an `Effect`.
 * - `exit(ticket, exit, attempt)` when the attempt has ended (with its `Exit`: success, failure or
 *   interruption): returns nothing, or an `Effect` for what is left to run (a remote reconcile). An
 *   `exit` that fails replaces the attempt's outcome with its error for the stages outside it and for the
 *   caller (a timeout turns its interruption into `Timeout` this way).
 *
 * This is Resilience4j's `tryAcquirePermission` / `onSuccess` / `onError` with Polly's single execution
 * core: a list of stages runs as **one frame per attempt**. The stages enter in order, the provider is
 * called, and the stages that entered exit in reverse order, innermost first. What a stage decides
 * synchronously costs no `Effect` frame (`Effect.fail` and `Effect.succeed` are exits, read at once); a
 * stage that must wait is one `Effect` away. However the attempt ends (interruption included), every
 * stage that entered exits exactly once. An `enter` effect runs uninterruptibly, like the acquire of
 * `Effect.acquireRelease`: it makes its wait interruptible itself (`Effect.interruptible`) and gives back
 * what it took when that wait is interrupted. The attempt runs interruptibly: a caller inside an
 * uninterruptible region has its attempt run on a child fiber, so that a timeout can still end it.
 *
 * Every stage's own combinator (`CircuitBreaker.protect`, `Admission.run`, `Bulkhead.withPermit`,
 * `SpendGuard.protect`, `AgentGuard.protect`, `Timeouts.complete`) is {@link protect} over its stage,
 * so a stage behaves the same alone and inside `Resilience`.
 *
 * @since 0.1.0
 */
import type { Effect, Exit, Fiber } from "effect"
import * as internal from "./internal/attempt.ts"
import type { LlmError } from "./LlmError.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse } from "./LlmResponse.ts"

/**
 * One attempt, as the stages see it.
 *
 * @example
 * ```ts
 * import type { Stage } from "@llm-resilience/core"
 * const describe = (attempt: Stage.Attempt) => `${attempt.key} at ${attempt.startMs}`
 * ```
 * @since 0.1.0
 */
export interface Attempt {
  readonly request: LlmRequest
  /** The key the stages share state under: `provider/model`. */
  readonly key: string
  /** The fiber the attempt runs on: read its references (`fiber.getRef`) and context from it. */
  readonly fiber: Fiber.Fiber<unknown, unknown>
  /** When the attempt started (epoch ms from `Clock`). */
  readonly startMs: number
  /** When the attempt ended (epoch ms from `Clock`); set before the first `exit` runs. */
  readonly endMs: number
}

/**
 * A stage that guards attempts. `T` is its ticket.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmError, type Stage } from "@llm-resilience/core"
 *
 * // refuses calls outside office hours, counts the calls in flight
 * let inFlight = 0
 * const officeHours: Stage.Stage<true> = {
 *   name: "office-hours",
 *   enter: (attempt) => {
 *     const hour = new Date(attempt.startMs).getUTCHours()
 *     if (hour < 8 || hour >= 18) {
 *       return Effect.fail(new LlmError.AdmissionRejected({ key: attempt.key, reason: "queue-full" }))
 *     }
 *     inFlight++
 *     return true
 *   },
 *   exit: () => {
 *     inFlight--
 *   }
 * }
 * ```
 * @since 0.1.0
 */
export interface Stage<T = unknown> {
  /** Names the stage in docs, errors and tests. */
  readonly name: string
  /** Before the provider is called: the ticket, `Effect.fail(error)` to refuse, or an effect to wait for. */
  enter(attempt: Attempt): T | Effect.Effect<T, LlmError>
  /** After the attempt ended: nothing, or what is left to run; a failure replaces the attempt's outcome. */
  exit(ticket: T, exit: Exit.Exit<LlmResponse, LlmError>, attempt: Attempt): void | Effect.Effect<void, LlmError>
}

/**
 * Runs `self` (one attempt) through `stages` under `key`, in one frame: the stages' combinator. `self` is
 * usually a provider call; the stages see its exit as an attempt's.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker, Stage } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make()
 *   const request = { model: "gpt-5.4-mini", messages: [{ role: "user" as const, content: "Hi" }] }
 *   return yield* Effect.succeed("answer").pipe(Stage.protect([breaker.stage], request, "openai/gpt-5.4-mini"))
 * })
 * ```
 * @since 0.1.0
 */
export const protect =
  (stages: ReadonlyArray<Stage<unknown>>, request: LlmRequest, key: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | LlmError, R> =>
    internal.run(stages, request, key, self)

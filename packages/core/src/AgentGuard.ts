/**
 * Agent-loop guard: stops an agent that keeps calling, before it burns its budget.
 *
 * Requests that carry `metadata.conversationId` are counted per conversation:
 *
 * - Turn limit: more than `maxTurns` turns (default 20) fails the next call with
 *   {@link LlmError.TurnLimitExceeded}: turn 21 is refused, no call is made.
 * - Loop detector: the same request `loopRepeats` times (default 3) within `loopWindow` (default 10
 *   minutes) fails with {@link LlmError.LoopDetected}. "The same" is decided by `fingerprint`, by default
 *   the model plus the last message (role and content): an agent stuck on one step re-sends the same
 *   last message even while its transcript grows.
 *
 * Refused calls do not count as turns. Requests without a conversation id pass untouched. Put the guard
 * outside retries (a retried call is one turn). Conversations idle for `idleTimeToLive` are forgotten.
 *
 * Turn counts live in a {@link Store}: {@link memoryStore} in the process (the default), or a shared one
 * (Redis) so that a conversation served by several instances has one count. The loop detector's history
 * stays in the process.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, type Fiber, Layer, Metric, Schema } from "effect"
import * as Attempts from "./internal/attempt.ts"
import { LoopDetected, TurnLimitExceeded } from "./LlmError.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { Stage } from "./Stage.ts"
import { DurationInput, millis } from "./internal/duration.ts"
import { tagged } from "./internal/metrics.ts"

const OptionsSchema = Schema.Struct({
  maxTurns: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
  loopRepeats: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(2))),
  loopWindow: Schema.optional(DurationInput),
  idleTimeToLive: Schema.optional(DurationInput)
})

/**
 * The `agent` section of `Resilience.Config`: the guard's {@link Options} as plain data, durations as `...Ms`
 * fields (milliseconds, or a duration string such as `"5 minutes"`).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { AgentGuard } from "@llm-resilience/core"
 * const section = Schema.decodeUnknownSync(AgentGuard.Config)({ maxTurns: 30, loopWindowMs: "5 minutes" })
 * ```
 * @since 0.1.0
 */
export const Config = Schema.Struct({
  maxTurns: OptionsSchema.fields.maxTurns,
  loopRepeats: OptionsSchema.fields.loopRepeats,
  loopWindowMs: Schema.optional(millis(Schema.Finite.check(Schema.isGreaterThan(0))))
})

/**
 * Agent guard configuration; defaults in brackets.
 *
 * @example
 * ```ts
 * import type { AgentGuard } from "@llm-resilience/core"
 * const options: AgentGuard.Options = { maxTurns: 30, loopRepeats: 4, loopWindow: "5 minutes" }
 * ```
 * @since 0.1.0
 */
export interface Options {
  /** Turns allowed per conversation. [20] */
  readonly maxTurns?: number | undefined
  /** The same request this many times within `loopWindow` is a loop. [3] */
  readonly loopRepeats?: number | undefined
  /** ["10 minutes"] */
  readonly loopWindow?: Duration.Input | undefined
  /** What makes two requests "the same". [model + last message] */
  readonly fingerprint?: ((request: LlmRequest) => string) | undefined
  /** Conversations idle this long are forgotten. ["1 day"] */
  readonly idleTimeToLive?: Duration.Input | undefined
  /** Where turn counts are kept. [a {@link memoryStore} of this guard] */
  readonly store?: Store | undefined
}

/**
 * Where turn counts live. `take` atomically counts one turn of a conversation unless `maxTurns` are already
 * counted, and answers the count including this turn (above `maxTurns`: refused, not counted). A
 * conversation idle for `idleMs` starts over. An in-process store answers directly, a remote one with an
 * `Effect`; `nowMs` is the caller's clock, a shared store may use its own.
 *
 * @example
 * ```ts
 * import { AgentGuard } from "@llm-resilience/core"
 * const store: AgentGuard.Store = AgentGuard.memoryStore()
 * ```
 * @since 0.1.0
 */
export interface Store {
  readonly take: (
    conversationId: string,
    maxTurns: number,
    idleMs: number,
    nowMs: number
  ) => number | Effect.Effect<number>
  readonly turns: (conversationId: string, nowMs: number) => number | Effect.Effect<number>
  readonly end: (conversationId: string) => void | Effect.Effect<void>
}

/**
 * An in-process {@link Store}.
 *
 * @example
 * ```ts
 * import { AgentGuard } from "@llm-resilience/core"
 * const guard = AgentGuard.make({ maxTurns: 20, store: AgentGuard.memoryStore() })
 * ```
 * @since 0.1.0
 */
export const memoryStore = (): Store => {
  const counts = new Map<string, { turns: number; expiresAt: number }>()
  let nextSweep = 0
  return {
    take: (id, maxTurns, idleMs, now) => {
      if (now >= nextSweep) {
        nextSweep = now + idleMs
        for (const [k, c] of counts) if (c.expiresAt <= now) counts.delete(k)
      }
      let c = counts.get(id)
      if (c === undefined || c.expiresAt <= now) {
        c = { turns: 0, expiresAt: 0 }
        counts.set(id, c)
      }
      c.expiresAt = now + idleMs
      if (c.turns >= maxTurns) return c.turns + 1
      return ++c.turns
    },
    turns: (id, now) => {
      const c = counts.get(id)
      return c === undefined || c.expiresAt <= now ? 0 : c.turns
    },
    end: (id) => {
      counts.delete(id)
    }
  }
}

/**
 * The agent guard service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AgentGuard } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const guard = yield* AgentGuard.make({ maxTurns: 2 })
 *   const request = { model: "m", messages: [], metadata: { conversationId: "c1" } }
 *   yield* guard.turn(request)
 *   yield* guard.turn({ ...request, messages: [{ role: "user" as const, content: "next" }] })
 *   return yield* Effect.flip(guard.turn({ ...request, messages: [{ role: "user" as const, content: "again" }] })) // TurnLimitExceeded
 * })
 * ```
 * @since 0.1.0
 */
export interface AgentGuard {
  /** Counts one turn of the request's conversation, or refuses it. */
  readonly turn: (request: LlmRequest) => Effect.Effect<void, TurnLimitExceeded | LoopDetected>
  /** The stage: `turn(request)`, then the call. */
  readonly protect: (
    request: LlmRequest
  ) => <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | TurnLimitExceeded | LoopDetected, R>
  /** Turns counted so far in a conversation. */
  readonly turns: (conversationId: string) => Effect.Effect<number>
  /** Forgets a conversation (its turns and loop history). */
  readonly end: (conversationId: string) => Effect.Effect<void>
  /**
   * The guard as a stage ({@link Stage.Stage}) that counts one turn when it is entered; run it once per
   * caller request (never per retry or fallback step). `protect` is this stage run alone.
   */
  readonly stage: Stage<unknown>
}

/**
 * The agent guard as a service.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { AgentGuard } from "@llm-resilience/core"
 * const turnsSoFar = Effect.flatMap(AgentGuard.AgentGuard, (g) => g.turns("c1"))
 * ```
 * @since 0.1.0
 */
export const AgentGuard: Context.Service<AgentGuard, AgentGuard> = Context.Service<AgentGuard>(
  "@llm-resilience/core/AgentGuard"
)

/**
 * Agent guard metrics: refusals by reason (`turn-limit`, `loop`).
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { AgentGuard } from "@llm-resilience/core"
 * const loops = Metric.value(Metric.withAttributes(AgentGuard.metrics.refused, { reason: "loop" }))
 * ```
 * @since 0.1.0
 */
export const metrics = {
  refused: Metric.counter("llm_agent_guard_refused", {
    description: "agent calls refused by the turn limit or loop detector",
    incremental: true
  })
}

/** FNV-1a over a string, with its length: a compact key for the loop detector. */
const hash = (s: string): string => {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return `${s.length}:${(h >>> 0).toString(36)}`
}

/**
 * The default fingerprint: the model and the last message.
 *
 * @example
 * ```ts
 * import { AgentGuard } from "@llm-resilience/core"
 * AgentGuard.defaultFingerprint({ model: "m", messages: [{ role: "user", content: "list files" }] })
 * ```
 * @since 0.1.0
 */
export const defaultFingerprint = (request: LlmRequest): string => {
  const last = request.messages[request.messages.length - 1]
  return hash(`${request.model}\u0000${last?.role ?? ""}\u0000${last?.content ?? ""}`)
}

interface Conversation {
  lastActivity: number
  readonly seen: Map<string, Array<number>>
}

/**
 * Builds an agent guard. Fails with a `SchemaError` naming the field when an option is invalid.
 *
 * @example
 * ```ts
 * import { AgentGuard } from "@llm-resilience/core"
 * const guard = AgentGuard.make({ maxTurns: 20, loopRepeats: 3, loopWindow: "10 minutes" })
 * ```
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (options: Options = {}) {
  const { fingerprint: customFingerprint, ...data } = options
  yield* Schema.decodeUnknownEffect(OptionsSchema)(data, { errors: "all" })
  const maxTurns = options.maxTurns ?? 20
  const loopRepeats = options.loopRepeats ?? 3
  const loopWindowMs = Duration.toMillis(Duration.fromInputUnsafe(options.loopWindow ?? "10 minutes"))
  const idleMs = Duration.toMillis(Duration.fromInputUnsafe(options.idleTimeToLive ?? "1 day"))
  const fingerprint = customFingerprint ?? defaultFingerprint
  const conversations = new Map<string, Conversation>()
  const store = options.store ?? memoryStore()
  let lastSweep = 0

  /** The loop detector: why `request` is refused at `now`, or what to record once its turn is counted. */
  const loopCheck = (conversationId: string, request: LlmRequest, now: number) => {
    if (now - lastSweep >= idleMs) {
      lastSweep = now
      for (const [id, c] of conversations) if (now - c.lastActivity >= idleMs) conversations.delete(id)
    }
    let conversation = conversations.get(conversationId)
    if (conversation === undefined) {
      conversation = { lastActivity: now, seen: new Map() }
      conversations.set(conversationId, conversation)
    }
    conversation.lastActivity = now
    const key = fingerprint(request)
    const times = conversation.seen.get(key) ?? []
    let keep = 0
    while (keep < times.length && times[keep] <= now - loopWindowMs) keep++
    if (keep > 0) times.splice(0, keep)
    if (times.length + 1 >= loopRepeats) return new LoopDetected({ conversationId, repeats: times.length + 1 })
    const seen = conversation.seen
    return () => {
      times.push(now)
      seen.set(key, times)
    }
  }

  /** Counts one turn of `request`'s conversation at `now`, or fails with why it is refused. */
  const turnAt = (
    conversationId: string,
    request: LlmRequest,
    now: number,
    fiber: Fiber.Fiber<unknown, unknown>
  ): undefined | Effect.Effect<undefined, TurnLimitExceeded | LoopDetected> => {
    const record = loopCheck(conversationId, request, now)
    if (record instanceof LoopDetected) {
      tagged(metrics.refused, { reason: "loop" }).updateUnsafe(1, fiber.context)
      return Effect.fail(record)
    }
    const decide = (turns: number) => {
      if (turns <= maxTurns) {
        record()
        return undefined
      }
      tagged(metrics.refused, { reason: "turn-limit" }).updateUnsafe(1, fiber.context)
      return Effect.fail(new TurnLimitExceeded({ conversationId, turns, limit: maxTurns }))
    }
    const taken = store.take(conversationId, maxTurns, idleMs, now)
    return Effect.isEffect(taken) ? Effect.flatMap(taken, (t) => decide(t) ?? Effect.undefined) : decide(taken)
  }

  // a request outside any conversation is not counted
  const stage: Stage<undefined> = {
    name: "agent-guard",
    enter: (attempt) => {
      const conversationId = attempt.request.metadata?.conversationId
      if (conversationId === undefined) return undefined
      return turnAt(conversationId, attempt.request, attempt.startMs, attempt.fiber)
    },
    exit: () => undefined
  }
  const stages = [stage]

  const turn = (request: LlmRequest): Effect.Effect<void, TurnLimitExceeded | LoopDetected> => {
    const conversationId = request.metadata?.conversationId
    if (conversationId === undefined) return Effect.void
    return Effect.withFiber(
      (fiber) =>
        turnAt(conversationId, request, fiber.getRef(Clock.Clock).currentTimeMillisUnsafe(), fiber) ?? Effect.void
    )
  }

  const orEffect = <A>(a: A | Effect.Effect<A>): Effect.Effect<A> => (Effect.isEffect(a) ? a : Effect.succeed(a))

  return AgentGuard.of({
    turn,
    // a request outside any conversation is not counted: the stage would take nothing, so it is not run
    protect: (request) => (self) =>
      request.metadata?.conversationId === undefined ? self : Attempts.run(stages, request, request.model, self),
    turns: (conversationId) =>
      Effect.clockWith((clock) => orEffect(store.turns(conversationId, clock.currentTimeMillisUnsafe()))),
    end: (conversationId) =>
      Effect.suspend(() => {
        conversations.delete(conversationId)
        return orEffect(store.end(conversationId))
      }),
    stage
  })
})

/**
 * A layer providing {@link AgentGuard}.
 *
 * @example
 * ```ts
 * import { AgentGuard } from "@llm-resilience/core"
 * const AgentGuardLive = AgentGuard.layer({ maxTurns: 20 })
 * ```
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<AgentGuard, Schema.SchemaError> =>
  Layer.effect(AgentGuard, make(options))

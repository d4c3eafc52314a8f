/**
 * Runs a list of stages (Stage.ts) around one attempt, as one frame.
 *
 * The stages enter in order inside a single `matchCauseEffect` frame, uninterruptibly, so that whatever
 * they take is given back however the attempt ends; the attempt itself runs interruptibly, and an `enter`
 * effect makes its own wait interruptible (as the acquire of `Effect.acquireRelease` does). The frame's two handlers make every stage that entered exit, innermost first, then
 * hand the final exit to the caller's continuation (the pipeline's retry decision and telemetry), so a call
 * that nobody makes wait pushes exactly one frame whatever the number of stages.
 *
 * A stage's synchronous answer is read at once: a ticket is stored, and `Effect.fail` / `Effect.succeed`
 * are `Exit`s, which need no frame either. Only a stage that returns another effect (a queue wait, a
 * remote store) adds one, for itself.
 *
 * @internal
 */
import { Clock, type Context, Effect, Exit, Fiber, Stream } from "effect"
import type { Attempt, Stage } from "../Stage.ts"
import type { LlmError } from "../LlmError.ts"
import type { LlmRequest } from "../LlmRequest.ts"
import type { LlmResponse, StreamChunk } from "../LlmResponse.ts"

type AnyExit = Exit.Exit<unknown, unknown>
type AnyEffect = Effect.Effect<unknown, unknown, never>

/** What follows once every stage has exited: the attempt's final exit in, the call's result out. */
export type Continuation = (run: Run, exit: Exit.Exit<LlmResponse, LlmError>) => Effect.Effect<LlmResponse, LlmError>

/** One attempt in flight: the stages' view of it (`Attempt`) and what the frame keeps. */
export class Run implements Attempt {
  endMs = 0
  /** How long the stages made the attempt wait before the provider was called (an admission queue). */
  waitedMs = 0
  /** How many stages entered (their exits are owed). */
  entered = 0
  readonly tickets: Array<unknown>
  readonly stages: ReadonlyArray<Stage<unknown>>
  readonly request: LlmRequest
  readonly key: string
  readonly fiber: Fiber.Fiber<unknown, unknown>
  readonly startMs: number
  readonly body: AnyEffect
  readonly then: Continuation | undefined
  /** The context the attempt runs under (a retry's mark), and the caller's, restored when it ends. */
  readonly inner: Context.Context<never> | undefined
  readonly outer: Context.Context<never> | undefined
  constructor(
    stages: ReadonlyArray<Stage<unknown>>,
    request: LlmRequest,
    key: string,
    fiber: Fiber.Fiber<unknown, unknown>,
    startMs: number,
    body: AnyEffect,
    then: Continuation | undefined,
    inner: Context.Context<never> | undefined
  ) {
    this.stages = stages
    this.request = request
    this.key = key
    this.fiber = fiber
    this.startMs = startMs
    this.body = body
    this.then = then
    this.inner = inner
    this.outer = inner === undefined ? undefined : fiber.context
    this.tickets = new Array(stages.length)
  }
}

const now = (fiber: Fiber.Fiber<unknown, unknown>): number => fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()

const enter = (r: Run, from: number): AnyEffect => {
  const stages = r.stages
  for (let i = from; i < stages.length; i++) {
    const t = stages[i].enter(r)
    if (Effect.isEffect(t)) {
      if (!Exit.isExit(t)) {
        const next = i + 1
        return Effect.flatMap(t as AnyEffect, (ticket) => {
          r.tickets[i] = ticket
          r.entered = next
          r.waitedMs = now(r.fiber) - r.startMs
          return enter(r, next)
        })
      }
      if (t._tag === "Failure") return t
      r.tickets[i] = t.value
    } else r.tickets[i] = t
    r.entered = i + 1
  }
  return Effect.interruptible(r.body)
}

const exitFrom = (r: Run, from: number, exit: AnyExit): AnyEffect => {
  for (let i = from; i >= 0; i--) {
    const out = r.stages[i].exit(r.tickets[i], exit as Exit.Exit<LlmResponse, LlmError>, r)
    if (out === undefined) continue
    if (Exit.isExit(out)) {
      if (out._tag === "Failure") exit = out
      continue
    }
    const next = i - 1
    const current = exit
    return Effect.flatMap(Effect.exit(out), (e) => exitFrom(r, next, e._tag === "Failure" ? e : current))
  }
  return r.then === undefined ? exit : r.then(r, exit as Exit.Exit<LlmResponse, LlmError>)
}

const leave = (r: Run, exit: AnyExit): AnyEffect => {
  if (r.outer !== undefined) r.fiber.setContext(r.outer)
  r.endMs = now(r.fiber)
  return exitFrom(r, r.entered - 1, exit)
}

/** The attempt's frame, on `r.fiber` (which is interruptible). */
const frame = (r: Run): AnyEffect =>
  Effect.uninterruptible(
    Effect.matchCauseEffect(
      Effect.suspend(() => {
        if (r.inner !== undefined) r.fiber.setContext(r.inner)
        return enter(r, 0)
      }),
      {
        onSuccess: (a) => leave(r, Exit.succeed(a)),
        onFailure: (cause) => leave(r, Exit.failCause(cause))
      }
    )
  )

/**
 * Runs `body` through `stages` on the current fiber, then `then` (if any) with the final exit. `inner`: the
 * context to run the attempt under (the caller's is restored when it ends). A caller in an uninterruptible
 * region gets a child fiber for the attempt, so that a stage (a timeout) can still interrupt it.
 */
export const start = <A, E, R>(
  fiber: Fiber.Fiber<unknown, unknown>,
  stages: ReadonlyArray<Stage<unknown>>,
  request: LlmRequest,
  key: string,
  body: Effect.Effect<A, E, R>,
  then?: Continuation,
  inner?: Context.Context<never>,
  startMs?: number
): Effect.Effect<A, E | LlmError, R> => {
  const attempt = body as AnyEffect
  if ((fiber as unknown as { readonly interruptible: boolean }).interruptible) {
    return frame(new Run(stages, request, key, fiber, startMs ?? now(fiber), attempt, then, inner)) as Effect.Effect<
      A,
      E | LlmError,
      R
    >
  }
  const child = Effect.runForkWith(fiber.context as Context.Context<never>)(
    Effect.withFiber((own) => frame(new Run(stages, request, key, own, now(own), attempt, then, inner)))
  )
  return Fiber.join(child) as Effect.Effect<A, E | LlmError, R>
}

/** Runs `body` through `stages` under `key` (the stages' combinator). */
export const run = <A, E, R, E2 = LlmError>(
  stages: ReadonlyArray<Stage<unknown>>,
  request: LlmRequest,
  key: string,
  body: Effect.Effect<A, E, R>
): Effect.Effect<A, E | E2, R> =>
  Effect.withFiber((fiber) => start(fiber, stages, request, key, body) as Effect.Effect<A, E | E2, R>)

/** The response a stream's stages see at its end: what its `Finish` chunk reports (no text). */
const finished = (finish: StreamChunk & { readonly _tag: "Finish" }): LlmResponse => ({
  text: "",
  finishReason: finish.finishReason,
  usage: finish.usage,
  provider: finish.provider,
  model: finish.model,
  ...(finish.rateLimit === undefined ? {} : { rateLimit: finish.rateLimit })
})

/**
 * Runs a stream through `stages` under `key`: they enter before the stream starts (a refusal fails it) and
 * exit once when it ends, however it ends, seeing a success built from its `Finish` chunk. A stage's failing
 * exit cannot change a stream that has already been delivered: only `complete` replaces outcomes.
 */
export const runStream = <E, R>(
  stages: ReadonlyArray<Stage<unknown>>,
  request: LlmRequest,
  key: string,
  self: Stream.Stream<StreamChunk, E, R>
): Stream.Stream<StreamChunk, E | LlmError, R> =>
  stages.length === 0
    ? self
    : Stream.unwrap(
        Effect.withFiber((fiber) => {
          // The stream's closures let go of the run (and through it of the fiber) once it ended: V8 allocates
          // the closure of each stream combinator effect builds in the old generation, where a dead one keeps
          // what it references through every scavenge until the next mark-compact (streams run one at a time
          // through `Resilience`: 24.2 -> 23.6 KB per stream promoted and then collected as garbage).
          let run: Run | undefined = new Run(stages, request, key, fiber, now(fiber), Effect.void, undefined, undefined)
          let finish: (StreamChunk & { readonly _tag: "Finish" }) | undefined
          const end = (exit: Exit.Exit<unknown, unknown>) => {
            const r = run
            if (r === undefined) return Effect.void
            run = undefined
            r.endMs = now(r.fiber)
            const seen = exit._tag === "Success" && finish !== undefined ? Exit.succeed(finished(finish)) : exit
            finish = undefined
            return Effect.asVoid(Effect.exit(exitFrom(r, r.entered - 1, seen)))
          }
          const guarded = Stream.onExit(
            Stream.mapArray(self, (chunks) => {
              for (const chunk of chunks) if (chunk._tag === "Finish") finish = chunk
              return chunks
            }),
            end
          )
          return Effect.uninterruptible(
            Effect.matchCauseEffect(
              // (through `run`: a closure of this scope that held the run itself would keep it for all of them)
              Effect.suspend(() => (run === undefined ? Effect.void : enter(run, 0))),
              {
                onSuccess: () => Effect.succeed(guarded),
                onFailure: (cause) => Effect.andThen(end(Exit.failCause(cause)), Effect.failCause(cause))
              }
            )
          ) as Effect.Effect<Stream.Stream<StreamChunk, E | LlmError, R>, LlmError>
        })
      )

/**
 * A shared deadline timer: the cheap way to put a time limit on many concurrent effects.
 *
 * `Effect.timeout` races the effect against `Clock.sleep` with `raceFirst`, which forks two fibers and
 * arms one timer per call. Here a guarded effect runs on the caller's own fiber, and its deadline is pushed
 * onto a min-heap shared by every call of a stage. One timer fiber sleeps (through the `Clock`, so
 * `TestClock` drives it) until the earliest deadline that may still matter; calls that finish in time only
 * clear their entry, and finished entries are dropped lazily, from the top of the heap when the next call
 * registers or when the timer next wakes. With a fixed timeout per path the deadlines arrive in order, so a
 * push is O(1) and one timer serves every call in a window.
 *
 * When a deadline passes, the caller's fiber is suspended somewhere inside the guarded effect (in the
 * provider's socket read, say). The timer resumes it there with an interruption, exactly as
 * `Fiber.interrupt` would, but without marking the fiber itself as interrupted: the guarded effect unwinds
 * as an interrupted effect does (its finalizers run, the HTTP client aborts its request, permits are given
 * back) until the guard's own frame, which turns the interruption into the timeout error and lets the caller
 * carry on (retry, fall back). Effect has no public operation for "interrupt this region of a fiber", so this
 * resumes the fiber through `evaluate`, the method every `Effect.callback` resumption goes through; when the
 * running Effect's fibers do not have it (a future internal change), {@link makeUnsafe} falls back to
 * running each guarded effect on a forked fiber and interrupting that one (`forkFree` tells which path is
 * in use; a test pins it, so such a change is noticed).
 *
 * Once its scope closes the timer fires nothing. A guarded effect started after that would have no deadline
 * at all (a stalled call would hang), so `within` and `withinMs` die at once instead, with a defect naming
 * the timer's owner: using a released resource is a bug in the caller's wiring, not a condition to handle.
 * {@link DeadlineTimer.released} is that defect, for callers that guard by other means (`guard`).
 *
 * @internal
 */
import { Cause, Clock, type Context, Duration, Effect, Exit, Fiber, type Scope } from "effect"

/**
 * A scheduled callback. Clear `fire` to cancel it (the entry is dropped lazily).
 *
 * @internal
 */
export interface Entry {
  readonly deadline: number
  fire: (() => void) | undefined
}

/** @internal */
export interface DeadlineTimer {
  /** Milliseconds on the timer's monotonic clock. */
  readonly now: () => number
  /**
   * `undefined` while the timer's scope is open; after it closed, the defect that every guarded effect
   * dies with (see the module doc).
   */
  readonly released: Exit.Exit<never> | undefined
  /** Whether guarded effects run on the caller's fiber (else each on a forked one; see the module doc). */
  readonly forkFree: boolean
  /** Whether {@link DeadlineTimer.guard} can guard `fiber` now: it can be resumed and is interruptible. */
  readonly canGuard: (fiber: Fiber.Fiber<unknown, unknown>) => boolean
  /** Calls `fire` at the absolute `deadline` unless the returned entry's `fire` is cleared first. */
  readonly schedule: (deadline: number, fire: () => void) => Entry
  /**
   * Runs `self` but gives up at the absolute `deadline` (from {@link DeadlineTimer.now}): the effect is
   * interrupted (its finalizers have run when this returns) and `onTimeout()` fails instead.
   */
  readonly within: <A, E, R, E2>(
    self: Effect.Effect<A, E, R>,
    deadline: number,
    onTimeout: () => E2
  ) => Effect.Effect<A, E | E2, R>
  /**
   * Guards `fiber` itself until the absolute `deadline`: at the deadline the fiber is resumed with an
   * interruption. Only for a caller whose frame is already on the fiber's stack and ends the guard (`end()`
   * says whether the deadline came first). `undefined` when the fiber cannot be resumed from outside.
   * A closed timer never fires a guard: check {@link DeadlineTimer.released} first.
   */
  readonly guard: (fiber: Fiber.Fiber<unknown, unknown>, deadline: number) => Guard | undefined
  /** Like {@link DeadlineTimer.within}, with the deadline `ms` after the effect starts. */
  readonly withinMs: <A, E, R, E2>(
    self: Effect.Effect<A, E, R>,
    ms: number,
    onTimeout: () => E2
  ) => Effect.Effect<A, E | E2, R>
}

/**
 * One guarded call in flight: its heap entry, and what the deadline or the call's end needs. Everything
 * per call lives in this one object (plus the child fiber, the callback and its observer); the references
 * are dropped as soon as the race is decided, since a decided entry stays in the heap until its deadline.
 */
class Race<A, E, E2> implements Entry {
  readonly deadline: number
  fire: (() => void) | undefined = fireRace
  child: Fiber.Fiber<A, E> | undefined
  onTimeout: (() => E2) | undefined
  resume: ((effect: Effect.Effect<A, E | E2>) => void) | undefined = undefined
  constructor(deadline: number, child: Fiber.Fiber<A, E>, onTimeout: () => E2) {
    this.deadline = deadline
    this.child = child
    this.onTimeout = onTimeout
  }
  /** The call ended first (the child's observer). */
  done(exit: Exit.Exit<A, E>): void {
    if (this.fire === undefined) return
    const resume = this.resume!
    this.clear()
    resume(exit)
  }
  clear(): void {
    this.fire = undefined
    this.child = undefined
    this.onTimeout = undefined
    this.resume = undefined
  }
}

/** The deadline came first: interrupt the call, then fail with the timeout error. */
function fireRace(this: Race<unknown, unknown, unknown>): void {
  const child = this.child!
  const onTimeout = this.onTimeout!
  const resume = this.resume!
  this.clear()
  resume(Effect.andThen(Fiber.interrupt(child), Effect.fail(onTimeout())))
}

/**
 * The members of Effect's fiber implementation that resuming a suspended fiber needs (`FiberImpl` in
 * effect/src/internal/effect.ts): `evaluate` is what an `Effect.callback`'s `resume` calls.
 */
interface Resumable {
  readonly evaluate: (effect: Effect.Effect<unknown, unknown>) => void
  readonly interruptible: boolean
  readonly _running: boolean
}

const isResumable = (fiber: unknown): fiber is Resumable => {
  const f = fiber as Partial<Record<keyof Resumable, unknown>>
  return typeof f.evaluate === "function" && typeof f.interruptible === "boolean" && typeof f._running === "boolean"
}

/** What the timer resumes an overdue fiber with: an interruption, so that the guarded effect unwinds. */
const overdue = Exit.failCause(Cause.interrupt())

/**
 * One guarded call on the caller's fiber. `fiber` is set while the guarded effect runs; `fired` once the
 * deadline resumed the fiber.
 */
export class Guard implements Entry {
  deadline: number
  fire: (() => void) | undefined = fireGuard
  fiber: Resumable | undefined
  fired = false
  readonly retry: (entry: Guard) => void
  constructor(deadline: number, fiber: Resumable, retry: (entry: Guard) => void) {
    this.deadline = deadline
    this.fiber = fiber
    this.retry = retry
  }
  /** The guarded effect ended (either way): whether the deadline came first. */
  end(): boolean {
    this.fire = undefined
    this.fiber = undefined
    return this.fired
  }
}

/**
 * The deadline came first. A fiber that is running right now (it drives the clock itself) or is in an
 * uninterruptible region cannot be resumed from outside: try again a moment later, as `Fiber.interrupt`
 * waits for an uninterruptible region to end.
 */
function fireGuard(this: Guard): void {
  const fiber = this.fiber!
  if (fiber._running || !fiber.interruptible) return this.retry(this)
  this.fired = true
  this.fire = undefined
  this.fiber = undefined
  fiber.evaluate(overdue)
}

/**
 * A timer bound to the `Clock` and context of the constructing fiber; its timer fibers are interrupted
 * when the scope closes. `owner` names the timer's user in the defect of a use after that (see the module
 * doc).
 *
 * @internal
 */
export const makeFor = (owner: string): Effect.Effect<DeadlineTimer, never, Scope.Scope> =>
  Effect.withFiber((fiber) => {
    const timer = makeUnsafe(fiber.getRef(Clock.Clock), fiber.context, owner)
    return Effect.as(
      Effect.addFinalizer(() => timer.close),
      timer
    )
  })

/**
 * {@link makeFor} for a timer without a more specific owner.
 *
 * @internal
 */
export const make: Effect.Effect<DeadlineTimer, never, Scope.Scope> = makeFor("a deadline timer")

/**
 * The defect of a timer used after its scope closed.
 *
 * @internal
 */
export const releasedDefect = (owner: string): Error =>
  new Error(
    `${owner} was used after the scope that built it closed (its layer was released): it can no longer ` +
      `time anything out, so the call is refused rather than left without a deadline. Keep the provider ` +
      `inside the scope (or ManagedRuntime) that built it.`
  )

/** @internal */
export const makeUnsafe = (
  clock: Clock.Clock,
  context: Context.Context<never>,
  owner = "a deadline timer"
): DeadlineTimer & { readonly close: Effect.Effect<void> } => {
  const heap: Array<Entry> = []
  /** Deadlines of armed timer fibers, ascending. */
  const armed: Array<number> = []
  const timerFibers = new Set<Fiber.Fiber<void>>()
  let released: Exit.Exit<never> | undefined
  const now = () => Number(clock.monotonicTimeNanosUnsafe()) / 1_000_000
  const fork = Effect.runForkWith(context)

  const push = (entry: Entry) => {
    let i = heap.push(entry) - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent].deadline <= entry.deadline) break
      heap[i] = heap[parent]
      i = parent
    }
    heap[i] = entry
  }

  const pop = () => {
    const top = heap[0]
    const last = heap.pop()!
    if (heap.length > 0) {
      let i = 0
      const n = heap.length
      for (;;) {
        const l = 2 * i + 1
        if (l >= n) break
        const r = l + 1
        const c = r < n && heap[r].deadline < heap[l].deadline ? r : l
        if (heap[c].deadline >= last.deadline) break
        heap[i] = heap[c]
        i = c
      }
      heap[i] = last
    }
    return top
  }

  const arm = (at: number) => {
    if (released !== undefined) return
    let i = armed.length
    while (i > 0 && armed[i - 1] > at) i--
    armed.splice(i, 0, at)
    const fiber = fork(
      Effect.andThen(
        clock.sleep(Duration.millis(Math.max(0, at - now()))),
        Effect.sync(() => tick(at))
      )
    )
    if (fiber.pollUnsafe() === undefined) {
      timerFibers.add(fiber)
      fiber.addObserver(() => timerFibers.delete(fiber))
    }
  }

  const tick = (at: number) => {
    const i = armed.indexOf(at)
    if (i !== -1) armed.splice(i, 1)
    const t = now()
    while (heap.length > 0 && (heap[0].fire === undefined || heap[0].deadline <= t)) {
      const entry = pop()
      const fire = entry.fire
      if (fire !== undefined) {
        entry.fire = undefined
        fire.call(entry)
      }
    }
    if (heap.length > 0 && (armed.length === 0 || armed[0] > heap[0].deadline)) arm(heap[0].deadline)
  }

  const register = (entry: Entry) => {
    // Entries of calls that already finished are dropped from the top now rather than when the timer wakes:
    // with one timeout per path they finish roughly in deadline order, so this keeps the heap at about the
    // calls in flight instead of every call of the last timeout period.
    while (heap.length > 0 && heap[0].fire === undefined) pop()
    push(entry)
    if (armed.length === 0 || armed[0] > entry.deadline) arm(entry.deadline)
  }

  const schedule = (deadline: number, fire: () => void): Entry => {
    const entry: Entry = { deadline, fire }
    register(entry)
    return entry
  }

  /** A fiber that could not be resumed at its deadline is tried again a millisecond later. */
  const retryLater = (guard: Guard) => {
    guard.deadline = now() + 1
    guard.fire = fireGuard
    register(guard)
  }

  /**
   * Runs `self` on `fiber` itself. The guard is registered inside the frame that ends it, so that however
   * the fiber is resumed, the frame is there to turn the interruption into the timeout.
   */
  const canGuard = (fiber: Fiber.Fiber<unknown, unknown>): fiber is Fiber.Fiber<unknown, unknown> & Resumable =>
    isResumable(fiber) && fiber.interruptible

  const guard = (fiber: Fiber.Fiber<unknown, unknown>, deadline: number): Guard | undefined => {
    if (!isResumable(fiber)) return undefined
    const g = new Guard(deadline, fiber, retryLater)
    register(g)
    return g
  }

  const guardOn = <A, E, R, E2>(
    fiber: Resumable,
    self: Effect.Effect<A, E, R>,
    deadline: number,
    onTimeout: () => E2
  ): Effect.Effect<A, E | E2, R> => {
    const guard = new Guard(deadline, fiber, retryLater)
    // Uninterruptible around the frame (`self` itself is interruptible): an interruption of the caller then
    // still reaches the handlers, which clear the guard.
    return Effect.uninterruptible(
      Effect.matchCauseEffect(
        Effect.suspend(() => {
          register(guard)
          return Effect.interruptible(self)
        }),
        {
          onSuccess: (a: A): Effect.Effect<A, E | E2> => (guard.end() ? Effect.fail(onTimeout()) : Effect.succeed(a)),
          onFailure: (cause: Cause.Cause<E>): Effect.Effect<A, E | E2> =>
            guard.end() ? Effect.fail(onTimeout()) : Effect.failCause(cause)
        }
      )
    )
  }

  const race = <A, E, R, E2>(
    parent: Fiber.Fiber<unknown, unknown>,
    self: Effect.Effect<A, E, R>,
    deadline: number,
    onTimeout: () => E2
  ): Effect.Effect<A, E | E2, R> => {
    // (a caller in an uninterruptible region cannot be resumed by the deadline: its effect gets a fiber of its own)
    if (canGuard(parent)) return guardOn(parent, self, deadline, onTimeout)
    const child = Effect.runForkWith(parent.context as Context.Context<R>)(self)
    const done = child.pollUnsafe()
    if (done !== undefined) return done
    const entry = new Race<A, E, E2>(deadline, child, onTimeout)
    return Effect.callback<A, E | E2>((resume) => {
      entry.resume = resume
      child.addObserver((exit: Exit.Exit<A, E>) => entry.done(exit))
      if (entry.fire !== undefined) register(entry as Entry)
      // the caller was interrupted: so is the call (the race is decided first, so nothing resumes)
      return Effect.suspend(() => {
        entry.clear()
        return Fiber.interrupt(child)
      })
    })
  }

  const within = <A, E, R, E2>(
    self: Effect.Effect<A, E, R>,
    deadline: number,
    onTimeout: () => E2
  ): Effect.Effect<A, E | E2, R> => Effect.withFiber((parent) => released ?? race(parent, self, deadline, onTimeout))

  const withinMs = <A, E, R, E2>(
    self: Effect.Effect<A, E, R>,
    ms: number,
    onTimeout: () => E2
  ): Effect.Effect<A, E | E2, R> => Effect.withFiber((parent) => released ?? race(parent, self, now() + ms, onTimeout))

  const close = Effect.suspend(() => {
    released = Exit.die(releasedDefect(owner))
    heap.length = 0
    return Fiber.interruptAll(timerFibers)
  })
  return {
    now,
    get released() {
      return released
    },
    forkFree: isResumable(Effect.runFork(Effect.void)),
    schedule,
    canGuard,
    guard,
    within,
    withinMs,
    close
  }
}

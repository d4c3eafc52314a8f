/**
 * Hedged requests: when the primary has not answered after a hedge delay, start a second attempt (the
 * fallback plan's next step) in parallel; the first success wins and the loser is interrupted.
 *
 * - The delay is fixed (`delayMs`), or the observed `percentile` of recent primary latencies (e.g. p95:
 *   only the slowest 5 % of calls are hedged), with `delayMs` used until `minSamples` latencies are known.
 * - The loser is interrupted through normal Effect interruption, so its finalizers run: an admission
 *   reservation or permit it holds is released before the winner's result is returned. Its cost is
 *   accounted: `hedge_wasted_calls` and `hedge_wasted_input_tokens` count it, and `onLoser` (e.g. a spend
 *   guard) is told about it.
 * - A stream is hedged only until it delivers its first chunk: the race is over the first chunk, and once a
 *   chunk has been delivered no hedge starts (a delivered token commits the call).
 * - A cap bounds the extra load: at most `maxPerMinute` hedges in a minute, and at most `maxRatio` hedges per
 *   request over that minute. A hedge the cap refuses is counted in `hedges_capped` and the primary runs on.
 *
 * If the primary fails before the delay, the hedge is not started and the failure is returned at once (the
 * fallback plan then moves on as usual). If both fail, the failure of the attempt that ended last is
 * returned.
 *
 * @since 0.1.0
 */
import type { NonEmptyReadonlyArray } from "effect/Array"
import { Cause, Channel, type Context, Effect, Exit, Fiber, Metric, Pull, Schema, Scope, Stream } from "effect"
import * as Deadline from "./internal/deadline.ts"
import { millis } from "./internal/duration.ts"
import * as Latency from "./internal/latency.ts"
import { SeriesCache } from "./internal/metrics.ts"

/**
 * The numeric options of {@link make}, decoded with Schema (a bad value fails construction naming its field).
 *
 * - `delayMs` (default 2 000): the fixed hedge delay, and the delay used before enough samples are known.
 * - `percentile` (default none): hedge at this percentile (0 < p <= 100) of observed primary latencies.
 * - `window` (default 200): how many recent latencies the percentile is computed over.
 * - `minSamples` (default 20): latencies needed before the percentile is used.
 * - `minDelayMs` (default 0): a floor under the percentile-derived delay.
 * - `maxPerMinute` (default none): at most this many hedges per minute.
 * - `maxRatio` (default 0.1): at most this fraction of the minute's requests is hedged.
 *
 * @example
 * ```ts
 * import type { Hedge } from "@llm-resilience/core"
 * const options: Hedge.Options = { percentile: 95, delayMs: 1_500, maxRatio: 0.05, maxPerMinute: 100 }
 * ```
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  delayMs: Schema.optional(Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))),
  percentile: Schema.optional(Schema.Number.check(Schema.isGreaterThan(0), Schema.isLessThanOrEqualTo(100))),
  window: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
  minSamples: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))),
  minDelayMs: Schema.optional(Schema.Number.check(Schema.isGreaterThanOrEqualTo(0))),
  maxPerMinute: Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))),
  maxRatio: Schema.optional(Schema.Number.check(Schema.isGreaterThanOrEqualTo(0), Schema.isLessThanOrEqualTo(1)))
})

/**
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * The `hedge` of a path in `Resilience.Config`: the main {@link Options}, `delayMs` in milliseconds or as a
 * duration string such as `"1500 millis"`.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Hedge } from "@llm-resilience/core"
 * const hedge = Schema.decodeUnknownSync(Hedge.Config)({ percentile: 95, delayMs: "2 seconds", maxRatio: 0.05 })
 * ```
 * @since 0.1.0
 */
export const Config = Schema.Struct({
  delayMs: Schema.optional(millis(Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0)))),
  percentile: Options.fields.percentile,
  maxRatio: Options.fields.maxRatio,
  maxPerMinute: Options.fields.maxPerMinute
})

/**
 * Who raced whom, for metrics and cost accounting. `inputTokens` is the estimated prompt size of the
 * request, charged to the loser.
 *
 * @example
 * ```ts
 * import type { Hedge } from "@llm-resilience/core"
 * const labels: Hedge.Labels = { primary: "openai/gpt-5.4", hedge: "anthropic/claude-sonnet-4-6", inputTokens: 850 }
 * ```
 * @since 0.1.0
 */
export interface Labels {
  readonly primary: string
  readonly hedge: string
  readonly inputTokens?: number | undefined
}

/**
 * What {@link make}'s `onLoser` hook hears about an interrupted loser.
 *
 * @example
 * ```ts
 * import type { Hedge } from "@llm-resilience/core"
 * const log = (loser: Hedge.Loser) => console.log(`${loser.label} lost after ${loser.elapsedMs} ms`)
 * ```
 * @since 0.1.0
 */
export interface Loser {
  readonly label: string
  readonly role: "primary" | "hedge"
  /** How long the loser ran before it was interrupted. */
  readonly elapsedMs: number
  readonly inputTokens: number
}

/**
 * A hedging policy with its state (latencies, the cap's counters).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Hedge } from "@llm-resilience/core"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const hedge = yield* Hedge.make({ delayMs: 500 })
 *   return yield* hedge.race(Effect.succeed("primary"), Effect.succeed("backup"), { primary: "a", hedge: "b" })
 * }))
 * ```
 * @since 0.1.0
 */
export interface Hedge {
  /** Runs `primary`; after the hedge delay (cap permitting) also `hedge`; the first success wins. */
  readonly race: <A, E, R>(
    primary: Effect.Effect<A, E, R>,
    hedge: Effect.Effect<A, E, R>,
    labels: Labels
  ) => Effect.Effect<A, E, R>
  /** The same race over the first chunk of two streams; the winner's stream continues. */
  readonly raceStream: <A, E, R>(
    primary: Stream.Stream<A, E, R>,
    hedge: Stream.Stream<A, E, R>,
    labels: Labels
  ) => Stream.Stream<A, E, R>
  /** The delay a race started now would use. */
  readonly currentDelayMs: () => number
}

/**
 * Hedges started, by `from` (primary) and `to` (hedge).
 *
 * @since 0.1.0
 */
export const hedgesStarted = Metric.counter("hedges_started", {
  description: "hedge attempts started, by from and to",
  incremental: true
})

/**
 * Finished hedged races, by `from`, `to` and `winner` (`primary` or `hedge`).
 *
 * @since 0.1.0
 */
export const hedgeWins = Metric.counter("hedge_wins", {
  description: "hedged races won, by from, to and winner",
  incremental: true
})

/**
 * Hedges the cap refused, by `from`.
 *
 * @since 0.1.0
 */
export const hedgesCapped = Metric.counter("hedges_capped", {
  description: "hedges not started because of the hedge cap",
  incremental: true
})

/**
 * Interrupted losers, by `step`: calls paid for (at least their prompt) without a used answer.
 *
 * @since 0.1.0
 */
export const hedgeWastedCalls = Metric.counter("hedge_wasted_calls", {
  description: "interrupted hedge losers, by step",
  incremental: true
})

/**
 * The estimated input tokens of interrupted losers, by `step`.
 *
 * @since 0.1.0
 */
export const hedgeWastedInputTokens = Metric.counter("hedge_wasted_input_tokens", {
  description: "estimated input tokens of interrupted hedge losers, by step",
  incremental: true
})

const minuteMs = 60_000

/**
 * Builds a hedging policy. Its timer lives in the current `Scope` and follows the building fiber's `Clock`.
 * Once that scope has closed, every race dies at once with a defect naming `Hedge`: using a released
 * policy is a wiring bug, and without its timer no hedge would ever start.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Hedge } from "@llm-resilience/core"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const hedge = yield* Hedge.make({ percentile: 95, delayMs: 2_000, maxRatio: 0.05 }, {
 *     onLoser: (loser) => Effect.log(`hedge loser ${loser.label}`)
 *   })
 *   return hedge.currentDelayMs()
 * }))
 * ```
 * @since 0.1.0
 */
export const make: (
  options?: typeof Options.Encoded,
  hooks?: { readonly onLoser?: ((loser: Loser) => Effect.Effect<void>) | undefined }
) => Effect.Effect<Hedge, Schema.SchemaError, Scope.Scope> = Effect.fnUntraced(function* (options = {}, hooks = {}) {
  const o = yield* Schema.decodeUnknownEffect(Options)(options)
  const fixedDelay = o.delayMs ?? 2_000
  const minDelay = o.minDelayMs ?? 0
  const maxRatio = o.maxRatio ?? 0.1
  const maxPerMinute = o.maxPerMinute ?? Infinity
  const latencies =
    o.percentile === undefined ? undefined : Latency.make(o.window ?? 200, o.percentile, o.minSamples ?? 20)
  const timer = yield* Deadline.makeFor("Hedge")
  const onLoser = hooks.onLoser
  // the metric series of this hedge's pairs, released with it
  const series = new SeriesCache()
  const tagged = <In, Out>(metric: Metric.Metric<In, Out>, attributes: Readonly<Record<string, string>>) =>
    series.tagged(metric, attributes)

  let windowStart = timer.now()
  let requests = 0
  let hedges = 0
  const roll = (now: number) => {
    if (now - windowStart >= minuteMs) {
      windowStart = now
      requests = 0
      hedges = 0
    }
  }
  const admitHedge = (now: number): boolean => {
    roll(now)
    if (hedges >= maxPerMinute || hedges + 1 > maxRatio * requests) return false
    hedges++
    return true
  }

  const currentDelayMs = () => {
    const p = latencies?.percentile()
    return p === undefined ? fixedDelay : Math.max(minDelay, p)
  }

  const loserAccounting = (label: string, role: Loser["role"], startedAt: number, inputTokens: number) =>
    Effect.suspend(() => {
      const elapsedMs = timer.now() - startedAt
      const attrs = { step: label }
      const account = Effect.andThen(
        Metric.update(tagged(hedgeWastedCalls, attrs), 1),
        Metric.update(tagged(hedgeWastedInputTokens, attrs), inputTokens)
      )
      return onLoser === undefined ? account : Effect.andThen(account, onLoser({ label, role, elapsedMs, inputTokens }))
    })

  /**
   * The core race, shared by effects and streams: `onWin` turns the winner's exit (and the loser to stop)
   * into the effect the caller resumes with.
   */
  const raceCore = <A, E, R>(
    primary: Effect.Effect<A, E, R>,
    backup: Effect.Effect<A, E, R>,
    labels: Labels
  ): Effect.Effect<A, E, R> =>
    Effect.withFiber((parent) => {
      // a closed timer starts no hedge: a race after release would silently run the primary alone
      if (timer.released !== undefined) return timer.released
      const start = timer.now()
      roll(start)
      requests++
      const fork = Effect.runForkWith(parent.context as Context.Context<R>) as <X, Y>(
        effect: Effect.Effect<X, Y, R>
      ) => Fiber.Fiber<X, Y>
      const p = fork(primary)
      const done = p.pollUnsafe()
      if (done !== undefined) {
        if (latencies !== undefined && Exit.isSuccess(done)) latencies.record(0)
        return done
      }
      const inputTokens = labels.inputTokens ?? 0
      const pair = { from: labels.primary, to: labels.hedge }
      return Effect.callback<A, E, R>((resume) => {
        let settled = false
        let h: Fiber.Fiber<A, E> | undefined
        let hStart = 0
        let pFailed: Exit.Exit<A, E> | undefined
        let hFailed: Exit.Exit<A, E> | undefined
        const settle = (effect: Effect.Effect<A, E, R>) => {
          settled = true
          entry.fire = undefined
          resume(effect)
        }
        const win = (winner: "primary" | "hedge", exit: Exit.Exit<A, E>, loser: Fiber.Fiber<A, E> | undefined) => {
          const counted = Metric.update(tagged(hedgeWins, { from: pair.from, to: pair.to, winner }), 1)
          if (loser === undefined || loser.pollUnsafe() !== undefined) return settle(Effect.andThen(counted, exit))
          const loserLabel = winner === "primary" ? labels.hedge : labels.primary
          const loserStart = winner === "primary" ? hStart : start
          settle(
            Effect.andThen(
              Fiber.interrupt(loser),
              Effect.andThen(
                loserAccounting(loserLabel, winner === "primary" ? "hedge" : "primary", loserStart, inputTokens),
                Effect.andThen(counted, exit)
              )
            )
          )
        }
        p.addObserver((exit) => {
          if (settled) return
          if (Exit.isSuccess(exit)) {
            latencies?.record(timer.now() - start)
            return h === undefined ? settle(exit) : win("primary", exit, h)
          }
          if (h === undefined || hFailed !== undefined) return settle(exit)
          pFailed = exit
        })
        const entry = timer.schedule(start + currentDelayMs(), () => {
          if (settled) return
          if (!admitHedge(timer.now())) {
            return tagged(hedgesCapped, { from: labels.primary }).updateUnsafe(1, parent.context)
          }
          hStart = timer.now()
          tagged(hedgesStarted, pair).updateUnsafe(1, parent.context)
          const fiber = fork(backup)
          h = fiber
          fiber.addObserver((exit) => {
            if (settled) return
            if (Exit.isSuccess(exit)) return win("hedge", exit, p)
            if (pFailed !== undefined) return settle(exit)
            hFailed = exit
          })
        })
        return Effect.suspend(() => {
          settled = true
          entry.fire = undefined
          return Fiber.interruptAll(h === undefined ? [p] : [p, h])
        })
      })
    })

  const race = <A, E, R>(
    primary: Effect.Effect<A, E, R>,
    hedge: Effect.Effect<A, E, R>,
    labels: Labels
  ): Effect.Effect<A, E, R> => raceCore(primary, hedge, labels)

  const raceStream = <A, E, R>(
    primary: Stream.Stream<A, E, R>,
    hedge: Stream.Stream<A, E, R>,
    labels: Labels
  ): Stream.Stream<A, E, R> =>
    Stream.fromChannel(
      Channel.fromTransform((_, scope) =>
        Effect.gen(function* () {
          const primaryScope = Scope.forkUnsafe(scope)
          const hedgeScope = Scope.forkUnsafe(scope)
          type First = readonly [
            role: "primary" | "hedge",
            chunk: NonEmptyReadonlyArray<A>,
            pull: Pull.Pull<NonEmptyReadonlyArray<A>, E, void, R>
          ]
          const firstOf = (
            role: "primary" | "hedge",
            stream: Stream.Stream<A, E, R>,
            streamScope: Scope.Closeable
          ): Effect.Effect<First, E | Cause.Done<void>, R> =>
            Effect.flatMap(Channel.toPullScoped(stream.channel, streamScope), (pull) =>
              Effect.map(pull, (chunk): First => [role, chunk, pull])
            )
          const first = yield* Pull.catchDone(
            raceCore(firstOf("primary", primary, primaryScope), firstOf("hedge", hedge, hedgeScope), labels),
            () => Effect.succeed(undefined)
          )
          if (first === undefined) return Cause.done() as Pull.Pull<NonEmptyReadonlyArray<A>, E, void, R>
          const [role, chunk, pull] = first
          yield* Scope.close(role === "primary" ? hedgeScope : primaryScope, Exit.void)
          let pending: NonEmptyReadonlyArray<A> | undefined = chunk
          return Effect.suspend((): Pull.Pull<NonEmptyReadonlyArray<A>, E, void, R> => {
            if (pending === undefined) return pull
            const out = pending
            pending = undefined
            return Effect.succeed(out)
          })
        })
      )
    )

  return { race, raceStream, currentDelayMs }
})

/**
 * A retry budget shared by every call to a key (`provider/model`), in the style of Finagle's RetryBudget and
 * gRPC retry throttling: retries may not exceed a `ratio` of the requests seen over a sliding `window`, plus a
 * small floor of `minRetriesPerSecond` so that low traffic can still retry.
 *
 * Accounting (per key):
 * - every request deposits `ratio` credit into the current slice of the window; credit older than `window`
 *   expires unused;
 * - a retry withdraws one whole credit, oldest first; when less than one credit is left, it draws from the
 *   floor instead: a token bucket of capacity `max(1, minRetriesPerSecond)` refilled at
 *   `minRetriesPerSecond` per second;
 * - when neither has a whole token, the retry is refused and `Retry` fails fast with
 *   `LlmError.RetryBudgetExhausted` carrying the error that would have been retried.
 *
 * So over any run of `T` seconds with `R` requests, at most `ratio * R + max(1, minRetriesPerSecond) +
 * minRetriesPerSecond * T` retries happen: during an outage the budget turns a retry storm into at most a
 * tenth more traffic (default ratio 10%).
 *
 * State lives behind the small {@link Store} interface; {@link memoryStore} keeps it in process and follows
 * Effect's `Clock` (so TestClock drives it). A shared store (e.g. Redis) can implement the same interface.
 *
 * @since 0.1.0
 */
import { KeyedState } from "./internal/keyedState.ts"
import { Duration, Effect, Schema } from "effect"
import { millis } from "./internal/duration.ts"

/**
 * Options of a retry budget.
 *
 * - `ratio` (default 0.1): retries allowed per request over the window (0 to 10).
 * - `window` (default 10 s): how long a request's credit stays usable.
 * - `minRetriesPerSecond` (default 1): the floor, available even without traffic (0 disables it).
 *
 * @example
 * ```ts
 * import type { RetryBudget } from "@llm-resilience/core"
 * const options: RetryBudget.Options = { ratio: 0.2, window: "30 seconds", minRetriesPerSecond: 2 }
 * ```
 * @since 0.1.0
 */
export interface Options {
  readonly ratio?: number | undefined
  readonly window?: Duration.Input | undefined
  readonly minRetriesPerSecond?: number | undefined
  /** Where the per-key state lives (default: a fresh {@link memoryStore}). */
  readonly store?: Store | undefined
  /** Bounds on the keys the default in-process store keeps (see {@link KeyBounds}). */
  readonly keys?: KeyBounds | undefined
}

/**
 * The validated policy a {@link Store} applies.
 *
 * @since 0.1.0
 */
export const Policy = Schema.Struct({
  ratio: Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 10 })),
  windowMs: Schema.Finite.check(Schema.isGreaterThan(0)),
  minRetriesPerSecond: Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
})

/**
 * The `retryBudget` section of `Resilience.Config`: the budget's {@link Options} as plain data, its window as
 * `windowMs` (milliseconds, or a duration string such as `"30 seconds"`).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { RetryBudget } from "@llm-resilience/core"
 * const section = Schema.decodeUnknownSync(RetryBudget.Config)({ ratio: 0.2, windowMs: "30 seconds" })
 * ```
 * @since 0.1.0
 */
export const Config = Schema.Struct({
  ratio: Schema.optional(Policy.fields.ratio),
  windowMs: Schema.optional(millis(Policy.fields.windowMs)),
  minRetriesPerSecond: Schema.optional(Policy.fields.minRetriesPerSecond)
})

/**
 * @since 0.1.0
 */
export type Policy = typeof Policy.Type

/**
 * Per-key budget state. `deposit` records one request at `nowMs`: directly when the store is in the
 * process (it runs on every call), or as an `Effect` when it does I/O. `withdraw` tries to take one retry
 * at `nowMs` and answers whether it was granted. Implementations must make `withdraw` atomic per key.
 *
 * @example
 * ```ts
 * import { RetryBudget } from "@llm-resilience/core"
 * const store: RetryBudget.Store = RetryBudget.memoryStore()
 * ```
 * @since 0.1.0
 */
export interface Store {
  readonly deposit: (key: string, nowMs: number, policy: Policy) => void | Effect.Effect<void>
  readonly withdraw: (key: string, nowMs: number, policy: Policy) => Effect.Effect<boolean>
}

/**
 * A retry budget: records requests and grants or refuses retries per key.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RetryBudget } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const budget = yield* RetryBudget.make({ ratio: 0.1 })
 *   yield* budget.deposit("openai/gpt-5.4-mini")
 *   return yield* budget.withdraw("openai/gpt-5.4-mini") // true: the floor allows it
 * })
 * ```
 * @since 0.1.0
 */
export interface RetryBudget {
  readonly policy: Policy
  /** Records one request for `key`. */
  readonly deposit: (key: string) => Effect.Effect<void>
  /** Takes one retry for `key` if the budget allows it. */
  readonly withdraw: (key: string) => Effect.Effect<boolean>
  /**
   * Records one request for `key` at `nowMs` (from `Clock`): done on return for an in-process store, else
   * the effect that does it. `deposit` is this with the current time.
   */
  readonly depositAt: (key: string, nowMs: number) => void | Effect.Effect<void>
}

/**
 * Builds a retry budget. Invalid options fail with a `SchemaError` naming the field.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry, RetryBudget } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const budget = yield* RetryBudget.make({ ratio: 0.1, window: "10 seconds", minRetriesPerSecond: 1 })
 *   const call = Effect.succeed("answer")
 *   return yield* call.pipe(Retry.retry({ profile: "interactive", budget, key: "openai/gpt-5.4-mini" }))
 * })
 * ```
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (options?: Options) {
  const decoded = yield* Schema.decodeUnknownEffect(OptionsSchema)({
    ratio: options?.ratio ?? 0.1,
    window: windowMillis(options?.window),
    minRetriesPerSecond: options?.minRetriesPerSecond ?? 1
  })
  const policy: Policy = {
    ratio: decoded.ratio,
    windowMs: decoded.window,
    minRetriesPerSecond: decoded.minRetriesPerSecond
  }
  const store = options?.store ?? memoryStore(options?.keys)
  const depositAt = (key: string, nowMs: number) => store.deposit(key, nowMs, policy)
  const budget: RetryBudget = {
    policy,
    deposit: (key) =>
      Effect.clockWith((clock) => {
        const rest = depositAt(key, clock.currentTimeMillisUnsafe())
        return Effect.isEffect(rest) ? rest : Effect.void
      }),
    withdraw: (key) => Effect.clockWith((clock) => store.withdraw(key, clock.currentTimeMillisUnsafe(), policy)),
    depositAt
  }
  return budget
})

/** The options as decoded, with the field names the user wrote (window in milliseconds). */
const OptionsSchema = Schema.Struct({
  ratio: Policy.fields.ratio,
  window: Policy.fields.windowMs,
  minRetriesPerSecond: Policy.fields.minRetriesPerSecond
})

const windowMillis = (input: Duration.Input | undefined): number => {
  if (input === undefined) return 10_000
  const d = Duration.fromInput(input)
  return d._tag === "Some" ? Duration.toMillis(d.value) : Number.NaN
}

// ---------------------------------------------------------------------------------------------------------
// memory store
// ---------------------------------------------------------------------------------------------------------

/** Credit is kept in integer micro-tokens so that ten deposits of 0.1 make exactly one retry. */
const UNIT = 1_000_000
const SLICES = 10

interface KeyState {
  /** Slice index (floor(now / sliceMs)) that each ring position currently holds. */
  readonly slice: Float64Array
  /** Unused credit per ring position, in micro-tokens. */
  readonly credit: Float64Array
  floor: number
  floorAt: number
}

/**
 * Bounds on the keys an in-process store keeps: at most `maxKeys` [10,000]; a key unused for `idleMs`
 * [600,000] is dropped (it starts again with a full floor and no credit).
 *
 * @since 0.1.0
 */
export interface KeyBounds {
  readonly maxKeys?: number | undefined
  readonly idleMs?: number | undefined
}

/**
 * An in-process {@link Store}: per key, a ring of ten time slices covering the window, plus the floor's token
 * bucket. Follows Effect's `Clock`, so TestClock moves it. Holds at most `bounds.maxKeys` keys.
 *
 * @example
 * ```ts
 * import { RetryBudget } from "@llm-resilience/core"
 * const store = RetryBudget.memoryStore()
 * const budget = RetryBudget.make({ store })
 * ```
 * @since 0.1.0
 */
export const memoryStore = (bounds?: KeyBounds): Store => {
  const keys = new KeyedState<KeyState>(bounds)
  const stateOf = (key: string, now: number, policy: Policy): KeyState =>
    keys.getOrCreate(key, now, () => ({
      slice: new Float64Array(SLICES).fill(-Infinity),
      credit: new Float64Array(SLICES),
      floor: Math.max(1, policy.minRetriesPerSecond) * UNIT,
      floorAt: now
    }))
  const deposit = (key: string, now: number, policy: Policy): void => {
    const state = stateOf(key, now, policy)
    const current = Math.floor(now / (policy.windowMs / SLICES))
    const i = ((current % SLICES) + SLICES) % SLICES
    if (state.slice[i] !== current) {
      state.slice[i] = current
      state.credit[i] = 0
    }
    state.credit[i] += Math.round(policy.ratio * UNIT)
  }
  return {
    deposit,
    withdraw: (key, now, policy) => Effect.sync(() => withdrawUnsafe(stateOf(key, now, policy), now, policy))
  }
}

const withdrawUnsafe = (state: KeyState, now: number, policy: Policy): boolean => {
  const current = Math.floor(now / (policy.windowMs / SLICES))
  // credit from requests in the window, oldest slice first
  let available = 0
  for (let k = SLICES - 1; k >= 0; k--) {
    const s = current - k
    const i = ((s % SLICES) + SLICES) % SLICES
    if (state.slice[i] === s) available += state.credit[i]
  }
  if (available >= UNIT) {
    let owed = UNIT
    for (let k = SLICES - 1; k >= 0 && owed > 0; k--) {
      const s = current - k
      const i = ((s % SLICES) + SLICES) % SLICES
      if (state.slice[i] === s && state.credit[i] > 0) {
        const take = Math.min(owed, state.credit[i])
        state.credit[i] -= take
        owed -= take
      }
    }
    return true
  }
  // the floor: a token bucket refilled at minRetriesPerSecond
  const rate = policy.minRetriesPerSecond
  if (rate <= 0) return false
  const capacity = Math.max(1, rate) * UNIT
  if (now > state.floorAt) {
    state.floor = Math.min(capacity, state.floor + Math.floor((now - state.floorAt) * rate * (UNIT / 1000)))
    state.floorAt = now
  }
  if (state.floor >= UNIT) {
    state.floor -= UNIT
    return true
  }
  return false
}

/**
 * A retry budget shared by every call to a key (`provider/model`), in the style of Finagle's RetryBudget and
 * gRPC retry throttling: over any sliding `window`, retries may not exceed `ratio` of the requests seen in it,
 * or `minRetries` when that is more, so that low traffic can still retry.
 *
 * Accounting (per key, over a window of ten slices):
 * - every request deposits `ratio` credit into the current slice; a slice older than `window` expires with
 *   its credit and its retries;
 * - a retry is granted while the retries taken in the window stay within `max(credit in the window,
 *   minRetries)`; it is counted in the current slice;
 * - otherwise it is refused and `Retry` fails fast with `LlmError.RetryBudgetExhausted` carrying the error
 *   that would have been retried.
 *
 * The floor is a minimum, not an addition: with `R` requests in a window at most `max(ratio * R, minRetries)`
 * retries happen in it, whatever the failure rate. With the defaults (10%, one minute, 5 retries), a key
 * failing every request at 100 requests per minute retries 10 of them a minute (10% more traffic), while a
 * lone caller still gets the 5 retries of the `background` profile (docs/retries.md has the arithmetic).
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
 * - `window` (default 1 minute): the sliding window over which requests and retries are counted.
 * - `minRetries` (default 5): the floor, retries allowed per window however few the requests (0: none).
 *
 * @example
 * ```ts
 * import type { RetryBudget } from "@llm-resilience/core"
 * const options: RetryBudget.Options = { ratio: 0.2, window: "30 seconds", minRetries: 3 }
 * ```
 * @since 0.1.0
 */
export interface Options {
  readonly ratio?: number | undefined
  readonly window?: Duration.Input | undefined
  readonly minRetries?: number | undefined
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
  minRetries: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 1_000_000 }))
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
  minRetries: Schema.optional(Policy.fields.minRetries)
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
 *   const budget = yield* RetryBudget.make({ ratio: 0.1, window: "1 minute", minRetries: 5 })
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
    minRetries: options?.minRetries ?? 5
  })
  const policy: Policy = { ratio: decoded.ratio, windowMs: decoded.window, minRetries: decoded.minRetries }
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
  minRetries: Policy.fields.minRetries
})

const windowMillis = (input: Duration.Input | undefined): number => {
  if (input === undefined) return 60_000
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
  /** Credit deposited per ring position, in micro-tokens. */
  readonly credit: Float64Array
  /** Retries taken per ring position, in micro-tokens (one retry is `UNIT`). */
  readonly spent: Float64Array
}

/**
 * Bounds on the keys an in-process store keeps: at most `maxKeys` [10,000]; a key unused for `idleMs`
 * [600,000] is dropped (it starts again with no credit and no retries taken).
 *
 * @since 0.1.0
 */
export interface KeyBounds {
  readonly maxKeys?: number | undefined
  readonly idleMs?: number | undefined
}

/**
 * An in-process {@link Store}: per key, a ring of ten time slices covering the window, each with the credit
 * deposited and the retries taken in it. Follows Effect's `Clock`, so TestClock moves it. Holds at most
 * `bounds.maxKeys` keys.
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
  /** The ring position of the slice at `now`, emptied first when it held an older slice. */
  const positionAt = (key: string, now: number, policy: Policy): readonly [KeyState, number, number] => {
    const state = keys.getOrCreate(key, now, () => ({
      slice: new Float64Array(SLICES).fill(-Infinity),
      credit: new Float64Array(SLICES),
      spent: new Float64Array(SLICES)
    }))
    const current = Math.floor(now / (policy.windowMs / SLICES))
    const i = ((current % SLICES) + SLICES) % SLICES
    if (state.slice[i] !== current) {
      state.slice[i] = current
      state.credit[i] = 0
      state.spent[i] = 0
    }
    return [state, i, current]
  }
  return {
    deposit: (key, now, policy) => {
      const [state, i] = positionAt(key, now, policy)
      state.credit[i] += Math.round(policy.ratio * UNIT)
    },
    withdraw: (key, now, policy) =>
      Effect.sync(() => {
        const [state, i, current] = positionAt(key, now, policy)
        let credit = 0
        let spent = 0
        for (let k = 0; k < SLICES; k++) {
          if (state.slice[k] > current - SLICES) {
            credit += state.credit[k]
            spent += state.spent[k]
          }
        }
        if (spent + UNIT > Math.max(credit, policy.minRetries * UNIT)) return false
        state.spent[i] += UNIT
        return true
      })
  }
}

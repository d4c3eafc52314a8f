/**
 * A scripted, deterministic `LlmProvider` for tests.
 *
 * A {@link Scenario} says, per model, what each call does: succeed after a latency, stream `N` chunks at an
 * interval (text, then the answer's tool calls, if it makes any), fail with any error of the taxonomy (after a delay), stall forever, stall mid-stream, or
 * truncate a stream. Behaviours can be scripted per call (`script`: the n-th call to a model), per virtual
 * time window (`windows`: an outage from t1 to t2, relative to the fake's creation) and by a real capacity
 * (requests and tokens per minute, sliding 60 s window) that answers 429 when exceeded.
 *
 * Every wait is an `Effect.sleep` and every timestamp is read from the calling fiber's `Clock`, so under
 * `TestClock` the fake is exact to the millisecond. Every call is recorded ({@link CallRecord}): start and
 * end time, model, tokens, outcome (including calls cut by an interruption), whether it streamed.
 *
 * Resolution order for one call to model `m` at virtual time `t` (ms since creation):
 * 1. `models[m].script[n]` when this is the n-th call (0-based) to `m`;
 * 2. the first of `models[m].windows`, then of the scenario's `windows`, with `from <= t < to`;
 * 3. `models[m].behavior` (default: {@link succeed}).
 * Unless the chosen behaviour is a {@link fail}, the call then passes the model's `capacity`, which may
 * answer a 429 instead. A model missing from `models` uses `default`; with `models` given and no
 * `default`, it fails with `ModelNotFound` (404).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmProvider } from "@llm-resilience/core"
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const program = Effect.gen(function*() {
 *   const llm = yield* LlmProvider.LlmProvider
 *   const answer = yield* llm.complete({ model: "m", messages: [{ role: "user", content: "Hi" }] })
 *   const calls = yield* FakeProvider.calls
 *   return [answer.text, calls.length] as const
 * }).pipe(Effect.provide(FakeProvider.layer({ default: { latency: "200 millis", text: "Hello" } })))
 * ```
 *
 * @since 0.1.0
 */
import type { LlmError, LlmProvider, LlmRequest, RateLimitSnapshot } from "@llm-resilience/core"
import { LlmError as Errors, LlmProvider as Provider } from "@llm-resilience/core"
import { Clock, Context, Duration, Effect, Layer, Schema } from "effect"
import { compile, estimateInputTokens, makeFake, ScenarioIssue } from "./internal/fakeEngine.ts"

// ---------------------------------------------------------------------------------------------------------
// scenario
// ---------------------------------------------------------------------------------------------------------

/**
 * What a scripted error can see when it is built: use it to fill in `provider`, `model` and `requestId`.
 *
 * @since 0.1.0
 */
export interface CallContext {
  readonly provider: string
  readonly model: string
  readonly request: LlmRequest.LlmRequest
  /** 0-based index of this call among all calls to this model. */
  readonly callIndex: number
  /** Virtual milliseconds since the fake was created. */
  readonly elapsedMs: number
  /** The fake's request id for this call (`<name>-req-<seq>`). */
  readonly requestId: string
  readonly streamed: boolean
}

/**
 * An error to fail with: a ready value, or a function of the call (see {@link rateLimited}).
 *
 * @since 0.1.0
 */
export type ErrorSpec = LlmError.ProviderError | ((context: CallContext) => LlmError.ProviderError)

/**
 * How a streamed answer is cut: `chunks` text chunks (default 1), then the pieces of its tool calls (see
 * {@link ToolCall}), the first chunk after the latency, each next one `interval` (default 0) later. `Finish`
 * arrives with the last chunk.
 *
 * @since 0.1.0
 */
export interface StreamShape {
  readonly chunks: number
  readonly interval?: Duration.Input | undefined
}

/**
 * A tool call the answer makes (its finish reason is then `tool_calls`). A stream delivers each call, after
 * the text, as two `ToolCallDelta` pieces on the stream's schedule: the first with its `id` (default
 * `call_<n>`, `n` its position) and `name`, the second with its `arguments` (no second piece when they are
 * empty). A stream cut part-way (`stallMidStream`, `truncate`) can so end inside a call.
 *
 * @example
 * ```ts
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const weather: FakeProvider.ToolCall = { name: "get_weather", arguments: '{"city":"Paris"}' }
 * const scenario: FakeProvider.Scenario = { default: { text: "", toolCalls: [weather] } }
 * ```
 * @since 0.1.0
 */
export interface ToolCall {
  readonly name: string
  /** The call's arguments: JSON text. */
  readonly arguments: string
  readonly id?: string | undefined
}

/**
 * Answer normally. Fields given here override the model's.
 *
 * @since 0.1.0
 */
export interface Succeed {
  readonly _tag: "Succeed"
  readonly latency?: Duration.Input | undefined
  readonly text?: string | undefined
  readonly toolCalls?: ReadonlyArray<ToolCall> | undefined
  readonly outputTokens?: number | undefined
  readonly stream?: StreamShape | undefined
}

/**
 * Fail with `error` after `after` (default 0): before any chunk when streamed.
 *
 * @since 0.1.0
 */
export interface Fail {
  readonly _tag: "Fail"
  readonly error: ErrorSpec
  readonly after?: Duration.Input | undefined
}

/**
 * Never answer (no chunk either) until interrupted.
 *
 * @since 0.1.0
 */
export interface Stall {
  readonly _tag: "Stall"
}

/**
 * Stream `afterChunks` chunks on schedule, then go silent forever. `complete` stalls from the start.
 *
 * @since 0.1.0
 */
export interface StallMidStream {
  readonly _tag: "StallMidStream"
  readonly afterChunks: number
}

/**
 * Stream `afterChunks` chunks, then fail with `StreamTruncated` (no `Finish`) when the next chunk was due.
 * `complete` fails with `ConnectionError` after the latency.
 *
 * @since 0.1.0
 */
export interface Truncate {
  readonly _tag: "Truncate"
  readonly afterChunks: number
}

/**
 * What one call does. Build them with {@link succeed}, {@link fail}, {@link stall},
 * {@link stallMidStream}, {@link truncate}, or write the object literally.
 *
 * @since 0.1.0
 */
export type Behavior = Succeed | Fail | Stall | StallMidStream | Truncate

/**
 * A model's real capacity, enforced over a sliding 60 s window of admitted calls. A call costs one request
 * and `inputTokens + outputTokens` tokens (output capped by `maxOutputTokens`).
 *
 * @since 0.1.0
 */
export interface Capacity {
  readonly requestsPerMinute?: number | undefined
  readonly tokensPerMinute?: number | undefined
}

/**
 * A behaviour for calls that start in `[from, to)`, virtual time since the fake's creation.
 *
 * @since 0.1.0
 */
export interface Window {
  readonly from: Duration.Input
  readonly to: Duration.Input
  readonly behavior: Behavior
  /** Which calls the window applies to: `streamed`, `unary` (`complete`) or `all` (default). */
  readonly calls?: "all" | "streamed" | "unary" | undefined
}

/**
 * The script of one model. Defaults: latency 0, text `"Hello from the fake provider."`, no tool calls,
 * output tokens a quarter of the characters of the text and the calls' arguments (rounded up), one stream
 * chunk, no capacity limit, behaviour {@link succeed}.
 *
 * @since 0.1.0
 */
export interface ModelScript {
  readonly latency?: Duration.Input | undefined
  readonly text?: string | undefined
  readonly toolCalls?: ReadonlyArray<ToolCall> | undefined
  readonly outputTokens?: number | undefined
  readonly stream?: StreamShape | undefined
  readonly capacity?: Capacity | undefined
  /** The behaviour when neither `script` nor a window applies. */
  readonly behavior?: Behavior | undefined
  /** The n-th call (0-based) to this model uses `script[n]`. */
  readonly script?: ReadonlyArray<Behavior> | undefined
  readonly windows?: ReadonlyArray<Window> | undefined
}

/**
 * A whole fake provider.
 *
 * @since 0.1.0
 */
export interface Scenario {
  /** The provider name in responses, errors and the log. Default `"fake"`. */
  readonly name?: string | undefined
  readonly models?: Readonly<Record<string, ModelScript>> | undefined
  /** The script of models not in `models`. */
  readonly default?: ModelScript | undefined
  /** Provider-wide windows (e.g. an outage of every model), checked after the model's own windows. */
  readonly windows?: ReadonlyArray<Window> | undefined
}

// ---------------------------------------------------------------------------------------------------------
// log
// ---------------------------------------------------------------------------------------------------------

/**
 * How a call ended: `success`, the tag of the error it failed with, `interrupted` (cut by a timeout, a race
 * or a consumer that stopped reading), or `pending` while it runs.
 *
 * @since 0.1.0
 */
export type Outcome = "pending" | "success" | "interrupted" | LlmError.ProviderError["_tag"]

/**
 * One call as the fake saw it. Times are virtual milliseconds since the fake was created.
 *
 * @since 0.1.0
 */
export interface CallRecord {
  /** 1-based order of the call within this fake. */
  readonly seq: number
  readonly requestId: string
  readonly provider: string
  readonly model: string
  /** 0-based index among the calls to this model (the index into `script`). */
  readonly callIndex: number
  readonly streamed: boolean
  readonly startedAt: number
  /** `undefined` while pending. */
  readonly endedAt: number | undefined
  /** The estimate of {@link inputTokens}. */
  readonly inputTokens: number
  /** Output tokens generated: the full count on success, the delivered share of a partial stream, else 0. */
  readonly outputTokens: number
  /** Chunks delivered, text and tool-call pieces (streams only). */
  readonly chunks: number
  readonly outcome: Outcome
  readonly request: LlmRequest.LlmRequest
}

/**
 * A fake: the `LlmProvider` implementation, its call log and controls.
 *
 * @since 0.1.0
 */
export interface Fake {
  readonly provider: LlmProvider.LlmProvider["Service"]
  /** A snapshot of the log, in call order. */
  readonly calls: Effect.Effect<ReadonlyArray<CallRecord>>
  /** Empties the log (scripts, call indices and capacity are kept). */
  readonly clear: Effect.Effect<void>
  /** Clock time (ms) at which the fake was created: the origin of `windows` and of the log's times. */
  readonly createdAt: number
}

/**
 * The service of the fake built by {@link layer}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const countCalls = Effect.gen(function*() {
 *   const fake = yield* FakeProvider.FakeProvider
 *   return (yield* fake.calls).length
 * })
 * ```
 * @since 0.1.0
 */
export class FakeProvider extends Context.Service<FakeProvider, Fake>()("@llm-resilience/testing/FakeProvider") {}

/**
 * A scenario field is invalid. `field` is its path, e.g. `models.gpt.stream.chunks`.
 *
 * @since 0.1.0
 */
export class InvalidScenario extends Schema.TaggedError<InvalidScenario>()("InvalidScenario", {
  field: Schema.String,
  issue: Schema.String
}) {
  override get message(): string {
    return `invalid FakeProvider scenario: ${this.field} ${this.issue}`
  }
}

// ---------------------------------------------------------------------------------------------------------
// constructors
// ---------------------------------------------------------------------------------------------------------

/**
 * Builds a fake without a layer: use it to put two fakes side by side (a primary and a fallback).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const program = Effect.gen(function*() {
 *   const primary = yield* FakeProvider.make({ name: "primary", default: { behavior: FakeProvider.stall } })
 *   const backup = yield* FakeProvider.make({ name: "backup" })
 *   return [primary.provider, backup.provider] as const
 * })
 * ```
 * @since 0.1.0
 */
export const make: (scenario?: Scenario) => Effect.Effect<Fake, InvalidScenario> = Effect.fn("FakeProvider.make")(
  function* (scenario: Scenario = {}) {
    const compiled = yield* Effect.try({
      try: () => compile(scenario),
      catch: (e) =>
        e instanceof ScenarioIssue
          ? new InvalidScenario({ field: e.field, issue: e.issue })
          : new InvalidScenario({ field: "scenario", issue: String(e) })
    })
    const now = yield* Clock.currentTimeMillis
    return makeFake(compiled, now)
  }
)

/**
 * A layer providing `LlmProvider` and the {@link FakeProvider} service (log and controls). Build it inside
 * the test (`Effect.provide`) so that its creation time is the test's `TestClock` time.
 *
 * @example
 * ```ts
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const Outage = FakeProvider.layer({
 *   default: { latency: "100 millis" },
 *   windows: [{ from: "10 seconds", to: "70 seconds", behavior: FakeProvider.fail(FakeProvider.overloaded()) }]
 * })
 * ```
 * @since 0.1.0
 */
export const layer = (scenario?: Scenario): Layer.Layer<Provider.LlmProvider | FakeProvider, InvalidScenario> =>
  Layer.effectContext(
    Effect.map(make(scenario), (fake) =>
      Context.make(FakeProvider, fake).pipe(Context.add(Provider.LlmProvider, fake.provider))
    )
  )

/**
 * The call log of the fake in context.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const failures = Effect.map(FakeProvider.calls, (calls) => calls.filter((c) => c.outcome !== "success"))
 * ```
 * @since 0.1.0
 */
export const calls: Effect.Effect<ReadonlyArray<CallRecord>, never, FakeProvider> = FakeProvider.use((f) => f.calls)

/**
 * Empties the log of the fake in context.
 *
 * @example
 * ```ts
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const reset = FakeProvider.clear
 * ```
 * @since 0.1.0
 */
export const clear: Effect.Effect<void, never, FakeProvider> = FakeProvider.use((f) => f.clear)

/**
 * The fake's input-token estimate: all message contents' characters / 4, rounded up.
 *
 * @example
 * ```ts
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * FakeProvider.inputTokens({ model: "m", messages: [{ role: "user", content: "12345" }] }) // 2
 * ```
 * @since 0.1.0
 */
export const inputTokens: (request: LlmRequest.LlmRequest) => number = estimateInputTokens

// ---------------------------------------------------------------------------------------------------------
// behaviours
// ---------------------------------------------------------------------------------------------------------

/**
 * Answer normally, optionally overriding the model's latency, text, tool calls, output tokens or stream
 * shape.
 *
 * @example
 * ```ts
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const slow = FakeProvider.succeed({ latency: "3 seconds" })
 * ```
 * @since 0.1.0
 */
export const succeed = (overrides: Omit<Succeed, "_tag"> = {}): Behavior => ({ ...overrides, _tag: "Succeed" })

/**
 * Fail with an error of the taxonomy, after `after` (default 0).
 *
 * @example
 * ```ts
 * import { LlmError } from "@llm-resilience/core"
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const down = FakeProvider.fail(FakeProvider.serverError(503))
 * const fatal = FakeProvider.fail(new LlmError.Authentication({ message: "bad key", status: 401 }))
 * ```
 * @since 0.1.0
 */
export const fail = (error: ErrorSpec, options?: { readonly after?: Duration.Input }): Behavior => ({
  _tag: "Fail",
  error,
  ...(options?.after !== undefined ? { after: options.after } : {})
})

/**
 * Never answer until interrupted.
 *
 * @example
 * ```ts
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const scenario: FakeProvider.Scenario = { default: { script: [FakeProvider.stall] } }
 * ```
 * @since 0.1.0
 */
export const stall: Behavior = { _tag: "Stall" }

/**
 * Stream `afterChunks` chunks, then go silent.
 *
 * @example
 * ```ts
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const hang = FakeProvider.stallMidStream(2)
 * ```
 * @since 0.1.0
 */
export const stallMidStream = (afterChunks: number): Behavior => ({ _tag: "StallMidStream", afterChunks })

/**
 * Stream `afterChunks` chunks, then fail with `StreamTruncated` (no `Finish`).
 *
 * @example
 * ```ts
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const cut = FakeProvider.truncate(3)
 * ```
 * @since 0.1.0
 */
export const truncate = (afterChunks: number): Behavior => ({ _tag: "Truncate", afterChunks })

// ---------------------------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------------------------

const ms = (input: Duration.Input | undefined): number | undefined =>
  input === undefined ? undefined : Duration.toMillis(Duration.fromInputUnsafe(input))

/**
 * A realistic transient 429, as the providers send it: `retryAfterMs` (from `retry-after-ms` /
 * `retry-after`) and a rate-limit snapshot whose exhausted window has `remaining: 0` and resets when the
 * retry-after elapses. Defaults: `limit: "requests"`, `retryAfter` 1 s, a limit of 60 requests or 100 000
 * tokens per minute.
 *
 * @example
 * ```ts
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const throttled = FakeProvider.fail(FakeProvider.rateLimited({ retryAfter: "2 seconds", limit: "tokens" }))
 * ```
 * @since 0.1.0
 */
export const rateLimited = (
  options: {
    readonly retryAfter?: Duration.Input | undefined
    readonly limit?: "requests" | "tokens" | undefined
    /** The limit value reported in the snapshot. */
    readonly perMinute?: number | undefined
  } = {}
): ErrorSpec => {
  const retryAfterMs = ms(options.retryAfter) ?? 1000
  const limit = options.limit ?? "requests"
  const perMinute = options.perMinute ?? (limit === "requests" ? 60 : 100_000)
  const window: RateLimitSnapshot.LimitWindow = { limit: perMinute, remaining: 0, resetAfterMs: retryAfterMs }
  return (ctx) =>
    new Errors.RateLimited({
      message: `Rate limit reached for ${ctx.model} on ${limit} per min: Limit ${perMinute}. Please try again in ${
        retryAfterMs / 1000
      }s.`,
      provider: ctx.provider,
      model: ctx.model,
      status: 429,
      requestId: ctx.requestId,
      limit,
      retryAfterMs,
      rateLimit: { retryAfterMs, [limit]: window }
    })
}

/**
 * An overload answer (Anthropic's 529 `overloaded_error`), optionally with a retry-after.
 *
 * @example
 * ```ts
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const busy = FakeProvider.fail(FakeProvider.overloaded())
 * ```
 * @since 0.1.0
 */
export const overloaded = (options: { readonly retryAfter?: Duration.Input | undefined } = {}): ErrorSpec => {
  const retryAfterMs = ms(options.retryAfter)
  return (ctx) =>
    new Errors.Overloaded({
      message: "Overloaded",
      provider: ctx.provider,
      model: ctx.model,
      status: 529,
      requestId: ctx.requestId,
      ...(retryAfterMs !== undefined ? { retryAfterMs, rateLimit: { retryAfterMs } } : {})
    })
}

/**
 * A 5xx answer (default 500).
 *
 * @example
 * ```ts
 * import { FakeProvider } from "@llm-resilience/testing"
 *
 * const unavailable = FakeProvider.fail(FakeProvider.serverError(503))
 * ```
 * @since 0.1.0
 */
export const serverError =
  (status = 500): ErrorSpec =>
  (ctx) =>
    new Errors.ServerError({
      message: `The server had an error while processing your request (${status}).`,
      provider: ctx.provider,
      model: ctx.model,
      status,
      requestId: ctx.requestId
    })

/**
 * The engine behind `FakeProvider`: scenario validation, behaviour resolution, the sliding-window capacity
 * model and the call log. Not part of the public API.
 *
 * All time is read from the calling fiber's `Clock` and every wait is an `Effect.sleep`, so `TestClock`
 * drives the fake exactly.
 *
 * @internal
 */
import { LlmError, type LlmRequest, type LlmResponse } from "@llm-resilience/core"
import { Cause, Clock, Duration, Effect, Exit, Option, Stream } from "effect"
import type {
  Behavior,
  CallContext,
  CallRecord,
  ErrorSpec,
  Fake,
  ModelScript,
  Outcome,
  Scenario,
  StreamShape,
  ToolCall,
  Window
} from "../FakeProvider.ts"

type ProviderError = LlmError.ProviderError
type RateLimitSnapshot = NonNullable<LlmResponse.LlmResponse["rateLimit"]>
type StreamChunk = LlmResponse.StreamChunk
type Pull = Effect.Effect<readonly [StreamChunk, ...Array<StreamChunk>], ProviderError | Cause.Done>

// ---------------------------------------------------------------------------------------------------------
// validation (compiled scenario)
// ---------------------------------------------------------------------------------------------------------

/** Thrown by {@link compile}; turned into a typed `InvalidScenario` error by the public module. */
export class ScenarioIssue {
  readonly field: string
  readonly issue: string
  constructor(field: string, issue: string) {
    this.field = field
    this.issue = issue
  }
}

interface CompiledBehavior {
  readonly _tag: Behavior["_tag"]
  readonly error?: ErrorSpec
  readonly afterMs: number
  readonly afterChunks: number
  readonly shape: Shape | undefined
}

interface Shape {
  readonly latencyMs: number
  readonly text: string
  /** The pieces of the answer's tool calls, streamed after the `chunks` text chunks. */
  readonly toolPieces: ReadonlyArray<StreamChunk>
  readonly outputTokens: number
  /** Text chunks. */
  readonly chunks: number
  readonly intervalMs: number
}

interface CompiledWindow {
  readonly fromMs: number
  readonly toMs: number
  readonly behavior: CompiledBehavior
  readonly calls: "all" | "streamed" | "unary"
}

interface CompiledModel {
  readonly shape: Shape
  readonly behavior: CompiledBehavior
  readonly script: ReadonlyArray<CompiledBehavior>
  readonly windows: ReadonlyArray<CompiledWindow>
  readonly rpm: number | undefined
  readonly tpm: number | undefined
}

/** The default answer text. */
export const defaultText = "Hello from the fake provider."

const toMillis = (input: Duration.Input | undefined, field: string, fallback: number): number => {
  if (input === undefined) return fallback
  const d = Duration.fromInput(input)
  if (Option.isNone(d)) throw new ScenarioIssue(field, "is not a valid duration")
  const ms = Duration.toMillis(d.value)
  if (!(ms >= 0) || !Number.isFinite(ms)) throw new ScenarioIssue(field, "must be a finite, non-negative duration")
  return ms
}

const count = (n: number | undefined, field: string, min: number): number | undefined => {
  if (n === undefined) return undefined
  if (!Number.isInteger(n) || n < min) throw new ScenarioIssue(field, `must be an integer >= ${min}`)
  return n
}

/** The stream pieces of `calls` (see `ToolCall`); throws a {@link ScenarioIssue} for an invalid call. */
const compileToolCalls = (calls: ReadonlyArray<ToolCall>, path: string): Array<StreamChunk> => {
  if (!Array.isArray(calls)) throw new ScenarioIssue(path, "must be an array of tool calls")
  const pieces: Array<StreamChunk> = []
  calls.forEach((call: ToolCall, index) => {
    const at = `${path}[${index}]`
    if (call === null || typeof call !== "object") throw new ScenarioIssue(at, "is not a tool call")
    if (typeof call.name !== "string" || call.name.length === 0) {
      throw new ScenarioIssue(`${at}.name`, "must be a non-empty string")
    }
    if (typeof call.arguments !== "string") throw new ScenarioIssue(`${at}.arguments`, "must be a string")
    if (call.id !== undefined && (typeof call.id !== "string" || call.id.length === 0)) {
      throw new ScenarioIssue(`${at}.id`, "must be a non-empty string")
    }
    pieces.push({ _tag: "ToolCallDelta", index, id: call.id ?? `call_${index}`, name: call.name, arguments: "" })
    if (call.arguments.length > 0) pieces.push({ _tag: "ToolCallDelta", index, arguments: call.arguments })
  })
  return pieces
}

/** The characters of the calls' arguments (their share of the default output tokens). */
const argumentsLength = (pieces: ReadonlyArray<StreamChunk>): number => {
  let n = 0
  for (const p of pieces) if (p._tag === "ToolCallDelta") n += p.arguments.length
  return n
}

const compileShape = (
  base: Shape | undefined,
  o: {
    readonly latency?: Duration.Input | undefined
    readonly text?: string | undefined
    readonly toolCalls?: ReadonlyArray<ToolCall> | undefined
    readonly outputTokens?: number | undefined
    readonly stream?: StreamShape | undefined
  },
  path: string
): Shape => {
  const text = o.text ?? base?.text ?? defaultText
  const toolPieces =
    o.toolCalls !== undefined ? compileToolCalls(o.toolCalls, `${path}.toolCalls`) : (base?.toolPieces ?? [])
  // a quarter of the characters, rounded up
  const estimate = () => Math.ceil((text.length + argumentsLength(toolPieces)) / 4)
  const outputTokens =
    count(o.outputTokens, `${path}.outputTokens`, 0) ??
    (o.text !== undefined || o.toolCalls !== undefined ? estimate() : (base?.outputTokens ?? estimate()))
  return {
    latencyMs: toMillis(o.latency, `${path}.latency`, base?.latencyMs ?? 0),
    text,
    toolPieces,
    outputTokens,
    chunks: o.stream !== undefined ? (count(o.stream.chunks, `${path}.stream.chunks`, 0) ?? 1) : (base?.chunks ?? 1),
    intervalMs:
      o.stream !== undefined ? toMillis(o.stream.interval, `${path}.stream.interval`, 0) : (base?.intervalMs ?? 0)
  }
}

const compileBehavior = (b: Behavior, base: Shape, path: string): CompiledBehavior => {
  if (b === null || typeof b !== "object") throw new ScenarioIssue(path, "is not a behavior")
  switch (b._tag) {
    case "Succeed":
      return { _tag: b._tag, afterMs: 0, afterChunks: 0, shape: compileShape(base, b, path) }
    case "Fail":
      if (b.error === undefined) throw new ScenarioIssue(`${path}.error`, "is missing")
      return {
        _tag: b._tag,
        error: b.error,
        afterMs: toMillis(b.after, `${path}.after`, 0),
        afterChunks: 0,
        shape: base
      }
    case "Stall":
      return { _tag: b._tag, afterMs: 0, afterChunks: 0, shape: base }
    case "StallMidStream":
    case "Truncate":
      return {
        _tag: b._tag,
        afterMs: 0,
        afterChunks: Math.min(
          count(b.afterChunks, `${path}.afterChunks`, 0) ?? 0,
          base.chunks + base.toolPieces.length
        ),
        shape: base
      }
    default:
      throw new ScenarioIssue(`${path}._tag`, `unknown behavior ${JSON.stringify((b as { _tag: unknown })._tag)}`)
  }
}

const applies = (w: CompiledWindow, streamed: boolean): boolean =>
  w.calls === "all" || (w.calls === "streamed") === streamed

const compileWindows = (
  ws: ReadonlyArray<Window> | undefined,
  base: Shape,
  path: string
): ReadonlyArray<CompiledWindow> =>
  (ws ?? []).map((w, i) => {
    const p = `${path}[${i}]`
    const fromMs = toMillis(w.from, `${p}.from`, 0)
    const toMs = toMillis(w.to, `${p}.to`, 0)
    if (!(toMs > fromMs)) throw new ScenarioIssue(`${p}.to`, "must be after from")
    const calls = w.calls ?? "all"
    if (calls !== "all" && calls !== "streamed" && calls !== "unary") {
      throw new ScenarioIssue(`${p}.calls`, "must be all, streamed or unary")
    }
    return { fromMs, toMs, behavior: compileBehavior(w.behavior, base, `${p}.behavior`), calls }
  })

const compileModel = (m: ModelScript, path: string): CompiledModel => {
  const shape = compileShape(undefined, m, path)
  const rpm = count(m.capacity?.requestsPerMinute, `${path}.capacity.requestsPerMinute`, 1)
  const tpm = count(m.capacity?.tokensPerMinute, `${path}.capacity.tokensPerMinute`, 1)
  return {
    shape,
    behavior: compileBehavior(m.behavior ?? { _tag: "Succeed" }, shape, `${path}.behavior`),
    script: (m.script ?? []).map((b, i) => compileBehavior(b, shape, `${path}.script[${i}]`)),
    windows: compileWindows(m.windows, shape, `${path}.windows`),
    rpm,
    tpm
  }
}

interface Compiled {
  readonly name: string
  readonly models: ReadonlyMap<string, CompiledModel>
  readonly fallback: CompiledModel | undefined
  readonly rawWindows: ReadonlyArray<Window>
}

/** Validates a scenario; throws a {@link ScenarioIssue} naming the first invalid field. */
export const compile = (scenario: Scenario): Compiled => {
  const name = scenario.name ?? "fake"
  if (typeof name !== "string" || name.length === 0) throw new ScenarioIssue("name", "must be a non-empty string")
  const models = new Map<string, CompiledModel>()
  for (const [key, m] of Object.entries(scenario.models ?? {})) models.set(key, compileModel(m, `models.${key}`))
  const fallback =
    scenario.default !== undefined || scenario.models === undefined
      ? compileModel(scenario.default ?? {}, "default")
      : undefined
  // provider-wide windows are validated once against the default shape; they are recompiled per model
  compileWindows(scenario.windows, compileShape(undefined, {}, "default"), "windows")
  return { name, models, fallback, rawWindows: scenario.windows ?? [] }
}

// ---------------------------------------------------------------------------------------------------------
// runtime
// ---------------------------------------------------------------------------------------------------------

/** Input-token estimate of a request: characters of all message contents / 4, rounded up. */
export const estimateInputTokens = (request: LlmRequest.LlmRequest): number => {
  let chars = 0
  for (const m of request.messages) chars += m.content.length
  return Math.ceil(chars / 4)
}

const WINDOW_MS = 60_000

interface Admitted {
  readonly at: number
  readonly tokens: number
}

interface ModelState {
  readonly model: CompiledModel
  readonly providerWindows: ReadonlyArray<CompiledWindow>
  calls: number
  log: Array<Admitted>
}

interface MutableRecord {
  seq: number
  requestId: string
  provider: string
  model: string
  callIndex: number
  streamed: boolean
  startedAt: number
  endedAt: number | undefined
  inputTokens: number
  outputTokens: number
  chunks: number
  outcome: Outcome
  request: LlmRequest.LlmRequest
}

/** What a call will do, decided at its start. */
interface Plan {
  readonly behavior: CompiledBehavior
  readonly shape: Shape
  readonly context: CallContext
  readonly inputTokens: number
  readonly outputTokens: number
  readonly finishReason: "stop" | "length" | "tool_calls"
  readonly rateLimit: RateLimitSnapshot | undefined
  /** Set when the capacity model rejected the call. */
  readonly rejected: LlmError.RateLimited | undefined
}

const cappedOutput = (shape: Shape, request: LlmRequest.LlmRequest) =>
  request.maxOutputTokens !== undefined && request.maxOutputTokens < shape.outputTokens
    ? { outputTokens: request.maxOutputTokens, finishReason: "length" as const }
    : {
        outputTokens: shape.outputTokens,
        finishReason: shape.toolPieces.length > 0 ? ("tool_calls" as const) : ("stop" as const)
      }

const chunkText = (text: string, i: number, n: number): string =>
  text.slice(Math.floor((i * text.length) / n), Math.floor(((i + 1) * text.length) / n))

const seconds = (ms: number): string => `${Math.round(ms) / 1000}s`

/** Builds the fake's provider and log. */
export const makeFake = (compiled: Compiled, createdAt: number): Fake => {
  const { name } = compiled
  const states = new Map<string, ModelState>()
  const records: Array<MutableRecord> = []
  let seq = 0

  const stateFor = (key: string): ModelState | undefined => {
    let s = states.get(key)
    if (s !== undefined) return s
    const model = compiled.models.get(key) ?? compiled.fallback
    if (model === undefined) return undefined
    s = {
      model,
      providerWindows: compileWindows(compiled.rawWindows, model.shape, "windows"),
      calls: 0,
      log: []
    }
    states.set(key, s)
    return s
  }

  const capacity = (
    state: ModelState,
    now: number,
    tokens: number,
    context: CallContext
  ): { snapshot: RateLimitSnapshot | undefined; rejected: LlmError.RateLimited | undefined } => {
    const { rpm, tpm } = state.model
    if (rpm === undefined && tpm === undefined) return { snapshot: undefined, rejected: undefined }
    const log = state.log
    let drop = 0
    while (drop < log.length && log[drop]!.at + WINDOW_MS <= now) drop++
    if (drop > 0) log.splice(0, drop)
    let used = 0
    for (const e of log) used += e.tokens
    const requestWait = rpm !== undefined && log.length + 1 > rpm ? log[log.length - rpm]!.at + WINDOW_MS - now : 0
    let tokenWait = 0
    let tooLarge = false
    if (tpm !== undefined && used + tokens > tpm) {
      if (tokens > tpm) tooLarge = true
      else {
        let freed = 0
        for (const e of log) {
          freed += e.tokens
          if (used - freed + tokens <= tpm) {
            tokenWait = e.at + WINDOW_MS - now
            break
          }
        }
      }
    }
    const newest = log.length > 0 ? log[log.length - 1]!.at + WINDOW_MS - now : 0
    if (requestWait > 0 || tokenWait > 0 || tooLarge) {
      const retryAfterMs = tooLarge ? undefined : Math.max(requestWait, tokenWait)
      const snapshot: RateLimitSnapshot = {
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
        ...(rpm !== undefined
          ? { requests: { limit: rpm, remaining: Math.max(0, rpm - log.length), resetAfterMs: newest } }
          : {}),
        ...(tpm !== undefined
          ? { tokens: { limit: tpm, remaining: Math.max(0, tpm - used), resetAfterMs: newest } }
          : {})
      }
      const limit = requestWait > 0 ? "requests" : "tokens"
      const message = tooLarge
        ? `Request too large for ${context.model} on tokens per min (TPM): Limit ${tpm}, Requested ${tokens}.`
        : limit === "requests"
          ? `Rate limit reached for ${context.model} on requests per min (RPM): Limit ${rpm}, Used ${log.length}, Requested 1. Please try again in ${seconds(
              retryAfterMs!
            )}.`
          : `Rate limit reached for ${context.model} on tokens per min (TPM): Limit ${tpm}, Used ${used}, Requested ${tokens}. Please try again in ${seconds(
              retryAfterMs!
            )}.`
      return {
        snapshot,
        rejected: new LlmError.RateLimited({
          message,
          provider: name,
          model: context.model,
          status: 429,
          requestId: context.requestId,
          limit: tooLarge ? "tokens" : limit,
          rateLimit: snapshot,
          ...(retryAfterMs !== undefined ? { retryAfterMs } : {})
        })
      }
    }
    log.push({ at: now, tokens })
    return {
      rejected: undefined,
      snapshot: {
        ...(rpm !== undefined
          ? { requests: { limit: rpm, remaining: rpm - log.length, resetAfterMs: WINDOW_MS } }
          : {}),
        ...(tpm !== undefined
          ? { tokens: { limit: tpm, remaining: tpm - used - tokens, resetAfterMs: WINDOW_MS } }
          : {})
      }
    }
  }

  /** Decides the call's behaviour and opens its log record. */
  const begin = (
    request: LlmRequest.LlmRequest,
    streamed: boolean,
    now: number
  ): { plan: Plan; record: MutableRecord } | { error: ProviderError; record: MutableRecord } => {
    const elapsed = now - createdAt
    const n = ++seq
    const requestId = `${name}-req-${n}`
    const inputTokens = estimateInputTokens(request)
    const state = stateFor(request.model)
    const callIndex = state === undefined ? 0 : state.calls++
    const record: MutableRecord = {
      seq: n,
      requestId,
      provider: name,
      model: request.model,
      callIndex,
      streamed,
      startedAt: elapsed,
      endedAt: undefined,
      inputTokens,
      outputTokens: 0,
      chunks: 0,
      outcome: "pending",
      request
    }
    records.push(record)
    if (state === undefined) {
      return {
        record,
        error: new LlmError.ModelNotFound({
          message: `The model \`${request.model}\` does not exist or you do not have access to it.`,
          provider: name,
          model: request.model,
          status: 404,
          requestId
        })
      }
    }
    const m = state.model
    let behavior = m.script[callIndex]
    if (behavior === undefined) {
      for (const w of m.windows) {
        if (elapsed >= w.fromMs && elapsed < w.toMs && applies(w, streamed)) {
          behavior = w.behavior
          break
        }
      }
    }
    if (behavior === undefined) {
      for (const w of state.providerWindows) {
        if (elapsed >= w.fromMs && elapsed < w.toMs && applies(w, streamed)) {
          behavior = w.behavior
          break
        }
      }
    }
    behavior ??= m.behavior
    const shape = behavior.shape ?? m.shape
    const context: CallContext = {
      provider: name,
      model: request.model,
      request,
      callIndex,
      elapsedMs: elapsed,
      requestId,
      streamed
    }
    const { finishReason, outputTokens } = cappedOutput(shape, request)
    const { rejected, snapshot } =
      behavior._tag === "Fail"
        ? { rejected: undefined, snapshot: undefined }
        : capacity(state, now, inputTokens + outputTokens, context)
    return {
      record,
      plan: { behavior, shape, context, inputTokens, outputTokens, finishReason, rateLimit: snapshot, rejected }
    }
  }

  const settle = (record: MutableRecord, outcome: Outcome, now: number) => {
    if (record.outcome !== "pending") return
    record.outcome = outcome
    record.endedAt = now - createdAt
  }

  const resolveError = (spec: ErrorSpec, context: CallContext): ProviderError =>
    typeof spec === "function" ? spec(context) : spec

  const sleep = (ms: number): Effect.Effect<void> => (ms > 0 ? Effect.sleep(ms) : Effect.void)

  const response = (plan: Plan): LlmResponse.LlmResponse => ({
    text: plan.shape.text,
    finishReason: plan.finishReason,
    usage: { inputTokens: plan.inputTokens, outputTokens: plan.outputTokens },
    provider: name,
    model: plan.context.model,
    requestId: plan.context.requestId,
    ...(plan.rateLimit !== undefined ? { rateLimit: plan.rateLimit } : {})
  })

  const runComplete = (plan: Plan): Effect.Effect<LlmResponse.LlmResponse, ProviderError> => {
    if (plan.rejected !== undefined) return Effect.fail(plan.rejected)
    const b = plan.behavior
    switch (b._tag) {
      case "Succeed":
        return Effect.as(sleep(plan.shape.latencyMs), response(plan))
      case "Fail":
        return Effect.andThen(
          sleep(b.afterMs),
          Effect.suspend(() => Effect.fail(resolveError(b.error!, plan.context)))
        )
      case "Truncate":
        return Effect.andThen(
          sleep(plan.shape.latencyMs),
          Effect.fail(
            new LlmError.ConnectionError({
              message: "connection closed before the response body was complete",
              provider: name,
              model: plan.context.model,
              requestId: plan.context.requestId
            })
          )
        )
      case "Stall":
      case "StallMidStream":
        return Effect.never
    }
  }

  const complete = (request: LlmRequest.LlmRequest): Effect.Effect<LlmResponse.LlmResponse, ProviderError> =>
    // the mask makes opening the record and installing its finaliser atomic: an interrupted call is logged
    Effect.uninterruptibleMask((restore) =>
      Clock.clockWith((clock) => {
        const now = clock.currentTimeMillisUnsafe()
        const started = begin(request, false, now)
        const { record } = started
        // calls decided at their start (immediate answers, rejections) settle without any fiber machinery
        if ("error" in started) {
          settle(record, started.error._tag, now)
          return Effect.fail(started.error)
        }
        const plan = started.plan
        if (plan.rejected !== undefined) {
          settle(record, plan.rejected._tag, now)
          return Effect.fail(plan.rejected)
        }
        if (plan.behavior._tag === "Succeed" && plan.shape.latencyMs === 0) {
          record.outputTokens = plan.outputTokens
          settle(record, "success", now)
          return Effect.succeed(response(plan))
        }
        return Effect.onExit(restore(runComplete(plan)), (exit) =>
          Effect.sync(() => {
            const end = clock.currentTimeMillisUnsafe()
            if (Exit.isSuccess(exit)) {
              record.outputTokens = exit.value.usage.outputTokens
              settle(record, "success", end)
            } else {
              const err = Exit.findError(exit)
              settle(record, err._tag === "Success" ? err.success._tag : "interrupted", end)
            }
          })
        )
      })
    )

  const streamPull = (started: ReturnType<typeof begin>, clock: Clock.Clock): Pull => {
    const { record } = started
    const failNow = (error: ProviderError): Pull =>
      Effect.suspend(() => {
        settle(record, error._tag, clock.currentTimeMillisUnsafe())
        return Effect.fail(error)
      })
    if ("error" in started) return failNow(started.error)
    const plan = started.plan
    if (plan.rejected !== undefined) return failNow(plan.rejected)
    const b = plan.behavior
    const { chunks: textChunks, intervalMs, latencyMs, text, toolPieces } = plan.shape
    const total = textChunks + toolPieces.length
    switch (b._tag) {
      case "Fail":
        return Effect.andThen(
          sleep(b.afterMs),
          Effect.suspend(() => failNow(resolveError(b.error!, plan.context)))
        )
      case "Stall":
        return Effect.never
    }
    const emit = b._tag === "Succeed" ? total : b.afterChunks
    let i = 0
    let done = false
    const partialTokens = () => (total === 0 ? 0 : Math.floor((plan.outputTokens * record.chunks) / total))
    return Effect.suspend((): Pull => {
      if (done) return Cause.done()
      const delay = i === 0 ? latencyMs : intervalMs
      if (i < emit) {
        const index = i++
        const delta: StreamChunk =
          index < textChunks
            ? { _tag: "TextDelta", text: chunkText(text, index, textChunks) }
            : toolPieces[index - textChunks]!
        return Effect.as(sleep(delay), 0).pipe(
          Effect.map(() => {
            record.chunks = index + 1
            if (b._tag === "Succeed" && index === total - 1) {
              done = true
              record.outputTokens = plan.outputTokens
              settle(record, "success", clock.currentTimeMillisUnsafe())
              return [delta, finish(plan)] as const
            }
            record.outputTokens = partialTokens()
            return [delta] as const
          })
        )
      }
      switch (b._tag) {
        case "Succeed":
          // zero chunks: only the Finish, after the latency
          return Effect.map(sleep(latencyMs), () => {
            done = true
            record.outputTokens = plan.outputTokens
            settle(record, "success", clock.currentTimeMillisUnsafe())
            return [finish(plan)] as const
          })
        case "Truncate":
          done = true
          return Effect.andThen(
            sleep(delay),
            failNow(
              new LlmError.StreamTruncated({
                message: "stream ended without the end marker",
                provider: name,
                model: plan.context.model,
                requestId: plan.context.requestId,
                receivedChunks: emit
              })
            )
          )
        default:
          return Effect.never
      }
    })
  }

  const finish = (plan: Plan): StreamChunk => ({
    _tag: "Finish",
    finishReason: plan.finishReason,
    usage: { inputTokens: plan.inputTokens, outputTokens: plan.outputTokens },
    provider: name,
    model: plan.context.model,
    requestId: plan.context.requestId,
    ...(plan.rateLimit !== undefined ? { rateLimit: plan.rateLimit } : {})
  })

  const stream = (request: LlmRequest.LlmRequest): Stream.Stream<StreamChunk, ProviderError> =>
    Stream.suspend(() => {
      let record: MutableRecord | undefined
      let clock: Clock.Clock | undefined
      return Stream.fromPull(
        Clock.clockWith((c) => {
          clock = c
          const started = begin(request, true, c.currentTimeMillisUnsafe())
          record = started.record
          return Effect.succeed(streamPull(started, c))
        })
      ).pipe(
        Stream.onExit(() =>
          Effect.sync(() => {
            if (record !== undefined) settle(record, "interrupted", clock!.currentTimeMillisUnsafe())
          })
        )
      )
    })

  const snapshot = (r: MutableRecord): CallRecord => ({ ...r })

  return {
    provider: { name, complete, stream },
    calls: Effect.sync(() => records.map(snapshot)),
    clear: Effect.sync(() => {
      records.length = 0
    }),
    createdAt
  }
}

/**
 * The walk of a fallback plan through its steps, written once for `complete` and `stream`.
 *
 * The walk decides: which step is next (eligibility after a context-length overflow or an exhausted
 * quota, an open circuit skipped without a call), whether a failure moves on (the step's `moveOn`), the
 * activation of each move (metric, event, log) and the call's report merged across steps. What it runs is
 * given by a {@link Driver}: `Effect` operations for `complete`, `Stream` operations for `stream`. The
 * stream driver adds what only a stream has: a failure after the first chunk moves on only in the
 * `continue` mid-stream mode (the next step carries on, internal/resume.ts), never to a degraded step (its
 * answer would be spliced onto the text delivered), and in the `buffer` mode each step's chunks are held
 * until its `Finish`.
 *
 * @internal
 */
import { Cause, Effect, type Fiber, Metric, Option, Stream } from "effect"
import * as CallReports from "../CallReport.ts"
import type { CircuitCheck, ProviderStep, Step } from "../FallbackPlan.ts"
import type { AcceptedForLater, CircuitOpen, LlmError } from "../LlmError.ts"
import type { LlmRequest } from "../LlmRequest.ts"
import type { LlmResponse, StreamChunk } from "../LlmResponse.ts"
import { TokenEstimator } from "../TokenEstimator.ts"
import * as Degraded from "./degraded.ts"
import { tagged } from "./metrics.ts"
import { attemptReport, reportOf } from "./report.ts"
import * as Resume from "./resume.ts"

type Services = Degraded.ResponseCache | Degraded.LaterQueue
type Outcome = Effect.Effect<LlmResponse, LlmError | AcceptedForLater, Services>
type Chunks = Stream.Stream<StreamChunk, LlmError | AcceptedForLater, Services>

/** What one walk through the steps learned so far, and its request. */
class Walk {
  minWindow = 0
  exhausted: Set<string> | undefined = undefined
  /** The attempts of the steps moved on from (none until the first move), and the last report taken in. */
  moved: Array<CallReports.AttemptReport> | undefined = undefined
  taken: CallReports.Report | undefined = undefined
  readonly request: LlmRequest
  /** A stream's delivered text. */
  readonly transcript: Resume.Transcript
  constructor(request: LlmRequest, transcript: Resume.Transcript) {
    this.request = request
    this.transcript = transcript
  }
}

/** A failure of step `index`, as a hedge race reports it. */
class StepFailed {
  readonly index: number
  readonly error: LlmError
  constructor(index: number, error: LlmError) {
    this.index = index
    this.error = error
  }
}

type OnError<X> = (w: Walk, j: number, error: LlmError, resumeAt: number) => X

/** What the walk runs with: `Effect` for `complete`, `Stream` for `stream` (`H`: a hedge race in flight). */
interface Driver<X, H> {
  /** Calls provider step `j`. */
  readonly call: (w: Walk, j: number) => X
  /**
   * Races step `j` with step `k` (the hedge). `start` runs when the hedge starts: the circuit check of step
   * `k`, which is not called when its circuit is open (the hedge fails with that `CircuitOpen`).
   */
  readonly race: (w: Walk, j: number, k: number, start: Effect.Effect<Option.Option<CircuitOpen>>) => H
  /** `self`, whose failure goes to `onError(w, j, error, resumeAt)` (one handler per step in flight). */
  readonly recover: (self: X, onError: OnError<X>, w: Walk, j: number, resumeAt: number) => X
  readonly recoverStep: (self: H, f: (failed: StepFailed) => X) => X
  readonly fail: (error: LlmError) => X
  readonly unwrap: <T>(self: Effect.Effect<T, AcceptedForLater, Services>, f: (t: T) => X) => X
  readonly andThen: (first: Effect.Effect<void>, then: X) => X
  readonly answer: (response: LlmResponse) => X
  /** Whether the walk may still move on (a stream that delivered text only carries on), and to degraded steps. */
  readonly movable: (w: Walk, degraded: boolean) => boolean
  /** Puts the merged report on the walk's answer or error (after its first move). */
  readonly report: (w: Walk, self: X) => X
}

/** `e` with the walk's report: the attempts of the steps moved on from, then its own (unless already taken in). */
const withReport = <E>(w: Walk, e: E): E => {
  const own = CallReports.of(e)
  const attempts = w.moved!
  return CallReports.attach(
    e,
    reportOf(own === undefined || own === w.taken ? attempts : attempts.concat(own.attempts), undefined)
  )
}

const activate = (failure: Degraded.Failure, to: string, counter: Metric.Counter<number>) =>
  Effect.andThen(
    Effect.andThen(
      Metric.update(tagged(counter, { from: failure.from, to, reason: failure.reason }), 1),
      CallReports.emit(() => ({ _tag: "FallbackMoved", from: failure.from, to, reason: failure.reason }))
    ),
    Effect.logWarning("fallback activated").pipe(
      Effect.annotateLogs({ "fallback.from": failure.from, "fallback.to": to, "fallback.reason": failure.reason })
    )
  )

/** The options of a plan's walk. */
export interface Options {
  readonly steps: ReadonlyArray<Step>
  readonly circuit: CircuitCheck | undefined
  readonly midStream: Resume.Mode
  readonly activations: Metric.Counter<number>
}

/** The request's input tokens, by the `TokenEstimator` in context (what a hedge weighs its cost with). */
const inputTokensOf = (fiber: Fiber.Fiber<unknown, unknown>, request: LlmRequest): number =>
  fiber.getRef(TokenEstimator).estimate(request).inputTokens

/** The walk over `options.steps`, run by `d`. */
const walk = <X, H>(o: Options, d: Driver<X, H>): ((w: Walk) => X) => {
  const { circuit, steps } = o

  const eligible = (s: Step, w: Walk): boolean => {
    if (s._tag !== "Provider") return true
    if (w.minWindow > 0 && s.contextWindow !== undefined && s.contextWindow <= w.minWindow) return false
    return w.exhausted?.has(s.provider.name) !== true
  }

  const nextEligible = (from: number, w: Walk): number => {
    for (let j = from; j < steps.length; j++) if (eligible(steps[j], w)) return j
    return -1
  }

  const circuitOpen = (s: ProviderStep): Effect.Effect<Option.Option<CircuitOpen>> =>
    circuit === undefined
      ? Effect.succeedNone
      : Effect.match(circuit.check(s.key), { onFailure: Option.some, onSuccess: () => Option.none() })

  /** Takes what `error` of step `s` rules out for later steps, and its attempts into the walk's report. */
  const learn = (w: Walk, s: ProviderStep, error: LlmError): boolean => {
    if (error._tag === "ContextLengthExceeded") w.minWindow = Math.max(w.minWindow, s.contextWindow ?? 0)
    else if (error._tag === "QuotaExhausted") (w.exhausted ??= new Set()).add(s.provider.name)
    const first = w.moved === undefined
    const attempts = (w.moved ??= [])
    const report = CallReports.of(error)
    w.taken = report
    const own = report?.attempts ?? [attemptReport(s.key, error._tag, 0, "fallback")]
    for (let i = 0; i < own.length - 1; i++) attempts.push(own[i])
    const last = own[own.length - 1]
    if (last !== undefined) attempts.push({ ...last, next: "fallback", reason: error._tag })
    return first
  }

  const onError = (w: Walk, j: number, error: LlmError, resumeAt: number): X => {
    const s = steps[j] as ProviderStep
    if (!s.moveOn.has(error._tag) || !d.movable(w, false)) return d.fail(error)
    if (w.transcript.delivered) w.transcript.cause = error
    const first = learn(w, s, error)
    const rest = runFrom(w, resumeAt, { from: s.label, reason: error._tag, error })
    return first ? d.report(w, rest) : rest
  }

  const attempt = (w: Walk, j: number): X => {
    const s = steps[j] as ProviderStep
    let k = -1
    if (s.hedge !== undefined) {
      k = nextEligible(j + 1, w)
      if (k !== -1 && steps[k]._tag !== "Provider") k = -1
    }
    if (k === -1) return d.recover(d.call(w, j), onError, w, j, j + 1)
    // both failed: on after the hedge; the step failed before its hedge started: on as without a hedge
    let hedged = false
    const start = Effect.andThen(
      Effect.sync(() => {
        hedged = true
      }),
      circuitOpen(steps[k] as ProviderStep)
    )
    const race = d.race(w, j, k, start)
    return d.recoverStep(race, (f) => onError(w, f.index, f.error, hedged ? Math.max(j, k) + 1 : j + 1))
  }

  const runProvider = (w: Walk, j: number): X => {
    if (circuit === undefined) return attempt(w, j)
    return d.unwrap(circuitOpen(steps[j] as ProviderStep), (open) =>
      Option.isSome(open) ? onError(w, j, open.value, j + 1) : attempt(w, j)
    )
  }

  const runFrom = (w: Walk, from: number, failure: Degraded.Failure): X => {
    const j = nextEligible(from, w)
    if (j === -1) return d.fail(failure.error)
    const s = steps[j]
    if (s._tag !== "Provider" && !d.movable(w, true)) return d.fail(failure.error)
    return d.andThen(activate(failure, s.label, o.activations), runStep(w, j, failure))
  }

  const runStep = (w: Walk, j: number, failure: Degraded.Failure): X => {
    const s = steps[j]
    if (s._tag === "Provider") return runProvider(w, j)
    return d.unwrap(Degraded.run(s, failure, w.request), (r) =>
      r._tag === "Answer" ? d.answer(r.response) : runFrom(w, j + 1, r.failure)
    )
  }

  return (w) => runProvider(w, 0)
}

const requestFor = (s: ProviderStep, request: LlmRequest): LlmRequest =>
  s.model === request.model ? request : { ...request, model: s.model }

/** `complete` of a plan. */
export const complete = (o: Options): ((request: LlmRequest) => Outcome) => {
  const steps = o.steps
  const call = (w: Walk, j: number): Outcome => {
    const s = steps[j] as ProviderStep
    return s.provider.complete(requestFor(s, w.request))
  }
  type Raced = Effect.Effect<LlmResponse, StepFailed, Services>
  const tagged = (w: Walk, j: number): Raced => Effect.mapError(call(w, j), (e) => new StepFailed(j, e))
  const run = walk<Outcome, Raced>(o, {
    call,
    race: (w, j, k, start) =>
      Effect.withFiber((fiber) =>
        (steps[j] as ProviderStep).hedge!.race(
          tagged(w, j),
          Effect.flatMap(start, (open) =>
            Option.isSome(open) ? Effect.fail(new StepFailed(k, open.value)) : tagged(w, k)
          ),
          { primary: steps[j].label, hedge: steps[k].label, inputTokens: inputTokensOf(fiber, w.request) }
        )
      ),
    // `Effect.catch`'s rule (a failure, no defect, moves on) in the one handler a step in flight keeps
    recover: (self, onError, w, j, resumeAt) =>
      Effect.catchCause(self, (cause) => {
        if (Cause.hasDies(cause)) return Effect.failCause(cause)
        const error = Cause.findErrorOption(cause)
        return error._tag === "Some" ? onError(w, j, error.value, resumeAt) : Effect.failCause(cause)
      }),
    recoverStep: Effect.catch,
    fail: Effect.fail,
    unwrap: Effect.flatMap,
    andThen: Effect.andThen,
    answer: Effect.succeed,
    movable: () => true,
    report: (w, self) =>
      Effect.mapBoth(self, {
        onSuccess: (response) => {
          const answeredBy = response.report?.answeredBy ?? `${response.provider}/${response.model}`
          const own = response.report?.attempts ?? []
          return { ...response, report: reportOf(w.moved!.concat(own), answeredBy) }
        },
        onFailure: (e) => withReport(w, e)
      })
  })
  // suspended: what a frame around the call keeps of it while in flight is this one effect
  return (request) => Effect.suspend(() => run(new Walk(request, noTranscript)))
}

/** `complete` delivers nothing before its answer. */
const noTranscript = new Resume.Transcript()

/** `stream` of a plan. */
export const stream = (o: Options): ((request: LlmRequest) => Chunks) => {
  const steps = o.steps
  const call = (w: Walk, j: number): Chunks => {
    const s = steps[j] as ProviderStep
    const open = (request: LlmRequest) => s.provider.stream(requestFor(s, request))
    const opened = Resume.carryOn(open, w.request, w.transcript, s.prefill)
    return o.midStream === "buffer" ? Resume.buffered(opened) : opened
  }
  type Raced = Stream.Stream<StreamChunk, StepFailed, Services>
  const tagged = (w: Walk, j: number): Raced => Stream.mapError(call(w, j), (e) => new StepFailed(j, e))
  const run = walk<Chunks, Raced>(o, {
    call,
    race: (w, j, k, start) =>
      Stream.unwrap(
        Effect.withFiber((fiber) =>
          Effect.succeed(
            (steps[j] as ProviderStep).hedge!.raceStream(
              tagged(w, j),
              Stream.unwrap(
                Effect.map(start, (open) =>
                  Option.isSome(open) ? Stream.fail(new StepFailed(k, open.value)) : tagged(w, k)
                )
              ),
              {
                primary: steps[j].label,
                hedge: steps[k].label,
                inputTokens: inputTokensOf(fiber, w.request)
              }
            )
          )
        )
      ),
    recover: (self, onError, w, j, resumeAt) => Stream.catch(self, (error) => onError(w, j, error, resumeAt)),
    recoverStep: Stream.catch,
    fail: Stream.fail,
    unwrap: (self, f) => Stream.unwrap(Effect.map(self, f)),
    andThen: (first, then) => Stream.concat(Stream.fromEffectDrain(first), then),
    answer: (response) => Stream.fromIterable(Degraded.responseChunks(response)),
    movable: (w, degraded) => !w.transcript.delivered || (!degraded && o.midStream === "continue"),
    report: (w, self) => Stream.mapError(self, (e) => withReport(w, e))
  })
  return (request) =>
    Stream.suspend(() => {
      const transcript = new Resume.Transcript()
      return Resume.record(run(new Walk(request, transcript)), transcript)
    })
}

/**
 * One provider step of `Resilience` (retry around the stages of an attempt, plus the call's telemetry) with
 * one frame per attempt.
 *
 * The first attempt runs on the caller's fiber through internal/attempt.ts, and its frame's continuation
 * finishes the call: on a failure it hands over to the retry stage (whose further attempts run through the
 * same stages, one frame each), and it records the call's metrics. A call that succeeds at once therefore
 * pushes a single frame, whatever the number of stages. A caller whose telemetry needs a span gets the
 * composed `Telemetry.observeCall` around the step instead (the span must be in the context of the whole
 * call).
 *
 * `callStages` (the agent guard) enter with the first attempt only: they count the call, never a retry.
 *
 * @internal
 */
import { Clock, Effect, Exit } from "effect"
import * as CallReport from "../CallReport.ts"
import type { LlmError } from "../LlmError.ts"
import type { LlmProvider } from "../LlmProvider.ts"
import type { LlmRequest } from "../LlmRequest.ts"
import type { LlmResponse } from "../LlmResponse.ts"
import type * as Retry from "../Retry.ts"
import type { Stage } from "../Stage.ts"
import * as Telemetry from "../Telemetry.ts"
import * as Attempts from "./attempt.ts"
import { memo } from "./keyedState.ts"
import { keyLabel } from "./metrics.ts"
import * as Report from "./report.ts"
import * as Retrying from "./retry.ts"

/** What one model of the step needs, built once per model: its key, its retry stage, its continuation. */
interface Model {
  readonly key: string
  readonly retry: ReturnType<typeof Retrying.stage> | undefined
  readonly then: Attempts.Continuation
  /** The continuation without telemetry, for a call observed by a span around it. */
  readonly quiet: Attempts.Continuation
}

/** @internal */
export interface Options {
  readonly provider: LlmProvider["Service"]
  /** Entered with the first attempt only. */
  readonly callStages: ReadonlyArray<Stage<unknown>>
  /** Entered by every attempt, in order. */
  readonly stages: ReadonlyArray<Stage<unknown>>
  readonly profile: Retry.Profile | undefined
  readonly budget: Retry.Options["budget"]
  /** The path's name, to record the call's telemetry under; `undefined`: the caller records it. */
  readonly observe: string | Telemetry.Labels | undefined
  /** The models named in the configuration; others are labelled `other` in the retry metrics. [all named] */
  readonly models?: ReadonlySet<string> | undefined
  /** Give up on a timeout that received nothing, so that the plan's next step is tried. [false] */
  readonly failOverOnSilence?: boolean | undefined
}

/** @internal */
export type Call = (request: LlmRequest) => Effect.Effect<LlmResponse, LlmError>

/** @internal */
export const make = (o: Options): Call => {
  const { provider, stages, observe } = o
  const first = o.callStages.length === 0 ? stages : [...o.callStages, ...stages]

  /** The next attempts of a retrying call, each telling `trail` how long it waited for admission. */
  const tracked = (request: LlmRequest, key: string, trail: Report.Trail): Effect.Effect<LlmResponse, LlmError> =>
    Effect.withFiber((fiber) =>
      Attempts.start(fiber, stages, request, key, provider.complete(request), (r, exit) => {
        trail.admissionWaitMs = r.waitedMs
        return exit
      })
    )

  // The call ends here: its report goes on the response or the error (built once, from what the attempts kept).
  const continuation =
    (retry: Model["retry"], observe: string | Telemetry.Labels | undefined): Attempts.Continuation =>
    (run, exit: Exit.Exit<LlmResponse, LlmError>) => {
      let result: Effect.Effect<LlmResponse, LlmError>
      // retried: a failed attempt that the call stages let through, outside any other retry stage
      if (
        exit._tag === "Failure" &&
        retry !== undefined &&
        run.inner !== undefined &&
        run.entered >= o.callStages.length
      ) {
        const trail = new Report.Trail(run.key, run.waitedMs)
        result = Effect.mapBoth(
          Effect.catch(exit, (error) =>
            Effect.interruptible(retry.after(tracked(run.request, run.key, trail), run.startMs, error, trail))
          ),
          {
            onSuccess: (response) => {
              trail.push("ok", "answered")
              return { ...response, report: Report.reportOf(trail.attempts, run.key) }
            },
            onFailure: (error) => CallReport.attach(error, Report.reportOf(trail.attempts, undefined))
          }
        )
      } else if (exit._tag === "Success") {
        result = Exit.succeed({ ...exit.value, report: Report.answered(run.key, run.waitedMs) })
      } else result = Exit.mapError(exit, (error) => stamp(run, error))
      if (observe === undefined) return result
      if (Exit.isExit(result)) {
        const done = result as Exit.Exit<LlmResponse, LlmError>
        Telemetry.finishUnsafe(run.fiber, run.request, observe, run.startMs, done, undefined, run.endMs)
        return done
      }
      return Effect.onExit(result, (final) =>
        Effect.sync(() => Telemetry.finishUnsafe(run.fiber, run.request, observe, run.startMs, final))
      )
    }

  /** A failure that was not retried: one attempt (none if the call stages refused it), and the call gave up. */
  const stamp = (run: Attempts.Run, error: LlmError): LlmError =>
    CallReport.attach(
      error,
      Report.reportOf(
        run.entered < first.length ? [] : [Report.attemptReport(run.key, error._tag, run.waitedMs, "gave-up")],
        undefined
      )
    )

  const modelOf = memo((model): Model => {
    const key = `${provider.name}/${model}`
    const label = keyLabel(o.models, key)
    const retry =
      o.profile === undefined
        ? undefined
        : Retrying.stage(Retrying.configFor(o.profile, o.budget, key, label, o.failOverOnSilence))
    return { key, retry, then: continuation(retry, observe), quiet: continuation(retry, undefined) }
  })

  const call = (request: LlmRequest, span: boolean): Effect.Effect<LlmResponse, LlmError> =>
    Effect.withFiber((fiber) => {
      if (span && o.observe !== undefined && Telemetry.spanVisible(fiber)) {
        return Telemetry.observeCall(request, o.observe)(call(request, false))
      }
      const m = modelOf(request.model)
      const startMs = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
      const retry = m.retry
      const retrying = retry !== undefined && !fiber.getRef(Retrying.InsideRetry)
      const run = Attempts.start(
        fiber,
        first,
        request,
        m.key,
        provider.complete(request),
        span ? m.then : m.quiet,
        retrying ? retry.mark(fiber.context) : undefined,
        startMs
      )
      if (!retrying || retry.budget === undefined) return run
      const deposited = retry.budget.depositAt(m.key, startMs)
      return Effect.isEffect(deposited) ? Effect.andThen(deposited, run) : run
    })
  return (request) => call(request, true)
}

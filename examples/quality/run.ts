/**
 * Runs the quality drill in virtual time: each bug on a primary behind a fallback plan whose circuit check
 * is the quality breaker, and a healthy week for the false alarms.
 *
 * The calls are served by `FakeProvider` (the primary `primary/main`, the fallback `secondary/backup`); what
 * the models write comes from the scenario's generator (`answering` puts it in the fake's responses), so
 * that a judge can check each answer against its question. Virtual time moves in ticks of 6 s, 10 requests
 * per tick: 100 requests per minute.
 */
import {
  FallbackPlan,
  type LlmProvider,
  type LlmRequest,
  OutputMonitor,
  QualityBreaker,
  QualityJudge
} from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"
import { Clock, Effect, Logger, Metric, Random, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as Q from "./scenario.ts"

/** The monitor's configuration: the documented defaults. */
export const monitorOptions: OutputMonitor.Options = {}

const tickMs = 6_000
const perTick = (Q.requestsPerMinute * tickMs) / Q.minute

/** One minute of a bug run, as the report draws it. */
export interface Minute {
  /** Minutes since the bug started (negative during the warm-up). */
  readonly minute: number
  /** The monitor's current-window values for the primary (undefined before its first test). */
  readonly judgeFailure: number | undefined
  readonly mixedScript: number | undefined
  /** Centroid distance over the distance expected by chance. */
  readonly embedding: number | undefined
  /** Share of the minute's requests answered by the fallback. */
  readonly fallback: number
}

export interface BugRun {
  readonly bug: Q.Bug
  /** Virtual ms from the bug's start to its first detection on the primary, or undefined if none. */
  readonly detectedAfterMs: number | undefined
  /** The signals detected at that check. */
  readonly signals: ReadonlyArray<OutputMonitor.Signal>
  /** Virtual ms from the detection to the first answer from the fallback. */
  readonly movedAfterMs: number | undefined
  /** Share of the primary's traffic after the move that still went to it (probes). */
  readonly probeShare: number
  /** Drifts detected before the bug started. */
  readonly falseAlarms: number
  readonly evidence: OutputMonitor.Evidence | undefined
  readonly timeline: ReadonlyArray<Minute>
}

export interface HealthyRun {
  readonly minutes: number
  readonly requests: number
  readonly falseAlarms: ReadonlyArray<{ readonly at: number; readonly signal: OutputMonitor.Signal }>
}

const judgeOf = QualityJudge.make({
  sampleRate: Q.judge.sampleRate,
  judge: (request, response) =>
    Effect.map(Random.next, (r) =>
      Q.correct(request, response.text) ? (r < Q.judge.failsCorrect ? 0 : 1) : r < Q.judge.catchesWrong ? 0 : 1
    )
})

/** What the model writes: the generator's answer to the request's item, with `bug` from `bugFrom` (ms since origin). */
const answering =
  (origin: number, bug: Q.Bug | undefined, bugFrom: number) =>
  (provider: LlmProvider.LlmProvider["Service"]): LlmProvider.LlmProvider["Service"] => ({
    ...provider,
    complete: (request) =>
      Effect.flatMap(provider.complete(request), (response) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const text = Q.answer(
            Q.item(Number(request.metadata?.idempotencyKey)),
            now - origin >= bugFrom ? bug : undefined
          )
          const outputTokens =
            response.finishReason === "length" ? response.usage.outputTokens : Math.ceil(text.length / 4)
          return { ...response, text, usage: { ...response.usage, outputTokens } }
        })
      )
  })

const requestOf = (n: number): LlmRequest.LlmRequest => {
  const it = Q.item(n)
  return { ...it.request, metadata: { idempotencyKey: String(n) } }
}

const value = (signal: OutputMonitor.Signal, window: "current" | "reference") =>
  Metric.value(Metric.withAttributes(OutputMonitor.metrics.value, { key: "primary/main", signal, window })).pipe(
    Effect.map((s) => s.value)
  )

/**
 * Plays `minutes` of traffic; `bug` starts `bugFrom` ms in. Returns what the primary's monitor reported and
 * where each request was answered.
 */
const play = (minutes: number, bug: Q.Bug | undefined, bugFrom: number, withTimeline: boolean) =>
  Effect.scoped(
    Effect.gen(function* () {
      const origin = yield* Clock.currentTimeMillis
      const primary = yield* FakeProvider.make({ name: "primary", models: { main: {} } })
      const secondary = yield* FakeProvider.make({ name: "secondary", models: { backup: {} } })
      const monitor = yield* OutputMonitor.make(monitorOptions)
      const judge = yield* judgeOf
      const circuit = yield* QualityBreaker.make(monitor)
      const observed = monitor.policy({ judge })
      const plan = yield* FallbackPlan.make(
        [
          FallbackPlan.step(answering(origin, bug, bugFrom)(primary.provider), { model: "main", policy: observed }),
          FallbackPlan.step(answering(origin, undefined, 0)(secondary.provider), { model: "backup", policy: observed })
        ],
        { circuit }
      )
      const events: Array<OutputMonitor.DriftEvent> = []
      yield* monitor.events.pipe(
        Stream.runForEach((e) => Effect.sync(() => events.push(e))),
        Effect.forkScoped
      )
      yield* Effect.yieldNow
      const served: Array<{ at: number; fallback: boolean }> = []
      const timeline: Array<Minute> = []
      let n = 0
      for (let t = 0; t < minutes * Q.minute; t += tickMs) {
        yield* TestClock.setTime(origin + t)
        for (let i = 0; i < perTick; i++) {
          const response = yield* plan.complete(requestOf(n++))
          const fallback = response.provider === "secondary"
          if (withTimeline || bug !== undefined) served.push({ at: t, fallback })
        }
        if (withTimeline && (t + tickMs) % Q.minute === 0) {
          const minuteServed = served.slice(-Q.requestsPerMinute)
          const ratio = (yield* value("embedding", "current")) / (yield* value("embedding", "reference"))
          timeline.push({
            minute: Math.floor((t - bugFrom) / Q.minute),
            judgeFailure: yield* value("judge_failure", "current"),
            mixedScript: yield* value("mixed_script", "current"),
            embedding: Number.isFinite(ratio) ? ratio : undefined,
            fallback: minuteServed.filter((s) => s.fallback).length / Math.max(1, minuteServed.length)
          })
        }
        yield* Effect.yieldNow
        // a bug run ends 10 minutes after the bug's first detection
        const detected = events.find((e) => e._tag === "DriftDetected" && e.at - origin >= bugFrom)
        if (detected !== undefined && t >= detected.at - origin + 10 * Q.minute) break
      }
      return { events: events.map((e) => ({ ...e, at: e.at - origin })), served, timeline, requests: n }
    })
  ).pipe(
    Effect.provide([TestClock.layer(), Logger.layer([])]),
    Effect.provideService(Metric.MetricRegistry, new Map()),
    Random.withSeed(19)
  )

/** One bug: `Q.warmupMs` of healthy traffic, then `Q.bugMs` with the bug on the primary. */
export const runBug = (bug: Q.Bug) =>
  Effect.map(play((Q.warmupMs + Q.bugMs) / Q.minute, bug, Q.warmupMs, true), (r): BugRun => {
    const primary = r.events.filter((e) => e.key === "primary/main" && e._tag === "DriftDetected")
    const first = primary.find((e) => e.at >= Q.warmupMs)
    const detectedAt = first?.at
    const moved = detectedAt === undefined ? undefined : r.served.find((s) => s.at >= detectedAt && s.fallback)
    const after = detectedAt === undefined ? [] : r.served.filter((s) => s.at >= detectedAt + Q.minute)
    return {
      bug,
      detectedAfterMs: detectedAt === undefined ? undefined : detectedAt - Q.warmupMs,
      signals: primary.filter((e) => e.at === detectedAt).map((e) => e.evidence.signal),
      movedAfterMs: moved === undefined || detectedAt === undefined ? undefined : moved.at - detectedAt,
      probeShare: after.length === 0 ? 0 : after.filter((s) => !s.fallback).length / after.length,
      falseAlarms: primary.filter((e) => e.at < Q.warmupMs).length,
      evidence: first?.evidence,
      timeline: r.timeline
    }
  })

/**
 * Healthy traffic for `minutes` at 100 requests per minute, straight into the monitor (the fake and the plan
 * add nothing on healthy days: nothing is diverted), with the same judge on the same 5% sample. Every drift
 * detected is a false alarm.
 */
export const runHealthy = (minutes: number) =>
  Effect.scoped(
    Effect.gen(function* () {
      const origin = yield* Clock.currentTimeMillis
      const monitor = yield* OutputMonitor.make(monitorOptions)
      const events: Array<OutputMonitor.DriftEvent> = []
      yield* monitor.events.pipe(
        Stream.runForEach((e) => Effect.sync(() => events.push(e))),
        Effect.forkScoped
      )
      yield* Effect.yieldNow
      const random = yield* Effect.withFiber((fiber) => Effect.succeed(fiber.getRef(Random.Random)))
      let n = 0
      for (let t = 0; t < minutes * Q.minute; t += tickMs) {
        yield* TestClock.setTime(origin + t)
        for (let i = 0; i < perTick; i++) {
          const it = Q.item(n++)
          const text = it.healthy
          const capped = it.request.maxOutputTokens !== undefined
          let judgePassed: boolean | undefined
          if (random.nextDoubleUnsafe() < Q.judge.sampleRate) {
            judgePassed =
              random.nextDoubleUnsafe() >= (Q.correct(it.request, text) ? Q.judge.failsCorrect : Q.judge.catchesWrong)
          }
          yield* monitor.observe(
            {
              text,
              finishReason: capped ? "length" : "stop",
              usage: { inputTokens: 0, outputTokens: capped ? 12 : Math.ceil(text.length / 4) },
              provider: "primary",
              model: "main"
            },
            { judgePassed }
          )
        }
        if (t % Q.minute === 0) yield* Effect.yieldNow
      }
      return {
        minutes,
        requests: n,
        falseAlarms: events
          .filter((e) => e._tag === "DriftDetected")
          .map((e) => ({ at: e.at - origin, signal: e.evidence.signal }))
      } satisfies HealthyRun
    })
  ).pipe(
    Effect.provide([TestClock.layer(), Logger.layer([])]),
    Effect.provideService(Metric.MetricRegistry, new Map()),
    Random.withSeed(19)
  )

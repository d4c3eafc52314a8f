/**
 * Runs the day of trouble once through a client and measures what the callers and the providers saw.
 *
 * Both runs get fresh providers with the same script and the same traffic; only the client differs:
 * - `naive`: what many applications ship: 3 retries with exponential backoff and no jitter, a 30 s
 *   timeout per attempt, no breaker, no retry budget, no admission control, no fallback, no guards;
 * - `resilient`: the same calls through `Resilience` (see `resilientConfig`).
 */
import {
  DurableQueue,
  LlmError,
  LlmProvider as Provider,
  type LlmProvider,
  type LlmRequest,
  type LlmResponse,
  Resilience
} from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"
import { Clock, Context, Duration, Effect, Fiber, Layer, Logger, Schedule, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as Day from "./scenario.ts"

/** How one caller request ended. */
export interface RequestRecord {
  readonly kind: Day.Kind
  readonly start: number
  readonly end: number
  readonly ok: boolean
  /** The provider that answered, when one did. */
  readonly servedBy: string | undefined
  /** The error tag, when it failed. */
  readonly error: string | undefined
  /** The request's idempotency key: its ticket when it was accepted for later. */
  readonly ticket: string | undefined
}

/** Per-minute counts for the report's timeline. */
export interface Minute {
  readonly requests: number
  readonly failed: number
  readonly providerCalls: number
  readonly rateLimited: number
  readonly fallbacks: number
  /** Share of the minute the primary's circuit was open (0 to 1). */
  readonly breakerOpen: number
}

export interface Summary {
  readonly requests: number
  /** Caller requests that got an answer. */
  readonly answered: number
  readonly providerCalls: number
  readonly amplification: number
  readonly successRate: number
  readonly interactiveSuccessRate: number
  readonly servedByFallback: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly interactiveP99Ms: number
  /** p99 of the background requests (the steady ones and the storm). */
  readonly backgroundP99Ms: number
  readonly failFast: number
  readonly rateLimited429: number
  readonly outageCallsToPrimary: number
  readonly costUsd: number
  /** Requests the plan accepted for later (answered with a ticket, then by the queue's workers). */
  readonly acceptedForLater: number
  /** Of those, the ones the workers answered before the end of the drain. */
  readonly answeredLater: number
  /** The longest wait from acceptance to answer, and when (virtual ms since the start) the last one came. */
  readonly laterMaxWaitMs: number
  readonly lastLaterAnswerAtMs: number
}

export interface RunResult {
  readonly summary: Summary
  readonly timeline: ReadonlyArray<Minute>
  readonly agentTurns: number
}

/** The resilient run's configuration: one object, validated at construction. */
export const resilientConfig: Resilience.Config = {
  models: {
    "primary/main": { ...Day.primaryLimits, contextWindow: 128_000 },
    "secondary/backup": { ...Day.secondaryLimits, contextWindow: 200_000 }
  },
  paths: {
    interactive: {
      retry: "interactive",
      timeouts: { totalMs: 8_000, firstTokenMs: 3_000, idleMs: 3_000 },
      maxWaitMs: 1_500
    },
    background: { retry: "background", timeouts: { totalMs: 30_000 }, maxWaitMs: 600_000 },
    // the storm's batch job: what cannot start within a minute is accepted for later and answered by the
    // queue's workers when capacity frees up
    batch: {
      retry: "background",
      timeouts: { totalMs: 30_000 },
      maxWaitMs: 60_000,
      fallback: [{ provider: "primary", model: "main" }, { acceptForLater: true }]
    }
  },
  // batch work may wait up to 10 minutes, behind every interactive request
  admission: { agingMs: 600_000 },
  fallback: [
    { provider: "primary", model: "main" },
    { provider: "secondary", model: "backup" }
  ],
  breaker: {
    failureRateThreshold: 0.2,
    windowMs: 60_000,
    minimumCalls: 5,
    slowCallThresholdMs: 3_000,
    slowCallRateThreshold: 0.2,
    openDurationMs: 60_000
  },
  prices: Day.prices,
  agent: { maxTurns: 20 }
}

// ---------------------------------------------------------------------------------------------------------
// clients
// ---------------------------------------------------------------------------------------------------------

type Answer = { readonly provider: string }
type Call = (request: LlmRequest.LlmRequest, streamed: boolean) => Effect.Effect<Answer, unknown>

const drain = (stream: Stream.Stream<LlmResponse.StreamChunk, unknown>) =>
  Stream.runFold(
    stream,
    (): Answer | undefined => undefined,
    (acc, chunk) => (chunk._tag === "Finish" ? { provider: chunk.provider } : acc)
  ).pipe(
    Effect.flatMap((finish) =>
      finish === undefined
        ? Effect.fail(new LlmError.StreamTruncated({ message: "no Finish", receivedChunks: 0 }))
        : Effect.succeed(finish)
    )
  )

const attempt = (
  provider: LlmProvider.LlmProvider["Service"],
  request: LlmRequest.LlmRequest,
  streamed: boolean
): Effect.Effect<Answer, unknown> =>
  streamed ? drain(provider.stream(request)) : Effect.map(provider.complete(request), (r) => ({ provider: r.provider }))

/** 3 retries, 1 s / 2 s / 4 s without jitter, 30 s per attempt, on every retryable error. */
const naiveClient =
  (provider: LlmProvider.LlmProvider["Service"]): Call =>
  (request, streamed) =>
    attempt(provider, request, streamed).pipe(
      Effect.timeoutOrElse({
        duration: Duration.seconds(30),
        orElse: () => Effect.fail(new LlmError.Timeout({ message: "30 s", phase: "total", afterMs: 30_000 }))
      }),
      Effect.retry({
        schedule: Schedule.exponential(Duration.seconds(1)),
        times: 3,
        while: (e) => LlmError.isRetryable(e as LlmError.LlmError)
      })
    )

const resilientClient =
  (provider: LlmProvider.LlmProvider["Service"]): Call =>
  (request, streamed) =>
    attempt(provider, request, streamed)

// ---------------------------------------------------------------------------------------------------------
// the run
// ---------------------------------------------------------------------------------------------------------

const guardTags = new Set(["TurnLimitExceeded", "LoopDetected", "BudgetExceeded"])

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]

const costOf = (calls: ReadonlyArray<FakeProvider.CallRecord>) => {
  let usd = 0
  for (const c of calls) {
    if (c.outcome !== "success" && c.outputTokens === 0) continue
    const price = Day.prices[c.model as keyof typeof Day.prices]
    usd += (c.inputTokens * price.inputPerMillion + c.outputTokens * price.outputPerMillion) / 1_000_000
  }
  return usd
}

/**
 * Plays the day (and the drain after it, `Day.simulatedMs` in all) through one client under `TestClock` and
 * measures it. `onProgress` is called every ten virtual minutes with the virtual time elapsed. Logging is
 * off: the toolkit logs each fallback activation as a warning, hundreds on this day, which would drown the
 * drill's own output (the summary counts them as "served by fallback").
 */
export const runDay = (mode: "naive" | "resilient", onProgress: (virtualMs: number) => Effect.Effect<void>) =>
  Effect.scoped(
    Effect.gen(function* () {
      const origin = yield* Clock.currentTimeMillis
      const primary = yield* FakeProvider.make(Day.primaryScenario)
      const secondary = yield* FakeProvider.make(Day.secondaryScenario)
      const transitions: Array<{ at: number; to: string }> = []
      const answeredLater: Array<{ readonly ticket: string; readonly at: number; readonly ok: boolean }> = []
      let call: Call
      if (mode === "naive") {
        call = naiveClient(primary.provider)
      } else {
        // the accept-for-later queue (in memory) and its workers, draining through the same pipeline
        const queue = yield* Layer.build(
          DurableQueue.layerLaterQueue.pipe(
            Layer.provideMerge(DurableQueue.layerMemory({ name: "drill", maxAttempts: 10, backoff: "30 seconds" }))
          )
        )
        const resilient = yield* Resilience.make(resilientConfig, [primary.provider, secondary.provider]).pipe(
          Effect.provideContext(queue)
        )
        yield* Context.get(queue, DurableQueue.DurableQueue)
          .work({
            concurrency: 8,
            metricsInterval: "10 minutes",
            onComplete: (job) =>
              Effect.sync(() =>
                answeredLater.push({
                  ticket: job.ticket,
                  at: (job.finishedAt ?? 0) - origin,
                  ok: job.status === "done"
                })
              )
          })
          .pipe(Effect.provideService(Provider.LlmProvider, resilient.provider), Effect.forkScoped)
        yield* resilient.stages.breaker.transitions.pipe(
          Stream.runForEach((t) =>
            Effect.sync(() => {
              if (t.key === "primary/main") transitions.push({ at: t.at - origin, to: t.to })
            })
          ),
          Effect.forkScoped
        )
        call = resilientClient(resilient.provider)
      }

      const records: Array<RequestRecord> = []
      const run = (kind: Day.Kind, request: LlmRequest.LlmRequest) =>
        Effect.gen(function* () {
          const start = (yield* Clock.currentTimeMillis) - origin
          const ticket = request.metadata?.idempotencyKey
          const exit = yield* Effect.exit(call(request, kind === "interactive"))
          const end = (yield* Clock.currentTimeMillis) - origin
          const record: RequestRecord =
            exit._tag === "Success"
              ? { kind, start, end, ok: true, servedBy: exit.value.provider, error: undefined, ticket }
              : {
                  kind,
                  ticket,
                  start,
                  end,
                  ok: false,
                  servedBy: undefined,
                  error:
                    (exit.cause.reasons[0] as { error?: { _tag?: string } } | undefined)?.error?._tag ?? "Interrupted"
                }
          records.push(record)
          return record
        })

      // scheduled traffic
      const planned = Day.traffic()
      const scheduler = Effect.gen(function* () {
        for (const p of planned) {
          const now = (yield* Clock.currentTimeMillis) - origin
          if (p.at > now) yield* Effect.sleep(p.at - now)
          yield* Effect.forkChild(run(p.kind, p.request))
        }
      })
      // the runaway agent: calls again 2 s after every answer, until a guard stops it or the day ends
      let agentTurns = 0
      const agent = Effect.gen(function* () {
        yield* Effect.sleep(Day.agentLoop.from)
        while ((yield* Clock.currentTimeMillis) - origin < Day.dayMs) {
          agentTurns++
          const r = yield* run("agent", Day.agentTurn(agentTurns))
          if (!r.ok && r.error !== undefined && guardTags.has(r.error)) return
          yield* Effect.sleep(Day.agentLoop.thinkMs)
        }
      })
      const fibers = [yield* Effect.forkChild(scheduler), yield* Effect.forkChild(agent)]

      // drive virtual time: the day, then the drain for what is still queued or in flight
      for (let t = 0; t < Day.simulatedMs; t += 10_000) {
        yield* TestClock.adjust(10_000)
        if ((t + 10_000) % (10 * Day.minute) === 0 || t + 10_000 >= Day.simulatedMs) yield* onProgress(t + 10_000)
      }
      yield* Fiber.interruptAll(fibers)

      // ---- measure
      const primaryCalls = yield* primary.calls
      const secondaryCalls = yield* secondary.calls
      const allCalls = [...primaryCalls, ...secondaryCalls]
      const latencies = records.map((r) => r.end - r.start).sort((a, b) => a - b)
      const interactive = records.filter((r) => r.kind === "interactive")
      const interactiveLatencies = interactive.map((r) => r.end - r.start).sort((a, b) => a - b)
      const backgroundLatencies = records
        .filter((r) => r.kind === "background" || r.kind === "storm")
        .map((r) => r.end - r.start)
        .sort((a, b) => a - b)
      const summary: Summary = {
        requests: records.length,
        answered: records.filter((r) => r.ok).length,
        providerCalls: allCalls.length,
        amplification: round(allCalls.length / records.length, 3),
        successRate: round(records.filter((r) => r.ok).length / records.length, 4),
        interactiveSuccessRate: round(interactive.filter((r) => r.ok).length / interactive.length, 4),
        servedByFallback: records.filter((r) => r.servedBy === "secondary").length,
        p50Ms: percentile(latencies, 50),
        p99Ms: percentile(latencies, 99),
        interactiveP99Ms: percentile(interactiveLatencies, 99),
        backgroundP99Ms: percentile(backgroundLatencies, 99),
        failFast: records.filter((r) => !r.ok && r.end - r.start < 1_000).length,
        rateLimited429: allCalls.filter((c) => c.outcome === "RateLimited").length,
        outageCallsToPrimary: primaryCalls.filter((c) => c.startedAt >= Day.outage.from && c.startedAt < Day.outage.to)
          .length,
        costUsd: round(costOf(allCalls), 4),
        ...later(records, answeredLater)
      }
      return { summary, timeline: timeline(records, allCalls, transitions), agentTurns } satisfies RunResult
    })
  ).pipe(Effect.provide([TestClock.layer(), Logger.layer([])]))

/** The accepted-for-later figures: the requests that got a ticket, and when the workers answered them. */
const later = (
  records: ReadonlyArray<RequestRecord>,
  answers: ReadonlyArray<{ readonly ticket: string; readonly at: number; readonly ok: boolean }>
) => {
  const accepted = records.filter((r) => r.error === "AcceptedForLater")
  const done = answers.filter((a) => a.ok)
  const acceptedAt = new Map(accepted.map((r) => [r.ticket, r.end]))
  return {
    acceptedForLater: accepted.length,
    answeredLater: done.length,
    laterMaxWaitMs: Math.max(0, ...done.map((a) => a.at - (acceptedAt.get(a.ticket) ?? a.at))),
    lastLaterAnswerAtMs: Math.max(0, ...done.map((a) => a.at))
  }
}

const round = (n: number, digits: number) => Math.round(n * 10 ** digits) / 10 ** digits

const timeline = (
  records: ReadonlyArray<RequestRecord>,
  calls: ReadonlyArray<FakeProvider.CallRecord>,
  transitions: ReadonlyArray<{ at: number; to: string }>
): ReadonlyArray<Minute> => {
  const minutes = Math.ceil(Day.dayMs / Day.minute)
  const bins = Array.from({ length: minutes }, () => ({
    requests: 0,
    failed: 0,
    providerCalls: 0,
    rateLimited: 0,
    fallbacks: 0,
    breakerOpen: 0
  }))
  const bin = (t: number) => bins[Math.min(minutes - 1, Math.floor(t / Day.minute))]
  for (const r of records) {
    const b = bin(r.start)
    b.requests++
    if (!r.ok) b.failed++
    if (r.servedBy === "secondary") b.fallbacks++
  }
  for (const c of calls) {
    const b = bin(c.startedAt)
    b.providerCalls++
    if (c.outcome === "RateLimited") b.rateLimited++
  }
  // open (or half-open) intervals of the primary's circuit
  let openedAt: number | undefined
  const close = (until: number) => {
    if (openedAt === undefined) return
    for (let m = Math.floor(openedAt / Day.minute); m * Day.minute < until && m < minutes; m++) {
      const from = Math.max(openedAt, m * Day.minute)
      const to = Math.min(until, (m + 1) * Day.minute)
      bins[m].breakerOpen += (to - from) / Day.minute
    }
    openedAt = undefined
  }
  for (const t of transitions) {
    if (t.to === "Closed") close(t.at)
    else if (openedAt === undefined) openedAt = t.at
  }
  close(Day.dayMs)
  return bins
}

/**
 * Admission's per-key state and the helpers around it: the states of a waiter, a key and a ticket, the
 * per-key metrics, cost arithmetic, rejections, and what provider feedback means for the store.
 *
 * @internal
 */
import { Effect, type Fiber, Metric } from "effect"
import type { GroupLimits, Settlement } from "../Admission.ts"
import type * as AdmissionStore from "../AdmissionStore.ts"
import { AdmissionRejected, type AdmissionRejectionReason, type LlmError } from "../LlmError.ts"
import type { LlmResponse, Usage } from "../LlmResponse.ts"
import type { RateLimitSnapshot } from "../RateLimitSnapshot.ts"
import type { MinHeap } from "./MinHeap.ts"
import type { Permits } from "./permits.ts"
import type { Waiter, WaitQueue } from "./WaitQueue.ts"

export const ADMITTED = 1
export const CANCELLED = 2
export const REJECTED = 3
export const RELEASED = 4

export interface RateWaiter extends Waiter {
  readonly cost: AdmissionStore.Cost
  readonly deadline: number
  resume: ((effect: Effect.Effect<void>) => void) | undefined
  reservation: AdmissionStore.Reservation | undefined
  error: AdmissionRejected | undefined
}

export interface KeyMetrics {
  readonly admitted: Metric.Counter<number>
  readonly rejected: Record<AdmissionRejectionReason, Metric.Counter<number>>
  readonly queueDepth: Metric.Gauge<number>
  readonly waitMs: Metric.Histogram<number>
  readonly reserved: Metric.Counter<number>
  readonly actual: Metric.Counter<number>
}

export interface KeyState {
  readonly key: string
  readonly limits: AdmissionStore.Limits
  readonly rateLimited: boolean
  readonly permits: Permits | undefined
  readonly queue: WaitQueue<RateWaiter>
  deadlines: MinHeap<RateWaiter>
  draining: boolean
  again: boolean
  timerAt: number
  /** When the head of the queue can fit, as of the last drain (`-Infinity`: unknown). */
  blockedUntil: number
  /** As of the last drain, while the head is blocked: what may be backfilled / what fits now. */
  slack: AdmissionStore.Cost
  free: AdmissionStore.Cost
  readonly metrics: KeyMetrics
}

export class Ticket {
  readonly ks: KeyState
  readonly cost: AdmissionStore.Cost
  reservation: AdmissionStore.Reservation | undefined = undefined
  permit = false
  settled = false
  constructor(ks: KeyState, cost: AdmissionStore.Cost) {
    this.ks = ks
    this.cost = cost
  }
}

const admittedOptions = { description: "calls admitted by admission control", incremental: true } as const
const rejectedOptions = { description: "calls rejected by admission control, by reason", incremental: true } as const
const queueDepthOptions = { description: "calls waiting for rate budget" } as const
const waitMsOptions = {
  description: "time from arrival to admission, ms",
  boundaries: Metric.exponentialBoundaries({ start: 1, factor: 4, count: 12 })
} as const
const reservedOptions = { description: "tokens reserved at admission (estimates)", incremental: true } as const
const actualOptions = { description: "tokens actually used, as reported by the provider", incremental: true } as const

/** The metrics without attributes (`Admission.metrics`); each key records into its own series (`metricsFor`). */
export const metrics = {
  admitted: Metric.counter("llm_admission_admitted", admittedOptions),
  rejected: Metric.counter("llm_admission_rejected", rejectedOptions),
  queueDepth: Metric.gauge("llm_admission_queue_depth", queueDepthOptions),
  waitMs: Metric.histogram("llm_admission_wait_ms", waitMsOptions),
  tokensReserved: Metric.counter("llm_admission_tokens_reserved", reservedOptions),
  tokensActual: Metric.counter("llm_admission_tokens_actual", actualOptions)
} as const
// Per-key metric objects carry their attributes from construction: `Metric.withAttributes` would rebuild
// the context and the series key on every update (about a microsecond each), which the hot path cannot pay.
export const metricsFor = (key: string): KeyMetrics => {
  const attributes = { key }
  const rejected = (reason: AdmissionRejectionReason) =>
    Metric.counter("llm_admission_rejected", { ...rejectedOptions, attributes: { key, reason } })
  return {
    admitted: Metric.counter("llm_admission_admitted", { ...admittedOptions, attributes }),
    rejected: {
      "queue-full": rejected("queue-full"),
      "wait-too-long": rejected("wait-too-long"),
      "never-admissible": rejected("never-admissible"),
      "concurrency-queue-full": rejected("concurrency-queue-full"),
      "store-unavailable": rejected("store-unavailable")
    },
    queueDepth: Metric.gauge("llm_admission_queue_depth", { ...queueDepthOptions, attributes }),
    waitMs: Metric.histogram("llm_admission_wait_ms", { ...waitMsOptions, attributes }),
    reserved: Metric.counter("llm_admission_tokens_reserved", { ...reservedOptions, attributes }),
    actual: Metric.counter("llm_admission_tokens_actual", { ...actualOptions, attributes })
  }
}

export const ZERO: AdmissionStore.Cost = { requests: 0, tokens: 0, inputTokens: 0, outputTokens: 0 }
export const NONE: ReadonlyArray<AdmissionStore.Correction> = []

export const usageCost = (u: Usage): AdmissionStore.Cost => ({
  requests: 1,
  tokens: u.inputTokens + u.outputTokens,
  inputTokens: u.inputTokens,
  outputTokens: u.outputTokens
})

export const fitsOne = (cost: AdmissionStore.Cost, l: AdmissionStore.Cost): boolean =>
  cost.tokens <= l.tokens && cost.inputTokens <= l.inputTokens && cost.outputTokens <= l.outputTokens

export const fitsIn = (c: AdmissionStore.Cost, s: AdmissionStore.Cost): boolean =>
  c.requests <= s.requests && c.tokens <= s.tokens && c.inputTokens <= s.inputTokens && c.outputTokens <= s.outputTokens

export const minus = (s: AdmissionStore.Cost, c: AdmissionStore.Cost): AdmissionStore.Cost => ({
  requests: s.requests - c.requests,
  tokens: s.tokens - c.tokens,
  inputTokens: s.inputTokens - c.inputTokens,
  outputTokens: s.outputTokens - c.outputTokens
})

const DIMENSIONS: ReadonlyArray<AdmissionStore.Dimension> = ["requests", "tokens", "inputTokens", "outputTokens"]

/** Snapshot windows as store corrections. */
export const snapshotCorrections = (snapshot: RateLimitSnapshot): Array<AdmissionStore.Correction> => {
  const out: Array<AdmissionStore.Correction> = []
  for (const d of DIMENSIONS) {
    const w = snapshot[d]
    if (w !== undefined)
      out.push({ dimension: d, limit: w.limit, remaining: w.remaining, resetAfterMs: w.resetAfterMs })
  }
  return out
}

/** The per-window limits of configured per-minute limits (`Infinity` where not limited). */
export const perMinute = (l: GroupLimits): AdmissionStore.Cost => ({
  requests: l.requestsPerMinute ?? Infinity,
  tokens: l.tokensPerMinute ?? Infinity,
  inputTokens: l.inputTokensPerMinute ?? Infinity,
  outputTokens: l.outputTokensPerMinute ?? Infinity
})

/** A response's settlement; a stream that ended without a `Finish` chunk keeps its estimate. */
export const settleResponse = (r: LlmResponse | undefined): Settlement => r ?? {}

/** How long until the head of `ks` can fit, when known. */
export const retryHint = (ks: KeyState, now: number): number | undefined =>
  Number.isFinite(ks.blockedUntil) && ks.blockedUntil > now ? ks.blockedUntil - now : undefined

/** Fails with `reason`, counted in the key's metrics. */
export const reject = (
  ks: KeyState,
  fiber: Fiber.Fiber<unknown, unknown>,
  reason: AdmissionRejectionReason,
  retryAfterMs: number | undefined
) => {
  ks.metrics.rejected[reason].updateUnsafe(1, fiber.context)
  return Effect.fail(
    new AdmissionRejected(retryAfterMs === undefined ? { key: ks.key, reason } : { key: ks.key, reason, retryAfterMs })
  )
}

/** What a provider error says about the key's budgets: its snapshot, and a 429 drains the budget it names. */
export const correctionsOfError = (ks: KeyState, error: unknown): Array<AdmissionStore.Correction> => {
  if (typeof error !== "object" || error === null || !("_tag" in error)) return []
  const e = error as LlmError
  const snapshot = "rateLimit" in e ? e.rateLimit : undefined
  const out = snapshot !== undefined ? snapshotCorrections(snapshot) : []
  if (e._tag !== "RateLimited") return out
  // a 429 that does not say which limit it hit stops everything: drain the request budget
  const named: Array<AdmissionStore.Dimension> = e.limit === "tokens" ? ["tokens"] : ["requests"]
  if (e.limit === "tokens") {
    if (snapshot?.inputTokens?.remaining === 0) named.push("inputTokens")
    if (snapshot?.outputTokens?.remaining === 0) named.push("outputTokens")
  }
  for (const d of named) {
    out.push({
      dimension: d,
      drain: true,
      resetAfterMs: snapshot?.[d]?.resetAfterMs ?? e.retryAfterMs ?? snapshot?.retryAfterMs ?? ks.limits.windowMs
    })
  }
  return out
}

/**
 * The chaos server's rate limits: per model, requests and tokens counted over a sliding window (a minute by
 * default) at arrival, as a provider counts them. A call over a limit is answered with a real 429 and the
 * provider's rate-limit headers (`x-ratelimit-*` for OpenAI, Responses and Azure with Go-style reset
 * durations, `anthropic-ratelimit-*` with RFC 3339 resets, none for Gemini) and `retry-after`; a call
 * under them gets the same headers with what remains. A refused call is not counted.
 *
 * @internal
 */
import { Schema } from "effect"
import { makeHistory } from "./history.ts"
import type { Wire } from "./wire.ts"

const PerMinute = Schema.optional(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)))

/** Requests and tokens per window (a minute by default), by model: the `rateLimits` option. */
export const RateLimits = Schema.Record(
  Schema.String,
  Schema.Struct({ requestsPerMinute: PerMinute, tokensPerMinute: PerMinute })
)

/** The limits of one model. */
export type ModelLimits = (typeof RateLimits.Type)[string]

/** One call as the limiter saw it. */
export interface LimitEvent {
  readonly model: string
  readonly atMs: number
  readonly tokens: number
  readonly limited: boolean
}

/** The limiter's answer: the headers to send and, over a limit, which one and the provider's 429 body. */
export interface Verdict {
  readonly headers: Record<string, string>
  readonly exceeded: "requests" | "tokens" | undefined
  /** The 429 body in the wire's own shape, where the wire names the limit (else the wire's usual one). */
  readonly body: unknown
}

/** A 429 body naming the limit that was hit, as OpenAI and Anthropic write it. */
const limitBody = (
  wire: Wire["name"],
  model: string,
  exceeded: "requests" | "tokens",
  limit: number,
  used: number,
  requested: number,
  waitMs: number,
  requestId: string
): unknown => {
  if (wire === "openai" || wire === "openai-responses") {
    const per = exceeded === "requests" ? "requests per min (RPM)" : "tokens per min (TPM)"
    return {
      error: {
        message: `Rate limit reached for ${model} in organization org-chaos on ${per}: Limit ${limit}, Used ${used}, Requested ${requested}. Please try again in ${goDuration(waitMs)}.`,
        type: exceeded,
        param: null,
        code: "rate_limit_exceeded"
      }
    }
  }
  if (wire === "anthropic") {
    return {
      type: "error",
      error: {
        type: "rate_limit_error",
        message: `This request would exceed the rate limit for your organization of ${limit} ${exceeded === "requests" ? "requests" : "tokens"} per minute.`
      },
      request_id: requestId
    }
  }
  return undefined
}

interface Log {
  readonly at: Array<number>
  readonly tokens: Array<number>
  head: number
  usedTokens: number
}

/** `1.5s`, `6ms`, `1m30.5s`: OpenAI's reset durations. */
export const goDuration = (ms: number): string => {
  if (ms < 1_000) return `${Math.max(0, Math.ceil(ms))}ms`
  const seconds = Math.round(ms) / 1_000
  if (seconds < 60) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  return `${minutes}m${Math.round((seconds - minutes * 60) * 1_000) / 1_000}s`
}

const rfc3339 = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z")

/** A limiter over `limits` per model and a window of `windowMs`; its event log keeps the latest `historyLimit`. */
export const makeLimiter = (limits: Readonly<Record<string, ModelLimits>>, windowMs: number, historyLimit: number) => {
  const logs = new Map<string, Log>()
  const events = makeHistory<LimitEvent>(historyLimit)

  const logOf = (model: string): Log => {
    let log = logs.get(model)
    if (log === undefined) {
      log = { at: [], tokens: [], head: 0, usedTokens: 0 }
      logs.set(model, log)
    }
    return log
  }

  const slide = (log: Log, now: number) => {
    while (log.head < log.at.length && log.at[log.head] <= now - windowMs) {
      log.usedTokens -= log.tokens[log.head]
      log.head++
    }
    if (log.head > 1_024 && log.head * 2 > log.at.length) {
      log.at.splice(0, log.head)
      log.tokens.splice(0, log.head)
      log.head = 0
    }
  }

  /**
   * Milliseconds until the log holds at most `x` tokens. For none (every answer under the limit asks that),
   * that is when the newest entry with tokens leaves: found from the end, so that an answer does not walk
   * the whole window (60,000 entries at 1,000 requests/s).
   */
  const tokensFreeIn = (log: Log, x: number, now: number): number => {
    let used = log.usedTokens
    if (used <= x) return 0
    if (x <= 0) {
      for (let i = log.at.length - 1; i >= log.head; i--) {
        if (log.tokens[i] > 0) return Math.max(0, log.at[i] + windowMs - now)
      }
      return 0
    }
    for (let i = log.head; i < log.at.length; i++) {
      used -= log.tokens[i]
      if (used <= x) return Math.max(0, log.at[i] + windowMs - now)
    }
    return windowMs
  }

  const headers = (
    wire: Wire["name"],
    l: ModelLimits,
    remaining: { requests: number; tokens: number },
    reset: { requests: number; tokens: number },
    now: number
  ): Record<string, string> => {
    const out: Record<string, string> = {}
    const windows = [
      ["requests", l.requestsPerMinute, remaining.requests, reset.requests],
      ["tokens", l.tokensPerMinute, remaining.tokens, reset.tokens]
    ] as const
    for (const [name, limit, left, resetMs] of windows) {
      if (limit === undefined) continue
      if (wire === "anthropic") {
        out[`anthropic-ratelimit-${name}-limit`] = String(limit)
        out[`anthropic-ratelimit-${name}-remaining`] = String(Math.max(0, Math.floor(left)))
        out[`anthropic-ratelimit-${name}-reset`] = rfc3339(now + resetMs)
      } else if (wire !== "gemini") {
        out[`x-ratelimit-limit-${name}`] = String(limit)
        out[`x-ratelimit-remaining-${name}`] = String(Math.max(0, Math.floor(left)))
        out[`x-ratelimit-reset-${name}`] = goDuration(resetMs)
      }
    }
    return out
  }

  /** Counts a call of `tokens` to `model` at `now`, or refuses it; `undefined` when the model has no limits. */
  const admit = (
    wire: Wire["name"],
    model: string,
    tokens: number,
    now: number,
    requestId: string
  ): Verdict | undefined => {
    if (!Object.hasOwn(limits, model)) return undefined
    const l = limits[model]
    const log = logOf(model)
    slide(log, now)
    const requests = log.at.length - log.head
    const rpm = l.requestsPerMinute ?? Infinity
    const tpm = l.tokensPerMinute ?? Infinity
    const exceeded = requests + 1 > rpm ? "requests" : log.usedTokens + tokens > tpm ? "tokens" : undefined
    if (exceeded === undefined) {
      log.at.push(now)
      log.tokens.push(tokens)
      log.usedTokens += tokens
    }
    events.append({ model, atMs: now, tokens, limited: exceeded !== undefined })
    const oldest = log.head < log.at.length ? log.at[log.head] : now
    const requestsReset = Math.max(0, oldest + windowMs - now)
    const reset = {
      requests: exceeded === "requests" ? requestsReset : log.at.length > log.head ? requestsReset : 0,
      tokens: tokensFreeIn(log, exceeded === "tokens" ? tpm - tokens : 0, now)
    }
    const out = headers(
      wire,
      l,
      { requests: rpm - (log.at.length - log.head), tokens: tpm - log.usedTokens },
      reset,
      now
    )
    if (exceeded === undefined) return { headers: out, exceeded, body: undefined }
    const wait = exceeded === "requests" ? reset.requests : reset.tokens
    out["retry-after"] = String(Math.max(1, Math.ceil(wait / 1_000)))
    if (wire !== "anthropic" && wire !== "gemini") out["retry-after-ms"] = String(Math.max(1, Math.ceil(wait)))
    const body =
      exceeded === "requests"
        ? limitBody(wire, model, exceeded, rpm, requests, 1, wait, requestId)
        : limitBody(wire, model, exceeded, tpm, log.usedTokens, tokens, wait, requestId)
    return { headers: out, exceeded, body }
  }

  return { admit, events: events.entries }
}

/** A limiter (see {@link makeLimiter}). */
export type Limiter = ReturnType<typeof makeLimiter>

/**
 * Internal helpers for reading provider response headers: case-insensitive lookup over any header shape,
 * and strict, total parsers for the number, duration and date forms providers use. Every parser returns
 * `undefined` for input it does not understand and never throws; every duration it returns is finite,
 * non-negative and at most {@link MAX_DURATION_MS}.
 *
 * @internal
 */
import { Headers } from "effect/http"

/** Header maps as Node (`IncomingHttpHeaders`), effect/http `Headers` and plain records give them. */
export type HeaderInput = Readonly<Record<string, string | ReadonlyArray<string> | undefined>>

/** Largest duration any parser returns: 24 hours. Longer waits are clamped to it, not dropped. */
export const MAX_DURATION_MS = 24 * 60 * 60 * 1000

/** Largest count (limit / remaining) accepted; anything larger is dropped as absurd. */
export const MAX_COUNT = Number.MAX_SAFE_INTEGER

/** Longest header value looked at; longer values are garbage for every header we read. */
const MAX_VALUE_LENGTH = 256

/** A lower-cased view of a header map. */
export type Lookup = (name: string) => string | undefined

const firstString = (value: unknown): string | undefined => {
  if (typeof value === "string") return value
  if (Array.isArray(value)) {
    for (const v of value) if (typeof v === "string") return v
  }
  return undefined
}

// header names are ASCII tokens (RFC 9110), so ASCII upper case is the only case to fold
const upper = /[A-Z]/

const fetchHeadersCtor: unknown = (globalThis as { Headers?: unknown }).Headers

/**
 * Builds a case-insensitive lookup over `headers`. Lower-case keys (Node, effect/http) are read directly;
 * otherwise the keys are lower-cased once. A WHATWG `Headers` object is accepted too. Anything that is not
 * an object yields an empty lookup.
 */
export const lookup = (headers: unknown): Lookup => {
  if (typeof headers !== "object" || headers === null) return empty
  // effect/http's headers are lower-case by construction: the providers' responses skip the scan of their names
  if (Headers.isHeaders(headers)) return lowerCase(headers as unknown as Record<string, unknown>)
  try {
    if (typeof fetchHeadersCtor === "function" && headers instanceof (fetchHeadersCtor as new () => object)) {
      const h = headers as { get(name: string): string | null }
      return (name) => {
        const v = h.get(name)
        return v === null ? undefined : clip(v)
      }
    }
    const record = headers as Record<string, unknown>
    const keys = Object.keys(record)
    let allLower = true
    for (const key of keys) {
      if (upper.test(key)) {
        allLower = false
        break
      }
    }
    if (allLower) return lowerCase(record)
    const map = new Map<string, string>()
    for (const key of keys) {
      const lower = key.toLowerCase()
      if (map.has(lower)) continue
      const v = firstString(record[key])
      if (v !== undefined) map.set(lower, v)
    }
    return (name) => clip(map.get(name))
  } catch {
    return empty
  }
}

const empty: Lookup = () => undefined

const lowerCase =
  (record: Record<string, unknown>): Lookup =>
  (name) =>
    Object.hasOwn(record, name) ? clip(firstString(record[name])) : undefined

const clip = (v: string | undefined): string | undefined => {
  if (v === undefined) return undefined
  const t = v.trim()
  return t.length === 0 || t.length > MAX_VALUE_LENGTH ? undefined : t
}

// -------------------------------------------------------------------------------------------------------
// numbers
// -------------------------------------------------------------------------------------------------------

const decimal = /^\+?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/

/** A plain non-negative decimal number (no sign other than `+`, no `Infinity`, no hex), or `undefined`. */
export const nonNegativeNumber = (s: string): number | undefined => {
  if (!decimal.test(s)) return undefined
  const n = Number(s)
  return Number.isFinite(n) && n >= 0 ? n : undefined
}

/** A count header (limit / remaining): a non-negative number no larger than {@link MAX_COUNT}. */
export const count = (s: string | undefined): number | undefined => {
  if (s === undefined) return undefined
  const n = nonNegativeNumber(s)
  return n !== undefined && n <= MAX_COUNT ? n : undefined
}

/** Clamps a candidate duration to `[0, MAX_DURATION_MS]`; non-finite and negative values are dropped. */
export const clampDuration = (ms: number): number | undefined => {
  if (!Number.isFinite(ms) || ms < 0) return undefined
  return Math.min(ms, MAX_DURATION_MS)
}

/** Seconds to a clamped millisecond duration (huge but finite second counts clamp, never overflow). */
export const secondsToMs = (seconds: number): number | undefined =>
  clampDuration(Math.min(seconds, MAX_DURATION_MS / 1000) * 1000)

/** A past or future instant, relative to `nowMillis`, as a clamped wait (past instants give 0). */
export const untilInstant = (epochMillis: number, nowMillis: number): number | undefined => {
  if (!Number.isFinite(epochMillis) || !Number.isFinite(nowMillis)) return undefined
  const d = epochMillis - nowMillis
  return clampDuration(Math.max(d, 0))
}

// -------------------------------------------------------------------------------------------------------
// Go durations
// -------------------------------------------------------------------------------------------------------

const MICRO_SIGN = 0xb5 // µ
const GREEK_MU = 0x3bc // μ

const isDigit = (c: number): boolean => c >= 48 && c <= 57

/**
 * Parses a Go `time.Duration` string (`6m0s`, `1m30.5s`, `12ms`, `1h2m`, `0`, a leading `+`) into
 * milliseconds, clamped to {@link MAX_DURATION_MS}. Negative durations and anything else give `undefined`.
 * A hand-written scanner (no regex, no allocation besides the number slices): it runs on every response.
 */
export const goDuration = (input: string): number | undefined => {
  if (typeof input !== "string") return undefined
  const s = input.trim()
  const n = s.length
  if (n === 0 || n > MAX_VALUE_LENGTH) return undefined
  let i = s.charCodeAt(0) === 43 /* + */ ? 1 : 0
  if (i === n) return undefined
  if (n - i === 1 && s.charCodeAt(i) === 48 /* 0 */) return 0
  let total = 0
  while (i < n) {
    const start = i
    let digits = 0
    while (i < n && isDigit(s.charCodeAt(i))) {
      i++
      digits++
    }
    if (i < n && s.charCodeAt(i) === 46 /* . */) {
      i++
      while (i < n && isDigit(s.charCodeAt(i))) {
        i++
        digits++
      }
    }
    if (digits === 0) return undefined
    const value = Number(s.slice(start, i))
    let unit: number
    const c = s.charCodeAt(i)
    const next = s.charCodeAt(i + 1) // NaN past the end
    if (c === 104 /* h */) {
      unit = 3_600_000
      i += 1
    } else if (c === 109 /* m */) {
      if (next === 115 /* s */) {
        unit = 1
        i += 2
      } else {
        unit = 60_000
        i += 1
      }
    } else if (c === 115 /* s */) {
      unit = 1000
      i += 1
    } else if ((c === 117 || c === MICRO_SIGN || c === GREEK_MU) && next === 115 /* us, µs, μs */) {
      unit = 0.001
      i += 2
    } else if (c === 110 /* n */ && next === 115) {
      unit = 0.000001
      i += 2
    } else {
      return undefined
    }
    total += value * unit
    if (!Number.isFinite(total)) return MAX_DURATION_MS
  }
  return clampDuration(total)
}

// -------------------------------------------------------------------------------------------------------
// dates
// -------------------------------------------------------------------------------------------------------

const rfc3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):?(\d{2}))$/

const validFields = (y: number, mo: number, d: number, h: number, mi: number, s: number): boolean =>
  mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && s <= 60 && y >= 1

/** Parses an RFC 3339 timestamp (`2024-06-01T12:00:30.5Z`, `...+02:00`) into epoch milliseconds. */
export const rfc3339Millis = (s: string): number | undefined => {
  const m = rfc3339.exec(s)
  if (m === null) return undefined
  const y = Number(m[1])
  const mo = Number(m[2])
  const d = Number(m[3])
  const h = Number(m[4])
  const mi = Number(m[5])
  const sec = Number(m[6])
  if (!validFields(y, mo, d, h, mi, sec)) return undefined
  // whole milliseconds: sub-millisecond precision is below what an epoch-millis double can hold anyway
  const frac = m[7] === undefined ? 0 : Math.floor(Number(`0.${m[7]}`) * 1000)
  let offsetMin = 0
  if (m[8] === undefined && m[9] !== undefined) {
    const oh = Number(m[10])
    const om = Number(m[11])
    if (oh > 23 || om > 59) return undefined
    offsetMin = (m[9] === "-" ? -1 : 1) * (oh * 60 + om)
  }
  const t = Date.UTC(y, mo - 1, d, h, mi, Math.min(sec, 59)) + frac - offsetMin * 60_000
  return Number.isFinite(t) ? t : undefined
}

const months: Readonly<Record<string, number>> = {
  jan: 0,
  feb: 1,
  mar: 2,
  apr: 3,
  may: 4,
  jun: 5,
  jul: 6,
  aug: 7,
  sep: 8,
  oct: 9,
  nov: 10,
  dec: 11
}

// IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
const imfFixdate = /^[A-Za-z]{3}, (\d{1,2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) (?:GMT|UTC|Z)$/
// obsolete RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
const rfc850 = /^[A-Za-z]+, (\d{1,2})-([A-Za-z]{3})-(\d{2}|\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/
// asctime: Sun Nov  6 08:49:37 1994
const asctime = /^[A-Za-z]{3} ([A-Za-z]{3}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4})$/

const fromParts = (y: number, mon: string, d: number, h: number, mi: number, s: number): number | undefined => {
  const mo = months[mon.toLowerCase()]
  if (mo === undefined || !validFields(y, mo + 1, d, h, mi, s)) return undefined
  const t = Date.UTC(y, mo, d, h, mi, Math.min(s, 59))
  return Number.isFinite(t) ? t : undefined
}

/** Parses an HTTP date (IMF-fixdate, RFC 850 or asctime, RFC 9110 §5.6.7) into epoch milliseconds. */
export const httpDateMillis = (s: string): number | undefined => {
  let m = imfFixdate.exec(s)
  if (m !== null) {
    return fromParts(Number(m[3]), m[2] as string, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]))
  }
  m = rfc850.exec(s)
  if (m !== null) {
    const yy = Number(m[3])
    const y = (m[3] as string).length === 4 ? yy : yy < 70 ? 2000 + yy : 1900 + yy
    return fromParts(y, m[2] as string, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]))
  }
  m = asctime.exec(s)
  if (m !== null) {
    return fromParts(Number(m[6]), m[1] as string, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]))
  }
  return undefined
}

/** Bare numbers at least this large in a reset header are read as epoch seconds, not a delay. */
const EPOCH_SECONDS_THRESHOLD = 1_000_000_000

/**
 * Parses a rate-limit reset value in any of the forms providers send, relative to `nowMillis`:
 * an RFC 3339 timestamp (Anthropic), a Go duration (OpenAI), a bare number of seconds (some
 * OpenAI-compatible servers), or a bare epoch-seconds timestamp (>= 1e9).
 */
export const resetAfter = (s: string | undefined, nowMillis: number): number | undefined => {
  if (s === undefined) return undefined
  const n = nonNegativeNumber(s)
  if (n !== undefined) {
    return n >= EPOCH_SECONDS_THRESHOLD ? untilInstant(n * 1000, nowMillis) : secondsToMs(n)
  }
  const go = goDuration(s)
  if (go !== undefined) return go
  const at = rfc3339Millis(s) ?? httpDateMillis(s)
  return at === undefined ? undefined : untilInstant(at, nowMillis)
}

const millisecondNames = ["retry-after-ms", "x-ms-retry-after-ms"]

/**
 * The wait a response asks for: `retry-after-ms` (float milliseconds, OpenAI and Azure) or Azure's
 * `x-ms-retry-after-ms` wins over `retry-after` (seconds, possibly fractional, or an HTTP date relative to
 * `nowMillis`). Clamped to {@link MAX_DURATION_MS}.
 */
export const retryAfter = (get: Lookup, nowMillis: number): number | undefined => {
  for (const name of millisecondNames) {
    const ms = get(name)
    const n = ms === undefined ? undefined : nonNegativeNumber(ms)
    if (n !== undefined) return clampDuration(n)
  }
  const ra = get("retry-after")
  if (ra === undefined) return undefined
  const seconds = nonNegativeNumber(ra)
  if (seconds !== undefined) return secondsToMs(seconds)
  const at = httpDateMillis(ra)
  return at === undefined ? undefined : untilInstant(at, nowMillis)
}

/** `x-should-retry`: `true` / `false` (any case), anything else `undefined`. */
export const shouldRetry = (get: Lookup): boolean | undefined => {
  const v = get("x-should-retry")
  if (v === undefined) return undefined
  const lower = v.toLowerCase()
  return lower === "true" ? true : lower === "false" ? false : undefined
}

/** Longest request id kept; longer values are garbage. */
const MAX_REQUEST_ID_LENGTH = 200

/** The provider's request id: `x-request-id` (OpenAI), `request-id` (Anthropic) or `apim-request-id` (Azure). */
export const requestId = (get: Lookup): string | undefined => {
  const v = get("x-request-id") ?? get("request-id") ?? get("apim-request-id")
  return v !== undefined && v.length <= MAX_REQUEST_ID_LENGTH ? v : undefined
}

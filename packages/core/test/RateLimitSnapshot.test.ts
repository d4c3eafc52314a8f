import { describe, expect, it } from "@effect/vitest"
import { RateLimitSnapshot } from "@llm-resilience/core"
import { Schema } from "effect"
import { Headers } from "effect/http"
import * as fc from "fast-check"

const now = Date.parse("2025-06-01T12:00:00.000Z")
const DAY = 24 * 60 * 60 * 1000

describe("RateLimitSnapshot.parseGoDuration", () => {
  const valid: ReadonlyArray<readonly [string, number]> = [
    ["6m0s", 360_000],
    ["1m30.5s", 90_500],
    ["12ms", 12],
    ["1s", 1000],
    ["0.5s", 500],
    [".5s", 500],
    ["1h2m", 3_720_000],
    ["2h45m30.5s", 9_930_500],
    ["0", 0],
    ["0s", 0],
    ["+3s", 3000],
    ["500us", 0.5],
    ["1500µs", 1.5],
    ["2000000ns", 2],
    [" 7s ", 7000],
    ["48h", DAY], // clamped
    ["99999999999999999999h", DAY] // clamped, not Infinity
  ]
  it.each(valid)("%s -> %d ms", (input, ms) => {
    expect(RateLimitSnapshot.parseGoDuration(input)).toBeCloseTo(ms, 9)
  })

  const invalid = [
    "",
    " ",
    "1",
    "30",
    "-1s",
    "-0.5s",
    "1x",
    "s",
    "m1",
    "1.2.3s",
    "Infinity",
    "NaN",
    "1e3s",
    "1 s",
    "1s2"
  ]
  it.each(invalid)("%j -> undefined", (input) => {
    expect(RateLimitSnapshot.parseGoDuration(input)).toBeUndefined()
  })
})

describe("RateLimitSnapshot.parseRetryAfter", () => {
  const cases: ReadonlyArray<readonly [string, Record<string, string>, number | undefined]> = [
    ["integer seconds", { "retry-after": "2" }, 2000],
    ["fractional seconds", { "retry-after": "1.5" }, 1500],
    ["zero", { "retry-after": "0" }, 0],
    ["IMF-fixdate 30 s ahead", { "retry-after": "Sun, 01 Jun 2025 12:00:30 GMT" }, 30_000],
    ["RFC 850 date", { "retry-after": "Sunday, 01-Jun-25 12:01:00 GMT" }, 60_000],
    ["asctime date", { "retry-after": "Sun Jun  1 12:00:05 2025" }, 5000],
    ["date in the past -> 0", { "retry-after": "Sat, 31 May 2025 12:00:00 GMT" }, 0],
    ["retry-after-ms (float) wins", { "retry-after-ms": "250.5", "retry-after": "9" }, 250.5],
    ["bad retry-after-ms falls back", { "retry-after-ms": "soon", "retry-after": "3" }, 3000],
    ["any key case", { "Retry-After": "4" }, 4000],
    ["huge seconds clamp to 24 h", { "retry-after": "1e308" }, DAY],
    ["multi-day wait clamps to 24 h", { "retry-after": "259200" }, DAY],
    ["date years away clamps to 24 h", { "retry-after": "Fri, 01 Jun 2035 12:00:00 GMT" }, DAY],
    ["negative dropped", { "retry-after": "-5" }, undefined],
    ["NaN dropped", { "retry-after": "NaN" }, undefined],
    ["Infinity dropped", { "retry-after": "Infinity" }, undefined],
    ["hex dropped", { "retry-after": "0x10" }, undefined],
    ["garbage dropped", { "retry-after": "tomorrow-ish" }, undefined],
    ["impossible date dropped", { "retry-after": "Sun, 32 Foo 2025 25:00:00 GMT" }, undefined],
    ["negative retry-after-ms dropped", { "retry-after-ms": "-1" }, undefined],
    ["absent", {}, undefined]
  ]
  it.each(cases)("%s", (_name, headers, expected) => {
    expect(RateLimitSnapshot.parseRetryAfter(headers, now)).toBe(expected)
  })

  it("accepts Node-style array values and effect/http Headers", () => {
    expect(RateLimitSnapshot.parseRetryAfter({ "retry-after": ["7", "9"] }, now)).toBe(7000)
    expect(RateLimitSnapshot.parseRetryAfter(Headers.fromInput({ "Retry-After": "8" }), now)).toBe(8000)
  })
})

describe("RateLimitSnapshot.fromHeaders", () => {
  it("reads effect/http Headers (the providers' responses) as it reads a plain record", () => {
    const raw = {
      "X-RateLimit-Limit-Requests": "10000",
      "x-ratelimit-remaining-requests": " 9999 ",
      "x-ratelimit-reset-requests": "6ms",
      "anthropic-ratelimit-output-tokens-remaining": "8000",
      "Retry-After": "3",
      "x-should-retry": "false"
    }
    const snap = RateLimitSnapshot.fromHeaders(Headers.fromInput(raw), now)
    expect(snap).toEqual({
      retryAfterMs: 3000,
      shouldRetry: false,
      requests: { limit: 10000, remaining: 9999, resetAfterMs: 6 },
      outputTokens: { remaining: 8000 }
    })
    expect(RateLimitSnapshot.fromHeaders(raw, now)).toEqual(snap)
  })

  it("reads OpenAI x-ratelimit-* with Go durations", () => {
    const snap = RateLimitSnapshot.fromHeaders(
      {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-limit-tokens": "2000000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1m30.5s",
        "retry-after-ms": "1200",
        "x-should-retry": "true"
      },
      now
    )
    expect(snap).toEqual({
      retryAfterMs: 1200,
      shouldRetry: true,
      requests: { limit: 10000, remaining: 9999, resetAfterMs: 6 },
      tokens: { limit: 2_000_000, remaining: 0, resetAfterMs: 90_500 }
    })
  })

  it("reads Anthropic anthropic-ratelimit-* with RFC 3339 resets, incl. input and output tokens", () => {
    const snap = RateLimitSnapshot.fromHeaders(
      {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2025-06-01T12:00:01Z",
        "anthropic-ratelimit-tokens-limit": "90000",
        "anthropic-ratelimit-tokens-remaining": "80000",
        "anthropic-ratelimit-tokens-reset": "2025-06-01T12:00:10.250Z",
        "anthropic-ratelimit-input-tokens-limit": "40000",
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": "2025-06-01T14:00:30+02:00",
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "8000",
        "anthropic-ratelimit-output-tokens-reset": "2025-06-01T11:59:00Z",
        "retry-after": "30"
      },
      now
    )
    expect(snap).toEqual({
      retryAfterMs: 30_000,
      requests: { limit: 50, remaining: 49, resetAfterMs: 1000 },
      tokens: { limit: 90000, remaining: 80000, resetAfterMs: 10_250 },
      inputTokens: { limit: 40000, remaining: 0, resetAfterMs: 30_000 },
      // a reset already in the past means "now"
      outputTokens: { limit: 8000, remaining: 8000, resetAfterMs: 0 }
    })
  })

  it("RFC 3339 resets: offsets, fractional seconds, far future clamped, malformed dropped", () => {
    const reset = (value: string) =>
      RateLimitSnapshot.fromHeaders({ "anthropic-ratelimit-requests-reset": value }, now).requests?.resetAfterMs
    expect(reset("2025-06-01T12:00:00.5Z")).toBe(500)
    expect(reset("2025-06-01T12:00:00.123456789Z")).toBe(123) // whole milliseconds
    expect(reset("2025-06-01T07:00:02-05:00")).toBe(2000)
    expect(reset("2025-06-01t12:00:03z")).toBe(3000)
    expect(reset("2099-01-01T00:00:00Z")).toBe(DAY)
    expect(reset("2025-13-01T00:00:00Z")).toBeUndefined()
    expect(reset("2025-06-01T25:00:00Z")).toBeUndefined()
    expect(reset("2025-06-01")).toBeUndefined()
    expect(reset("soon")).toBeUndefined()
  })

  it("accepts other reset forms OpenAI-compatible servers send: bare seconds and epoch seconds", () => {
    const reset = (value: string) =>
      RateLimitSnapshot.fromHeaders({ "x-ratelimit-reset-requests": value }, now).requests?.resetAfterMs
    expect(reset("2")).toBe(2000)
    expect(reset("1.5")).toBe(1500)
    expect(reset(String(now / 1000 + 42))).toBe(42_000)
    expect(reset(String(now / 1000 - 42))).toBe(0)
  })

  it("matches keys in any case and ignores unrelated headers", () => {
    const snap = RateLimitSnapshot.fromHeaders(
      { "X-RateLimit-Remaining-Requests": "0", "Content-Type": "application/json", "X-Should-Retry": "FALSE" },
      now
    )
    expect(snap).toEqual({ shouldRetry: false, requests: { remaining: 0 } })
  })

  it("drops absurd counts and unreadable values without throwing", () => {
    const snap = RateLimitSnapshot.fromHeaders(
      {
        "x-ratelimit-limit-requests": "1e308",
        "x-ratelimit-remaining-requests": "-3",
        "x-ratelimit-reset-requests": "-1s",
        "x-ratelimit-limit-tokens": "NaN",
        "x-ratelimit-remaining-tokens": "Infinity",
        "x-ratelimit-reset-tokens": "garbage",
        "x-should-retry": "maybe",
        "retry-after": ""
      },
      now
    )
    expect(snap).toEqual({})
    expect(RateLimitSnapshot.isEmpty(snap)).toBe(true)
  })

  it("is total on values that are not header maps", () => {
    for (const bad of [null, undefined, 42, "x", [], { "retry-after": 5 }, { "retry-after": [1, "2"] }]) {
      expect(() => RateLimitSnapshot.fromHeaders(bad as never, now)).not.toThrow()
    }
    expect(RateLimitSnapshot.fromHeaders({ "retry-after": [1, "2"] } as never, now)).toEqual({ retryAfterMs: 2000 })
  })

  it("reads a WHATWG fetch Headers object", () => {
    const h = new globalThis.Headers({ "Retry-After": "3", "x-ratelimit-remaining-tokens": "0" })
    expect(RateLimitSnapshot.fromHeaders(h as never, now)).toEqual({ retryAfterMs: 3000, tokens: { remaining: 0 } })
  })

  it("produces values the schema accepts", () => {
    const snap = RateLimitSnapshot.fromHeaders(
      { "x-ratelimit-reset-tokens": "1s", "anthropic-ratelimit-output-tokens-remaining": "5", "retry-after": "1" },
      now
    )
    expect(Schema.is(RateLimitSnapshot.RateLimitSnapshot)(snap)).toBe(true)
  })
})

// ---------------------------------------------------------------------------------------------------------
// property tests
// ---------------------------------------------------------------------------------------------------------

const headerNames = [
  "retry-after",
  "Retry-After",
  "retry-after-ms",
  "x-should-retry",
  "x-ratelimit-limit-requests",
  "x-ratelimit-remaining-requests",
  "x-ratelimit-reset-requests",
  "x-ratelimit-limit-tokens",
  "x-ratelimit-remaining-tokens",
  "x-ratelimit-reset-tokens",
  "anthropic-ratelimit-requests-reset",
  "anthropic-ratelimit-tokens-remaining",
  "anthropic-ratelimit-input-tokens-reset",
  "anthropic-ratelimit-output-tokens-limit",
  "ANTHROPIC-RATELIMIT-OUTPUT-TOKENS-RESET"
]

/** Strings near the formats (numbers, durations, dates) as well as arbitrary unicode. */
export const headerValue: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme" }),
  fc.double().map(String),
  fc.integer().map(String),
  fc.constantFrom("Infinity", "-Infinity", "NaN", "1e308", "-0", "1e-320", "9".repeat(400), "0x1f", " "),
  fc
    .array(
      fc.tuple(fc.double({ min: -1e6, max: 1e30, noNaN: true }), fc.constantFrom("h", "m", "s", "ms", "us", "ns")),
      {
        minLength: 1,
        maxLength: 4
      }
    )
    .map((parts) => parts.map(([n, u]) => `${n}${u}`).join("")),
  fc.date({ noInvalidDate: false }).map((d) => (Number.isNaN(d.getTime()) ? "Invalid" : d.toISOString())),
  fc.date({ noInvalidDate: true }).map((d) => d.toUTCString())
)

const headerMap: fc.Arbitrary<Record<string, string | Array<string>>> = fc.dictionary(
  fc.oneof(fc.constantFrom(...headerNames), fc.string()),
  fc.oneof(headerValue, fc.array(headerValue, { maxLength: 3 }))
)

const nowArb = fc.oneof(
  fc.integer({ min: 0, max: 4_102_444_800_000 }),
  fc.double(),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -1)
)

const okDuration = (d: number | undefined): boolean =>
  d === undefined || (Number.isFinite(d) && d >= 0 && d <= RateLimitSnapshot.maxDurationMs)

const okCount = (n: number | undefined): boolean => n === undefined || (Number.isFinite(n) && n >= 0)

describe("RateLimitSnapshot parsers (property)", () => {
  it("parseGoDuration never throws and yields only finite, non-negative, clamped durations", () => {
    fc.assert(
      fc.property(headerValue, (s) => okDuration(RateLimitSnapshot.parseGoDuration(s))),
      { numRuns: 2000 }
    )
  })

  it("parseRetryAfter never throws and yields only finite, non-negative, clamped durations", () => {
    fc.assert(
      fc.property(
        headerValue,
        headerValue,
        nowArb,
        (ra, ms, at) =>
          okDuration(RateLimitSnapshot.parseRetryAfter({ "retry-after": ra }, at)) &&
          okDuration(RateLimitSnapshot.parseRetryAfter({ "retry-after-ms": ms, "retry-after": ra }, at))
      ),
      { numRuns: 2000 }
    )
  })

  it("fromHeaders never throws, and every duration and count in the snapshot is finite and non-negative", () => {
    fc.assert(
      fc.property(headerMap, nowArb, (headers, at) => {
        const snap = RateLimitSnapshot.fromHeaders(headers, at)
        const windows = [snap.requests, snap.tokens, snap.inputTokens, snap.outputTokens]
        return (
          Schema.is(RateLimitSnapshot.RateLimitSnapshot)(snap) &&
          okDuration(snap.retryAfterMs) &&
          windows.every(
            (w) => w === undefined || (okDuration(w.resetAfterMs) && okCount(w.limit) && okCount(w.remaining))
          )
        )
      }),
      { numRuns: 2000 }
    )
  })
})

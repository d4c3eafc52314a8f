/**
 * The header parsers at their edges: each bound (value length, count size, 24 h clamp, field ranges, zone
 * offsets, the epoch-seconds threshold) and each form providers send, with the value just inside and just
 * outside.
 */
import { assert, describe, it } from "@effect/vitest"
import { RateLimitSnapshot } from "@llm-resilience/core"
import * as h from "../src/internal/headers.ts"

const DAY = 24 * 60 * 60 * 1000
const now = Date.UTC(2025, 5, 1, 12, 0, 0)

describe("headers.lookup", () => {
  it("reads lower-case records directly, own keys only, first string of an array, trimmed", () => {
    const get = h.lookup({ a: " 1 ", b: ["", "x"], c: [1 as unknown as string, "y"], d: "   ", e: undefined })
    assert.strictEqual(get("a"), "1")
    assert.isUndefined(get("b"))
    assert.strictEqual(get("c"), "y")
    assert.isUndefined(get("d"))
    assert.isUndefined(get("e"))
    assert.isUndefined(get("toString"))
    assert.isUndefined(h.lookup(Object.create({ a: "1" }))("a"))
  })

  it("folds mixed-case keys once; of two spellings of one name, the first wins", () => {
    const get = h.lookup({ "Retry-After": "5", "retry-after": "9", "X-Other": ["7"] })
    assert.strictEqual(get("retry-after"), "5")
    assert.strictEqual(get("x-other"), "7")
    assert.isUndefined(get("Retry-After"))
  })

  it("keeps values up to 256 characters", () => {
    assert.strictEqual(h.lookup({ a: "x".repeat(256) })("a")?.length, 256)
    assert.isUndefined(h.lookup({ a: "x".repeat(257) })("a"))
    assert.isUndefined(h.lookup({ A: "x".repeat(257) })("a"))
  })

  it("reads WHATWG Headers, and anything else gives an empty lookup", () => {
    const fetchHeaders = new Headers({ "Retry-After": " 3 " })
    assert.strictEqual(h.lookup(fetchHeaders)("retry-after"), "3")
    assert.isUndefined(h.lookup(fetchHeaders)("missing"))
    assert.isUndefined(h.lookup(null)("a"))
    assert.isUndefined(h.lookup("a: 1")("a"))
    const hostile = new Proxy(
      {},
      {
        ownKeys: () => {
          throw new Error("no")
        }
      }
    )
    assert.isUndefined(h.lookup(hostile)("a"))
  })
})

describe("headers: numbers and durations", () => {
  it("nonNegativeNumber accepts plain decimals only", () => {
    const ok: ReadonlyArray<readonly [string, number]> = [
      ["0", 0],
      ["+1", 1],
      ["1.", 1],
      [".5", 0.5],
      ["1e3", 1000],
      ["2.5E-1", 0.25]
    ]
    for (const [s, n] of ok) assert.strictEqual(h.nonNegativeNumber(s), n, s)
    for (const s of ["-1", "Infinity", "0x10", "1e400", "", ".", "1 2", "NaN", "e3"]) {
      assert.isUndefined(h.nonNegativeNumber(s), s)
    }
  })

  it("count drops values above the largest safe integer", () => {
    assert.strictEqual(h.count("9007199254740991"), Number.MAX_SAFE_INTEGER)
    assert.isUndefined(h.count("9007199254740993"))
    assert.isUndefined(h.count(undefined))
    assert.strictEqual(h.count("0"), 0)
  })

  it("clamps durations to a day and drops negative or non-finite ones", () => {
    assert.strictEqual(h.clampDuration(0), 0)
    assert.strictEqual(h.clampDuration(DAY), DAY)
    assert.strictEqual(h.clampDuration(DAY + 1), DAY)
    assert.isUndefined(h.clampDuration(-1))
    assert.isUndefined(h.clampDuration(Number.NaN))
    assert.isUndefined(h.clampDuration(Number.POSITIVE_INFINITY))
    assert.strictEqual(h.secondsToMs(1.5), 1_500)
    assert.strictEqual(h.secondsToMs(1e300), DAY)
    assert.strictEqual(h.secondsToMs(1e306), DAY)
    assert.strictEqual(h.untilInstant(now + 5_000, now), 5_000)
    assert.strictEqual(h.untilInstant(now - 5_000, now), 0)
    assert.strictEqual(h.untilInstant(now + 2 * DAY, now), DAY)
    assert.isUndefined(h.untilInstant(Number.NaN, now))
    assert.isUndefined(h.untilInstant(now, Number.NaN))
  })

  it("goDuration reads every unit Go prints", () => {
    const ok: ReadonlyArray<readonly [string, number]> = [
      ["6m0s", 360_000],
      ["1m30.5s", 90_500],
      ["12ms", 12],
      ["1h2m", 3_720_000],
      ["0", 0],
      ["+0", 0],
      ["+2s", 2_000],
      ["1.s", 1_000],
      [".5s", 500],
      ["1500us", 1.5],
      ["1500µs", 1.5],
      ["1500μs", 1.5],
      ["3000000ns", 3],
      [" 2s ", 2_000],
      ["25h", DAY],
      ["9".repeat(200) + "h", DAY],
      ["0".repeat(255) + "s", 0]
    ]
    for (const [s, n] of ok) assert.strictEqual(h.goDuration(s), n, s)
    for (const s of ["", "+", "1", "1x", "s", ".s", "-1s", "1u", "1n", "1µ", "0s-", "1s2", "x".repeat(257)]) {
      assert.isUndefined(h.goDuration(s), s)
    }
    assert.isUndefined(h.goDuration(5 as unknown as string))
    assert.strictEqual(RateLimitSnapshot.parseGoDuration("1m"), 60_000)
  })
})

describe("headers: dates", () => {
  it("RFC 3339 with Z, offsets with and without a colon, half-hour zones, fractions", () => {
    const base = Date.UTC(2024, 5, 1, 12, 0, 30)
    const ok: ReadonlyArray<readonly [string, number]> = [
      ["2024-06-01T12:00:30Z", base],
      ["2024-06-01t12:00:30z", base],
      ["2024-06-01 12:00:30Z", base],
      ["2024-06-01T12:00:30.5Z", base + 500],
      ["2024-06-01T12:00:30.123456789Z", base + 123],
      ["2024-06-01T14:00:30+02:00", base],
      ["2024-06-01T06:30:30-05:30", base],
      ["2024-06-01T17:30:30+0530", base],
      ["2024-06-01T12:00:60Z", base + 29_000],
      ["2024-06-02T11:00:30+23:00", base],
      ["2024-06-01T18:59:30+06:59", base],
      ["2024-12-31T23:59:59Z", Date.UTC(2024, 11, 31, 23, 59, 59)],
      ["2024-01-01T00:00:00Z", Date.UTC(2024, 0, 1)]
    ]
    for (const [s, t] of ok) assert.strictEqual(h.rfc3339Millis(s), t, s)
    assert.isDefined(h.rfc3339Millis("0001-01-01T00:00:00Z"))
    for (const s of [
      "0000-06-01T12:00:30Z",
      "2024-00-01T12:00:30Z",
      "2024-13-01T12:00:30Z",
      "2024-06-00T12:00:30Z",
      "2024-06-32T12:00:30Z",
      "2024-06-01T24:00:30Z",
      "2024-06-01T12:60:30Z",
      "2024-06-01T12:00:61Z",
      "2024-06-01T12:00:30+24:00",
      "2024-06-01T12:00:30+02:60",
      "2024-06-01T12:00:30",
      "not a date"
    ]) {
      assert.isUndefined(h.rfc3339Millis(s), s)
    }
  })

  it("HTTP dates in their three forms, two-digit years pivoting at 70", () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37)
    assert.strictEqual(h.httpDateMillis("Sun, 06 Nov 1994 08:49:37 GMT"), t)
    assert.strictEqual(h.httpDateMillis("Sun, 6 nov 1994 08:49:37 UTC"), t)
    assert.strictEqual(h.httpDateMillis("Sun, 06 Nov 1994 08:49:37 Z"), t)
    assert.strictEqual(h.httpDateMillis("Sunday, 06-Nov-94 08:49:37 GMT"), t)
    assert.strictEqual(h.httpDateMillis("Sunday, 06-Nov-1994 08:49:37 GMT"), t)
    assert.strictEqual(h.httpDateMillis("Thursday, 06-Nov-69 08:49:37 GMT"), Date.UTC(2069, 10, 6, 8, 49, 37))
    assert.strictEqual(h.httpDateMillis("Thursday, 06-Nov-70 08:49:37 GMT"), Date.UTC(1970, 10, 6, 8, 49, 37))
    assert.strictEqual(h.httpDateMillis("Sun Nov  6 08:49:37 1994"), t)
    assert.strictEqual(h.httpDateMillis("Sat, 31 Dec 1994 23:59:59 GMT"), Date.UTC(1994, 11, 31, 23, 59, 59))
    assert.strictEqual(h.httpDateMillis("Sat, 01 Jan 1994 00:00:00 GMT"), Date.UTC(1994, 0, 1))
    assert.strictEqual(h.httpDateMillis("Sun Nov 16 08:49:37 1994"), Date.UTC(1994, 10, 16, 8, 49, 37))
    assert.strictEqual(h.httpDateMillis("Sun, 06 Nov 1994 23:59:60 GMT"), Date.UTC(1994, 10, 6, 23, 59, 59))
    for (const s of [
      "Sun, 06 Nvm 1994 08:49:37 GMT",
      "Sun, 32 Nov 1994 08:49:37 GMT",
      "Sun, 00 Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 24:49:37 GMT",
      "Sun, 06 Nov 1994 08:60:37 GMT",
      "Sun, 06 Nov 1994 08:49:61 GMT",
      "Sun, 06 Nov 0000 08:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:37 CET",
      "Sunday, 06-Nov-94 08:49:37 UTC",
      "Sun Nov  6 08:49:37 94",
      "2024-06-01T12:00:30Z"
    ]) {
      assert.isUndefined(h.httpDateMillis(s), s)
    }
  })
})

describe("headers: reset, retry-after, should-retry, request id", () => {
  it("resetAfter reads seconds, epoch seconds from 1e9, Go durations and dates", () => {
    assert.strictEqual(h.resetAfter("20", now), 20_000)
    assert.strictEqual(h.resetAfter("1.5", now), 1_500)
    assert.strictEqual(h.resetAfter("999999999", now), DAY)
    assert.strictEqual(h.resetAfter(String(now / 1000 + 30), now), 30_000)
    assert.strictEqual(h.resetAfter("1000000000", now), 0)
    assert.strictEqual(h.resetAfter("6m0s", now), 360_000)
    assert.strictEqual(h.resetAfter(new Date(now + 42_000).toISOString(), now), 42_000)
    assert.strictEqual(h.resetAfter(new Date(now + 7_000).toUTCString(), now), 7_000)
    assert.strictEqual(h.resetAfter(new Date(now - 7_000).toUTCString(), now), 0)
    assert.isUndefined(h.resetAfter("soon", now))
    assert.isUndefined(h.resetAfter(undefined, now))
  })

  it("retry-after-ms wins over retry-after; an unreadable one falls back", () => {
    const ra = (headers: Record<string, string>) => h.retryAfter(h.lookup(headers), now)
    assert.strictEqual(ra({ "retry-after-ms": "1500.5", "retry-after": "9" }), 1_500.5)
    assert.strictEqual(ra({ "retry-after-ms": "later", "retry-after": "9" }), 9_000)
    assert.strictEqual(ra({ "retry-after-ms": String(2 * DAY) }), DAY)
    assert.strictEqual(ra({ "retry-after": "1.5" }), 1_500)
    assert.strictEqual(ra({ "retry-after": new Date(now + 3_000).toUTCString() }), 3_000)
    assert.strictEqual(ra({ "retry-after": new Date(now - 3_000).toUTCString() }), 0)
    assert.isUndefined(ra({ "retry-after": "2024-06-01T12:00:30Z" }))
    assert.isUndefined(ra({ "retry-after": "-1" }))
    assert.isUndefined(ra({}))
    assert.strictEqual(RateLimitSnapshot.parseRetryAfter({ "Retry-After": "2" }, now), 2_000)
  })

  it("x-should-retry is true or false in any case, else unknown", () => {
    const sr = (v: string) => h.shouldRetry(h.lookup({ "x-should-retry": v }))
    assert.isTrue(sr("TRUE"))
    assert.isFalse(sr("False"))
    assert.isUndefined(sr("yes"))
    assert.isUndefined(h.shouldRetry(h.lookup({})))
  })

  it("request ids up to 200 characters, x-request-id first", () => {
    const rid = (headers: Record<string, string>) => h.requestId(h.lookup(headers))
    assert.strictEqual(rid({ "x-request-id": "a", "request-id": "b" }), "a")
    assert.strictEqual(rid({ "request-id": "b" }), "b")
    assert.strictEqual(rid({ "request-id": "r".repeat(200) })?.length, 200)
    assert.isUndefined(rid({ "request-id": "r".repeat(201) }))
  })
})

describe("RateLimitSnapshot.fromHeaders", () => {
  it("reads each window of both providers, merging OpenAI's over Anthropic's field by field", () => {
    const snap = RateLimitSnapshot.fromHeaders(
      {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "99",
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-reset": "2025-06-01T12:00:10Z",
        "anthropic-ratelimit-tokens-remaining": "7",
        "anthropic-ratelimit-input-tokens-limit": "1000",
        "anthropic-ratelimit-output-tokens-reset": "2025-06-01T12:01:00Z",
        "x-should-retry": "false",
        "retry-after": "3"
      },
      now
    )
    assert.deepStrictEqual(snap, {
      retryAfterMs: 3_000,
      shouldRetry: false,
      requests: { limit: 100, remaining: 99, resetAfterMs: 10_000 },
      tokens: { remaining: 7 },
      inputTokens: { limit: 1000 },
      outputTokens: { resetAfterMs: 60_000 }
    })
    assert.isFalse(RateLimitSnapshot.isEmpty(snap))
  })

  it("leaves out what is absent or unreadable", () => {
    const snap = RateLimitSnapshot.fromHeaders(
      { "x-ratelimit-limit-tokens": "lots", "x-ratelimit-reset-tokens": "soon", "x-should-retry": "maybe" },
      now
    )
    assert.deepStrictEqual(snap, {})
    assert.isTrue(RateLimitSnapshot.isEmpty(snap))
    assert.deepStrictEqual(RateLimitSnapshot.fromHeaders({ "x-ratelimit-reset-tokens": "1s" }, now), {
      tokens: { resetAfterMs: 1_000 }
    })
  })
})

/**
 * Each branch of the classifier's decision, pinned at its edges: which status ranges and which body
 * identifiers decide, what a message may only refine, how `x-should-retry` overrides, which limit a 429 is
 * about, and the message of bodies that say nothing.
 */
import { assert, describe, it } from "@effect/vitest"
import { Classification, type RateLimitSnapshot } from "@llm-resilience/core"

const json = (error: Record<string, unknown>) => JSON.stringify({ error })

const classify = (status: number, body = "", headers: RateLimitSnapshot.HeaderInput = {}) =>
  Classification.classify({ status, headers, body, provider: "p", model: "m", nowMillis: 1_000_000 })

const tag = (status: number, body = "", headers: RateLimitSnapshot.HeaderInput = {}) =>
  classify(status, body, headers)._tag

describe("Classification: by status alone", () => {
  const rows: ReadonlyArray<readonly [number, string]> = [
    [0, "ConnectionError"],
    [99, "ConnectionError"],
    [100, "ConnectionError"],
    [199, "ConnectionError"],
    [200, "ServerError"],
    [299, "ServerError"],
    [300, "BadRequest"],
    [302, "BadRequest"],
    [399, "BadRequest"],
    [400, "BadRequest"],
    [401, "Authentication"],
    [402, "QuotaExhausted"],
    [403, "PermissionDenied"],
    [404, "ModelNotFound"],
    [408, "Timeout"],
    [409, "ServerError"],
    [410, "ModelNotFound"],
    [413, "BadRequest"],
    [418, "BadRequest"],
    [422, "BadRequest"],
    [429, "RateLimited"],
    [499, "BadRequest"],
    [500, "ServerError"],
    [502, "ServerError"],
    [503, "Overloaded"],
    [504, "ServerError"],
    [529, "Overloaded"],
    [999, "ServerError"],
    [1000, "ConnectionError"],
    [404.5, "ConnectionError"]
  ]
  for (const [status, expected] of rows) {
    it(`${status} with an empty body -> ${expected}`, () => {
      assert.strictEqual(tag(status), expected)
    })
  }
})

describe("Classification: by body identifiers", () => {
  it("a generic type decides an in-stream error (HTTP 200)", () => {
    const rows: ReadonlyArray<readonly [string, string]> = [
      ["service_unavailable_error", "Overloaded"],
      ["authentication_error", "Authentication"],
      ["permission_error", "PermissionDenied"],
      ["not_found_error", "ModelNotFound"],
      ["invalid_request_error", "BadRequest"],
      ["api_error", "ServerError"],
      ["overloaded_error", "Overloaded"],
      ["rate_limit_error", "RateLimited"],
      ["timeout_error", "Timeout"],
      ["insufficient_quota", "QuotaExhausted"],
      ["content_filter", "ContentFiltered"],
      ["context_length_exceeded", "ContextLengthExceeded"],
      ["something_else", "ServerError"]
    ]
    for (const [type, expected] of rows) assert.strictEqual(tag(200, json({ type, message: "x" })), expected, type)
  })

  it("a generic type does not override the status", () => {
    assert.strictEqual(tag(401, json({ type: "api_error" })), "Authentication")
    assert.strictEqual(tag(500, json({ type: "invalid_request_error" })), "ServerError")
    assert.strictEqual(tag(0, json({ type: "api_error" })), "ServerError")
    assert.strictEqual(tag(0, json({ type: "unheard_of" })), "ConnectionError")
  })

  it("specific identifiers override the status", () => {
    assert.strictEqual(tag(500, json({ type: "overloaded_error" })), "Overloaded")
    assert.strictEqual(tag(400, json({ code: "insufficient_quota" })), "QuotaExhausted")
    assert.strictEqual(tag(400, json({ code: "content_filter" })), "ContentFiltered")
    assert.strictEqual(tag(500, json({ code: "rate_limit_exceeded" })), "RateLimited")
    assert.strictEqual(tag(500, json({ type: "timeout_error" })), "Timeout")
  })
})

describe("Classification: messages refine, never decide alone", () => {
  const quota = "You exceeded your current quota, please check your plan"
  const context = "prompt is too long: 250000 tokens > 200000 maximum"

  it("quota wording counts on 400, 403 and 429, or with a rate or request identifier", () => {
    for (const status of [400, 403, 429]) assert.strictEqual(tag(status, json({ message: quota })), "QuotaExhausted")
    assert.strictEqual(tag(200, json({ type: "rate_limit_error", message: quota })), "QuotaExhausted")
    assert.strictEqual(tag(200, json({ type: "invalid_request_error", message: quota })), "QuotaExhausted")
    assert.strictEqual(tag(500, json({ message: quota })), "ServerError")
    assert.strictEqual(tag(404, json({ message: quota })), "ModelNotFound")
    assert.strictEqual(tag(200, json({ message: quota })), "ServerError")
  })

  it("context wording counts on 400, 413 and 422, or in a stream with a request identifier", () => {
    for (const status of [400, 413, 422]) {
      assert.strictEqual(tag(status, json({ message: context })), "ContextLengthExceeded", String(status))
    }
    assert.strictEqual(tag(200, json({ type: "invalid_request_error", message: context })), "ContextLengthExceeded")
    assert.strictEqual(tag(0, json({ type: "invalid_request_error", message: context })), "ContextLengthExceeded")
    assert.strictEqual(tag(404, json({ type: "invalid_request_error", message: context })), "ModelNotFound")
    assert.strictEqual(tag(401, json({ message: context })), "Authentication")
    assert.strictEqual(tag(200, json({ message: context })), "ServerError")
  })

  it("'Request too large' is a bad request only on a 429", () => {
    const msg = "Request too large for gpt-4o on tokens per min (TPM): Limit 30000, Requested 50000."
    assert.strictEqual(tag(429, json({ message: msg, code: "rate_limit_exceeded" })), "BadRequest")
    assert.strictEqual(tag(200, json({ message: msg, code: "rate_limit_exceeded" })), "RateLimited")
    assert.strictEqual(tag(429, json({ message: `The ${msg}` })), "RateLimited")
  })
})

describe("Classification: x-should-retry", () => {
  it("true makes a fatal answer retryable: RateLimited for rate-like ones, else ServerError", () => {
    assert.strictEqual(tag(400, "", { "x-should-retry": "true" }), "ServerError")
    assert.strictEqual(tag(429, json({ code: "insufficient_quota" }), { "x-should-retry": "true" }), "RateLimited")
    assert.strictEqual(
      tag(200, json({ type: "rate_limit_error", message: "exceeded your current quota" }), {
        "x-should-retry": "true"
      }),
      "RateLimited"
    )
    assert.strictEqual(tag(503, "", { "x-should-retry": "true" }), "Overloaded")
  })

  it("false makes a retryable answer final: QuotaExhausted for rate-like ones, else BadRequest", () => {
    assert.strictEqual(tag(503, "", { "x-should-retry": "false" }), "BadRequest")
    assert.strictEqual(tag(429, "", { "x-should-retry": "false" }), "QuotaExhausted")
    assert.strictEqual(tag(200, json({ type: "rate_limit_error" }), { "x-should-retry": "false" }), "QuotaExhausted")
    assert.strictEqual(tag(401, "", { "x-should-retry": "false" }), "Authentication")
    assert.strictEqual(tag(0, "", { "x-should-retry": "false" }), "BadRequest")
  })
})

describe("Classification: which limit a 429 is about", () => {
  const limit = (body: string, headers: RateLimitSnapshot.HeaderInput = {}) => {
    const e = classify(429, body, headers)
    assert.strictEqual(e._tag, "RateLimited")
    return (e as { limit?: string }).limit
  }

  it("from the body's identifiers", () => {
    assert.strictEqual(limit(json({ type: "tokens" })), "tokens")
    assert.strictEqual(limit(json({ type: "input_tokens" })), "tokens")
    assert.strictEqual(limit(json({ type: "tokens_usage_based" })), "tokens")
    assert.strictEqual(limit(json({ type: "requests" })), "requests")
    assert.strictEqual(limit(json({ type: "requests_per_min" })), "requests")
    assert.strictEqual(limit(json({ type: "mytokens" })), "unknown")
    assert.strictEqual(limit(json({ type: "tokensx" })), "unknown")
    assert.strictEqual(limit(json({ type: "xrequests" })), "unknown")
  })

  it("from the message when it names one kind only", () => {
    assert.strictEqual(limit(json({ message: "Rate limit reached on tokens per min" })), "tokens")
    assert.strictEqual(limit(json({ message: "Rate limit reached on requests per min" })), "requests")
    assert.strictEqual(limit(json({ message: "tokens per min and requests per min" })), "unknown")
  })

  it("from the exhausted windows of the headers; when both are, the one that resets later", () => {
    const req = { "x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "0" }
    const tok = { "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "0" }
    assert.strictEqual(limit("", req), "requests")
    assert.strictEqual(limit("", tok), "tokens")
    assert.strictEqual(limit("", { ...req, "x-ratelimit-remaining-requests": "1" }), "unknown")
    assert.strictEqual(
      limit("", { "anthropic-ratelimit-input-tokens-limit": "10", "anthropic-ratelimit-input-tokens-remaining": "0" }),
      "tokens"
    )
    assert.strictEqual(
      limit("", {
        "anthropic-ratelimit-output-tokens-limit": "10",
        "anthropic-ratelimit-output-tokens-remaining": "0"
      }),
      "tokens"
    )
    const both = (requestsReset: string, tokensReset: string) =>
      limit("", {
        ...req,
        ...tok,
        "x-ratelimit-reset-requests": requestsReset,
        "x-ratelimit-reset-tokens": tokensReset
      })
    assert.strictEqual(both("30s", "10s"), "requests")
    assert.strictEqual(both("10s", "30s"), "tokens")
    assert.strictEqual(both("10s", "10s"), "tokens")
    assert.strictEqual(limit("", { ...req, ...tok, "x-ratelimit-reset-requests": "5s" }), "requests")
    assert.strictEqual(limit("", { ...req, ...tok, "x-ratelimit-reset-tokens": "5s" }), "tokens")
  })

  it("when both are exhausted, only exhausted windows' resets count, the latest of them", () => {
    const both = {
      "x-ratelimit-limit-requests": "100",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "10s",
      "x-ratelimit-limit-tokens": "1000",
      "x-ratelimit-remaining-tokens": "0",
      "x-ratelimit-reset-tokens": "5s"
    }
    // an input-token window that still has room resets later: it does not count
    const roomy = {
      "anthropic-ratelimit-input-tokens-remaining": "50",
      "anthropic-ratelimit-input-tokens-reset": "2099-01-01T00:00:00Z"
    }
    assert.strictEqual(limit("", { ...both, ...roomy }), "requests")
    // an exhausted one that resets later does
    const spent = {
      "anthropic-ratelimit-output-tokens-remaining": "0",
      "anthropic-ratelimit-output-tokens-reset": "20s"
    }
    assert.strictEqual(limit("", { ...both, ...spent }), "tokens")
  })

  it("only rate limits carry a limit", () => {
    assert.isUndefined((classify(503, json({ type: "tokens" })) as { limit?: string }).limit)
  })
})

describe("Classification: what the error carries", () => {
  it("messages of bodies that say nothing name the status", () => {
    assert.strictEqual(classify(503).message, "HTTP 503 Service Unavailable (empty body)")
    assert.strictEqual(classify(0).message, "no HTTP response (empty body)")
    assert.strictEqual(classify(502, "<html><body>bad</body></html>").message, "HTTP 502 Bad Gateway (HTML error page)")
    assert.strictEqual(
      classify(502, "<html><title>502 Bad Gateway</title></html>").message,
      "HTTP 502 Bad Gateway (HTML error page: 502 Bad Gateway)"
    )
    assert.strictEqual(classify(500, json({ type: "api_error" })).message, "HTTP 500 Internal Server Error (api_error)")
    assert.strictEqual(classify(500, json({ type: "a", code: "b" })).message, "HTTP 500 Internal Server Error (a, b)")
    assert.strictEqual(classify(500, json({ message: "" })).message, "HTTP 500 Internal Server Error")
    assert.strictEqual(classify(500, json({ message: "boom" })).message, "boom")
    assert.strictEqual(classify(500, "plain text").message, "plain text")
  })

  it("the request id from the headers wins over the body's", () => {
    const body = JSON.stringify({ type: "error", error: { type: "api_error" }, request_id: "req_body" })
    assert.strictEqual(classify(500, body, { "request-id": "req_header" }).requestId, "req_header")
    assert.strictEqual(classify(500, body).requestId, "req_body")
    assert.isUndefined(classify(500).requestId)
  })

  it("a quota's return time only with a Retry-After, and only for quotas", () => {
    const quota = classify(429, json({ code: "insufficient_quota" }), { "retry-after": "60" })
    assert.strictEqual((quota as { resetAt?: number }).resetAt, 1_060_000)
    assert.isUndefined((classify(429, json({ code: "insufficient_quota" })) as { resetAt?: number }).resetAt)
    const rate = classify(429, "", { "retry-after": "60" })
    assert.isUndefined((rate as { resetAt?: number }).resetAt)
    assert.strictEqual((rate as { retryAfterMs?: number }).retryAfterMs, 60_000)
  })

  it("a snapshot only when the headers had one; status only when it is an HTTP status", () => {
    const snapshot = (e: unknown) => (e as { rateLimit?: RateLimitSnapshot.RateLimitSnapshot }).rateLimit
    assert.isUndefined(snapshot(classify(500)))
    assert.isDefined(snapshot(classify(500, "", { "x-ratelimit-remaining-requests": "3" })))
    assert.strictEqual(classify(500).status, 500)
    assert.isUndefined(classify(0).status)
    assert.strictEqual(classify(500).provider, "p")
    assert.strictEqual(classify(500).model, "m")
  })

  it("a 1xx is a status, not a missing response", () => {
    assert.strictEqual(classify(100).status, 100)
    assert.strictEqual(classify(100).message, "HTTP 100 (empty body)")
  })

  it("an input that throws when read gives a ServerError, not an exception", () => {
    const hostile = {
      get status(): number {
        throw new Error("no")
      }
    } as unknown as Classification.HttpFailure
    const e = Classification.classify(hostile)
    assert.strictEqual(e._tag, "ServerError")
    assert.strictEqual(e.message, "unclassifiable provider failure")
  })

  it("inputs that break the declared types still classify", () => {
    const e = Classification.classify({
      status: "503" as unknown as number,
      headers: {},
      body: "",
      provider: 7 as unknown as string,
      model: null as unknown as string,
      nowMillis: "now" as unknown as number
    })
    assert.strictEqual(e._tag, "ConnectionError")
    assert.isUndefined(e.provider)
    assert.isUndefined(e.model)
    assert.isUndefined(e.status)
  })
})

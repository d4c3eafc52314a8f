import { describe, expect, it } from "@effect/vitest"
import { Classification, LlmError, RateLimitSnapshot } from "@llm-resilience/core"
import { Schema } from "effect"
import * as fc from "fast-check"

const now = Date.parse("2025-06-01T12:00:00.000Z")

const openai = (type: string | null, code: string | null, message = "m"): string =>
  JSON.stringify({ error: { message, type, param: null, code } })

const anthropic = (type: string, message = "m"): string =>
  JSON.stringify({ type: "error", error: { type, message }, request_id: "req_body_1" })

interface Row {
  readonly name: string
  readonly status: number
  readonly body: string
  readonly headers?: RateLimitSnapshot.HeaderInput
  readonly tag: LlmError.ProviderError["_tag"]
  /** Fields the classified error must carry (subset match). */
  readonly fields?: Record<string, unknown>
}

const run = (row: Row, provider: string) =>
  Classification.classify({
    status: row.status,
    headers: row.headers ?? {},
    body: row.body,
    provider,
    model: "m-1",
    nowMillis: now
  })

const check = (provider: string) => (row: Row) => {
  const e = run(row, provider)
  expect(e._tag).toBe(row.tag)
  expect(e.provider).toBe(provider)
  expect(e.model).toBe("m-1")
  if (row.fields !== undefined) expect(e).toMatchObject(row.fields)
  expect(Schema.is(LlmError.ProviderError)(e)).toBe(true)
}

// ---------------------------------------------------------------------------------------------------------
// OpenAI (and OpenAI-compatible)
// ---------------------------------------------------------------------------------------------------------

const openaiRows: ReadonlyArray<Row> = [
  {
    name: "400 context_length_exceeded",
    status: 400,
    body: JSON.stringify({
      error: {
        message: "This model's maximum context length is 128000 tokens.",
        type: "invalid_request_error",
        param: "messages",
        code: "context_length_exceeded"
      }
    }),
    tag: "ContextLengthExceeded",
    fields: { status: 400, message: "This model's maximum context length is 128000 tokens." }
  },
  { name: "400 invalid_request_error", status: 400, body: openai("invalid_request_error", null), tag: "BadRequest" },
  {
    name: "400 content_policy_violation",
    status: 400,
    body: openai("invalid_request_error", "content_policy_violation"),
    tag: "ContentFiltered"
  },
  { name: "400 content_filter (Azure)", status: 400, body: openai(null, "content_filter"), tag: "ContentFiltered" },
  {
    name: "400 invalid_prompt (flagged prompt)",
    status: 400,
    body: openai("invalid_request_error", "invalid_prompt"),
    tag: "ContentFiltered"
  },
  {
    name: "401 invalid_api_key",
    status: 401,
    body: openai("invalid_request_error", "invalid_api_key"),
    tag: "Authentication"
  },
  {
    name: "403 unsupported_country_region_territory",
    status: 403,
    body: openai("request_forbidden", "unsupported_country_region_territory"),
    tag: "PermissionDenied"
  },
  {
    name: "404 model_not_found",
    status: 404,
    body: openai("invalid_request_error", "model_not_found"),
    tag: "ModelNotFound"
  },
  { name: "408 request timeout", status: 408, body: "", tag: "Timeout", fields: { phase: "total", status: 408 } },
  {
    name: "409 conflict (the SDKs retry it)",
    status: 409,
    body: openai("invalid_request_error", null),
    tag: "ServerError"
  },
  {
    name: "429 rate_limit_exceeded on requests (RPM), Retry-After honoured",
    status: 429,
    headers: { "retry-after": "20", "x-request-id": "req_abc" },
    body: openai(
      "requests",
      "rate_limit_exceeded",
      "Rate limit reached for gpt-5.4 in organization org-x on requests per min (RPM): Limit 3, Used 3, Requested 1."
    ),
    tag: "RateLimited",
    fields: { limit: "requests", retryAfterMs: 20_000, status: 429, requestId: "req_abc" }
  },
  {
    name: "429 rate_limit_exceeded on tokens (TPM), retry-after-ms wins",
    status: 429,
    headers: { "retry-after-ms": "1500.5", "retry-after": "2" },
    body: openai(
      "tokens",
      "rate_limit_exceeded",
      "Rate limit reached for gpt-5.4 on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000."
    ),
    tag: "RateLimited",
    fields: { limit: "tokens", retryAfterMs: 1500.5 }
  },
  {
    name: "429 slow_down",
    status: 429,
    body: openai("rate_limit_error", "slow_down"),
    tag: "RateLimited",
    fields: { limit: "unknown" }
  },
  {
    name: "503 slow_down (older endpoints)",
    status: 503,
    body: openai("rate_limit_error", "slow_down"),
    tag: "RateLimited"
  },
  ...[
    "credit_balance_exhausted",
    "organization_spend_limit_exceeded",
    "project_spend_limit_exceeded",
    "organization_usage_limit_exceeded"
  ].map((code): Row => ({
    name: `429 insufficient_quota / ${code}`,
    status: 429,
    headers: { "retry-after": "1" },
    body: openai(
      "insufficient_quota",
      code,
      "You exceeded your current quota, please check your plan and billing details."
    ),
    tag: "QuotaExhausted"
  })),
  {
    name: "429 insufficient_quota with no code",
    status: 429,
    body: openai("insufficient_quota", null),
    tag: "QuotaExhausted"
  },
  { name: "500 server_error", status: 500, body: openai("server_error", null), tag: "ServerError" },
  { name: "502 bad gateway", status: 502, body: openai("server_error", null), tag: "ServerError" },
  {
    name: "503 service unavailable",
    status: 503,
    headers: { "retry-after": "5" },
    body: openai("service_unavailable_error", "server_is_overloaded"),
    tag: "Overloaded",
    fields: { retryAfterMs: 5000 }
  },
  {
    name: "in-stream error chunk in an HTTP 200 stream",
    status: 200,
    body: openai("server_error", null, "The server had an error while processing your request."),
    tag: "ServerError",
    fields: { status: 200 }
  },
  {
    name: "vLLM-style top-level error object, 400 with maximum context length",
    status: 400,
    body: JSON.stringify({
      object: "error",
      message: "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens.",
      type: "BadRequestError",
      param: null,
      code: 400
    }),
    tag: "ContextLengthExceeded"
  },
  {
    name: "402 payment required (OpenRouter-style credits)",
    status: 402,
    body: JSON.stringify({ error: { message: "Insufficient credits", code: 402 } }),
    tag: "QuotaExhausted"
  }
]

// ---------------------------------------------------------------------------------------------------------
// Anthropic
// ---------------------------------------------------------------------------------------------------------

const anthropicRows: ReadonlyArray<Row> = [
  {
    name: "400 invalid_request_error",
    status: 400,
    body: anthropic("invalid_request_error", 'messages: roles must alternate between "user" and "assistant"'),
    tag: "BadRequest",
    fields: { requestId: "req_body_1" }
  },
  {
    name: "400 prompt is too long",
    status: 400,
    body: anthropic("invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum"),
    tag: "ContextLengthExceeded"
  },
  {
    name: "400 input length and max_tokens exceed context limit",
    status: 400,
    body: anthropic(
      "invalid_request_error",
      "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000"
    ),
    tag: "ContextLengthExceeded"
  },
  {
    name: "400 credit balance too low",
    status: 400,
    body: anthropic("invalid_request_error", "Your credit balance is too low to access the Anthropic API."),
    tag: "QuotaExhausted"
  },
  {
    name: "400 blocked by content filtering policy",
    status: 400,
    body: anthropic("invalid_request_error", "Output blocked by content filtering policy"),
    tag: "ContentFiltered"
  },
  { name: "401 authentication_error", status: 401, body: anthropic("authentication_error"), tag: "Authentication" },
  { name: "402 billing_error", status: 402, body: anthropic("billing_error"), tag: "QuotaExhausted" },
  { name: "403 permission_error", status: 403, body: anthropic("permission_error"), tag: "PermissionDenied" },
  {
    name: "404 not_found_error",
    status: 404,
    body: anthropic("not_found_error", "model: claude-x"),
    tag: "ModelNotFound"
  },
  { name: "413 request_too_large", status: 413, body: anthropic("request_too_large"), tag: "BadRequest" },
  {
    name: "429 rate_limit_error on input tokens",
    status: 429,
    headers: {
      "retry-after": "12",
      "request-id": "req_hdr",
      "anthropic-ratelimit-input-tokens-remaining": "0",
      "anthropic-ratelimit-input-tokens-reset": "2025-06-01T12:00:12Z",
      "anthropic-ratelimit-requests-remaining": "40"
    },
    body: anthropic(
      "rate_limit_error",
      "This request would exceed the rate limit for your organization of 50,000 input tokens per minute."
    ),
    tag: "RateLimited",
    fields: {
      limit: "tokens",
      retryAfterMs: 12_000,
      requestId: "req_hdr",
      rateLimit: {
        retryAfterMs: 12_000,
        requests: { remaining: 40 },
        inputTokens: { remaining: 0, resetAfterMs: 12_000 }
      }
    }
  },
  {
    name: "429 enforced_spend_limit_reached is permanent",
    status: 429,
    body: anthropic("rate_limit_error", "enforced_spend_limit_reached: your workspace spend limit was reached"),
    tag: "QuotaExhausted"
  },
  {
    name: "429 with an error type enforced_spend_limit_reached",
    status: 429,
    body: anthropic("enforced_spend_limit_reached"),
    tag: "QuotaExhausted"
  },
  { name: "500 api_error", status: 500, body: anthropic("api_error"), tag: "ServerError" },
  {
    name: "504 timeout_error",
    status: 504,
    body: anthropic("timeout_error"),
    tag: "Timeout",
    fields: { phase: "total" }
  },
  {
    name: "529 overloaded_error",
    status: 529,
    body: anthropic("overloaded_error", "Overloaded"),
    tag: "Overloaded",
    fields: { message: "Overloaded", status: 529 }
  },
  {
    name: "in-stream overloaded_error inside an HTTP 200 stream",
    status: 200,
    body: '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
    tag: "Overloaded",
    fields: { status: 200 }
  },
  {
    name: "in-stream event passed as raw SSE",
    status: 200,
    body: 'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"Internal server error"}}\n\n',
    tag: "ServerError"
  },
  { name: "in-stream rate_limit_error", status: 200, body: anthropic("rate_limit_error"), tag: "RateLimited" },
  { name: "in-stream invalid_request_error", status: 200, body: anthropic("invalid_request_error"), tag: "BadRequest" },
  { name: "in-stream timeout_error", status: 200, body: anthropic("timeout_error"), tag: "Timeout" },
  { name: "in-stream billing_error", status: 200, body: anthropic("billing_error"), tag: "QuotaExhausted" }
]

describe("Classification.classify: OpenAI bodies", () => {
  it.each(openaiRows.map((r) => [r.name, r] as const))("%s", (_n, row) => check("openai")(row))
})

describe("Classification.classify: Anthropic bodies", () => {
  it.each(anthropicRows.map((r) => [r.name, r] as const))("%s", (_n, row) => check("anthropic")(row))
})

// ---------------------------------------------------------------------------------------------------------
// the two kinds of 429
// ---------------------------------------------------------------------------------------------------------

describe("Classification.classify: 429 rate limit vs quota", () => {
  it("a transient 429 is retryable, a quota 429 is not", () => {
    const transient = run(
      { name: "", status: 429, body: openai("requests", "rate_limit_exceeded"), tag: "RateLimited" },
      "openai"
    )
    const quota = run(
      { name: "", status: 429, body: openai("insufficient_quota", "credit_balance_exhausted"), tag: "QuotaExhausted" },
      "openai"
    )
    expect(LlmError.isRetryable(transient)).toBe(true)
    expect(LlmError.isRetryable(quota)).toBe(false)
  })

  it("QuotaExhausted carries resetAt when the headers say when the quota returns", () => {
    const e = Classification.classify({
      status: 429,
      headers: { "retry-after": "3600" },
      body: openai("insufficient_quota", "organization_spend_limit_exceeded"),
      nowMillis: now
    })
    expect(e).toMatchObject({ _tag: "QuotaExhausted", resetAt: now + 3_600_000 })
    const without = Classification.classify({
      status: 429,
      headers: {},
      body: openai("insufficient_quota", null),
      nowMillis: now
    })
    expect(without).not.toHaveProperty("resetAt")
  })

  it("tells requests from tokens by the headers when the body does not say", () => {
    const byHeaders = (h: Record<string, string>) =>
      Classification.classify({ status: 429, headers: h, body: "", nowMillis: now })
    expect(
      byHeaders({
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-remaining-tokens": "500",
        "x-ratelimit-reset-requests": "7s"
      })
    ).toMatchObject({ _tag: "RateLimited", limit: "requests" })
    expect(byHeaders({ "x-ratelimit-remaining-requests": "3", "x-ratelimit-remaining-tokens": "0" })).toMatchObject({
      limit: "tokens"
    })
    expect(byHeaders({ "anthropic-ratelimit-output-tokens-remaining": "0" })).toMatchObject({ limit: "tokens" })
    // both exhausted: the one that resets later binds
    expect(
      byHeaders({
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "20s"
      })
    ).toMatchObject({ limit: "tokens" })
    expect(byHeaders({})).toMatchObject({ limit: "unknown" })
    expect(byHeaders({})).not.toHaveProperty("retryAfterMs")
  })

  it("a reset header (time to FULL replenishment) is not turned into a retry wait", () => {
    const e = Classification.classify({
      status: 429,
      headers: { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "59s" },
      body: openai("requests", "rate_limit_exceeded"),
      nowMillis: now
    })
    expect(e).not.toHaveProperty("retryAfterMs")
    expect(e).toMatchObject({ rateLimit: { requests: { remaining: 0, resetAfterMs: 59_000 } } })
  })

  it("OpenAI's 429 'Request too large' (one request above the whole TPM budget) is a BadRequest", () => {
    const e = Classification.classify({
      status: 429,
      headers: {},
      body: openai(
        "tokens",
        "rate_limit_exceeded",
        "Request too large for gpt-5.4 in organization org-x on tokens per min (TPM): Limit 30000, Requested 45000."
      ),
      nowMillis: now
    })
    expect(e._tag).toBe("BadRequest")
    expect(LlmError.isRetryable(e)).toBe(false)
  })

  it("an explicit Retry-After wins over a reset header", () => {
    const e = Classification.classify({
      status: 429,
      headers: { "retry-after": "2", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s" },
      body: openai("requests", "rate_limit_exceeded"),
      nowMillis: now
    })
    expect(e).toMatchObject({ limit: "requests", retryAfterMs: 2000 })
  })
})

// ---------------------------------------------------------------------------------------------------------
// x-should-retry
// ---------------------------------------------------------------------------------------------------------

describe("Classification.classify: x-should-retry", () => {
  const rows: ReadonlyArray<readonly [string, number, string, string, LlmError.ProviderError["_tag"]]> = [
    ["true makes a 400 retryable (ServerError)", 400, "true", openai("invalid_request_error", null), "ServerError"],
    ["true makes a 404 retryable (ServerError)", 404, "true", anthropic("not_found_error"), "ServerError"],
    [
      "true makes a quota 429 a RateLimited",
      429,
      "true",
      openai("insufficient_quota", "credit_balance_exhausted"),
      "RateLimited"
    ],
    ["false makes a 500 fatal (BadRequest)", 500, "false", anthropic("api_error"), "BadRequest"],
    ["false makes a 529 fatal (BadRequest)", 529, "false", anthropic("overloaded_error"), "BadRequest"],
    ["false makes a 408 fatal (BadRequest)", 408, "false", "", "BadRequest"],
    [
      "false makes a rate-limit 429 fatal (QuotaExhausted)",
      429,
      "false",
      openai("requests", "rate_limit_exceeded"),
      "QuotaExhausted"
    ],
    ["True (any case) is read", 401, "True", anthropic("authentication_error"), "ServerError"],
    ["true on an already retryable error changes nothing", 503, "true", "", "Overloaded"],
    ["false on an already fatal error changes nothing", 401, "false", "", "Authentication"],
    ["an unreadable value is ignored", 500, "maybe", "", "ServerError"]
  ]
  it.each(rows)("%s", (_n, status, value, body, tag) => {
    const e = Classification.classify({ status, headers: { "X-Should-Retry": value }, body, nowMillis: now })
    expect(e._tag).toBe(tag)
    expect(e.status).toBe(status)
  })

  it("the override keeps the Retry-After on a RateLimited", () => {
    const e = Classification.classify({
      status: 429,
      headers: { "x-should-retry": "true", "retry-after": "4" },
      body: openai("insufficient_quota", null),
      nowMillis: now
    })
    expect(e).toMatchObject({ _tag: "RateLimited", retryAfterMs: 4000 })
    expect(LlmError.isRetryable(e)).toBe(true)
  })
})

// ---------------------------------------------------------------------------------------------------------
// HTML, empty, text and unknown bodies
// ---------------------------------------------------------------------------------------------------------

const nginx502 = `<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`
const cloudflare = `<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title><script>${"x".repeat(20_000)}</script></head><body></body></html>`

describe("Classification.classify: HTML, empty and unknown bodies", () => {
  const rows: ReadonlyArray<Row> = [
    {
      name: "502 nginx HTML page",
      status: 502,
      body: nginx502,
      tag: "ServerError",
      fields: { message: "HTTP 502 Bad Gateway (HTML error page: 502 Bad Gateway)" }
    },
    {
      name: "503 HTML page",
      status: 503,
      body: "<!doctype html><html><body><h1>Service Unavailable</h1></body></html>",
      tag: "Overloaded",
      fields: { message: "HTTP 503 Service Unavailable (HTML error page: Service Unavailable)" }
    },
    {
      name: "429 HTML page",
      status: 429,
      headers: { "retry-after": "3" },
      body: "<html><body>Too many</body></html>",
      tag: "RateLimited",
      fields: { retryAfterMs: 3000, message: "HTTP 429 Too Many Requests (HTML error page)" }
    },
    {
      name: "403 Cloudflare challenge page",
      status: 403,
      body: cloudflare,
      tag: "PermissionDenied",
      fields: { message: "HTTP 403 Forbidden (HTML error page: Just a moment...)" }
    },
    {
      name: "504 HTML gateway timeout",
      status: 504,
      body: "<html><head><title>504 Gateway Time-out</title></head></html>",
      tag: "ServerError"
    },
    {
      name: "500 empty body",
      status: 500,
      body: "",
      tag: "ServerError",
      fields: { message: "HTTP 500 Internal Server Error (empty body)" }
    },
    { name: "529 empty body", status: 529, body: "   \n", tag: "Overloaded" },
    { name: "429 empty body", status: 429, body: "", tag: "RateLimited", fields: { limit: "unknown" } },
    { name: "401 empty body", status: 401, body: "", tag: "Authentication" },
    { name: "200 empty body (stream error with nothing in it)", status: 200, body: "", tag: "ServerError" },
    { name: "400 unknown JSON shape", status: 400, body: '{"foo":{"bar":1}}', tag: "BadRequest" },
    { name: "500 unknown JSON shape", status: 500, body: '{"oops":true}', tag: "ServerError" },
    {
      name: "422 FastAPI detail array",
      status: 422,
      body: '{"detail":[{"loc":["body","model"],"msg":"field required"}]}',
      tag: "BadRequest"
    },
    {
      name: "400 JSON array body (Gemini-compatible)",
      status: 400,
      body: '[{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}]',
      tag: "BadRequest",
      fields: { message: "bad" }
    },
    {
      name: "429 Gemini-compatible RESOURCE_EXHAUSTED",
      status: 429,
      body: '{"error":{"code":429,"message":"Resource exhausted","status":"RESOURCE_EXHAUSTED"}}',
      tag: "RateLimited"
    },
    { name: "invalid JSON with a 502", status: 502, body: '{"error": {"message": "trunc', tag: "ServerError" },
    {
      name: "plain text 502",
      status: 502,
      body: "upstream connect error or disconnect/reset before headers",
      tag: "ServerError",
      fields: { message: "upstream connect error or disconnect/reset before headers" }
    },
    { name: "unknown 4xx (418)", status: 418, body: "I'm a teapot", tag: "BadRequest" },
    { name: "unknown 4xx (451)", status: 451, body: "", tag: "BadRequest" },
    { name: "410 gone (retired model)", status: 410, body: "", tag: "ModelNotFound" },
    { name: "unknown 5xx (520)", status: 520, body: "", tag: "ServerError" },
    { name: "302 redirect not followed", status: 302, body: "", tag: "BadRequest" },
    {
      name: "status 0: no response",
      status: 0,
      body: "",
      tag: "ConnectionError",
      fields: { message: "no HTTP response (empty body)" }
    },
    {
      name: "status NaN",
      status: Number.NaN,
      body: "socket hang up",
      tag: "ConnectionError",
      fields: { message: "socket hang up" }
    },
    {
      name: "status 0 with a recognisable error body",
      status: 0,
      body: anthropic("overloaded_error"),
      tag: "Overloaded"
    }
  ]
  it.each(rows.map((r) => [r.name, r] as const))("%s", (_n, row) => check("proxy")(row))

  it("status 0 and NaN are not recorded as a status", () => {
    expect(Classification.classify({ status: 0, headers: {}, body: "", nowMillis: now })).not.toHaveProperty("status")
  })

  it("caps messages at 500 characters and strips control characters", () => {
    const long = Classification.classify({
      status: 400,
      headers: {},
      body: openai("invalid_request_error", null, "y".repeat(10_000)),
      nowMillis: now
    })
    expect(long.message.length).toBeLessThanOrEqual(500)
    expect(long.message.endsWith("…")).toBe(true)
    const text = Classification.classify({
      status: 500,
      headers: {},
      body: `a\u0000b\n\n\tc ${"z".repeat(2000)}`,
      nowMillis: now
    })
    expect(text.message.length).toBeLessThanOrEqual(500)
    expect(text.message.startsWith("a b c z")).toBe(true)
    const html = Classification.classify({ status: 403, headers: {}, body: cloudflare, nowMillis: now })
    expect(html.message).not.toContain("<")
  })
})

// ---------------------------------------------------------------------------------------------------------
// carried fields
// ---------------------------------------------------------------------------------------------------------

describe("Classification: carried fields", () => {
  it("carries provider, model, status, request id, retryAfterMs and the rate-limit snapshot", () => {
    const e = Classification.classify({
      status: 529,
      headers: { "Request-Id": "req_1", "retry-after": "7", "anthropic-ratelimit-requests-remaining": "10" },
      body: anthropic("overloaded_error"),
      provider: "anthropic",
      model: "claude-sonnet-4-6",
      nowMillis: now
    })
    expect(e).toMatchObject({
      _tag: "Overloaded",
      provider: "anthropic",
      model: "claude-sonnet-4-6",
      status: 529,
      requestId: "req_1", // the header wins over the body's request_id
      retryAfterMs: 7000,
      rateLimit: { retryAfterMs: 7000, requests: { remaining: 10 } }
    })
  })

  it("leaves out what is not known", () => {
    const e = Classification.classify({ status: 500, headers: {}, body: "", nowMillis: now })
    for (const key of ["provider", "model", "requestId", "retryAfterMs", "rateLimit"]) {
      expect(Object.hasOwn(e, key), key).toBe(false)
    }
    expect(e.status).toBe(500)
  })

  it("round-trips through the ProviderError schema", () => {
    const e = Classification.classify({
      status: 429,
      headers: { "retry-after": "1", "x-ratelimit-remaining-tokens": "0" },
      body: openai("tokens", "rate_limit_exceeded"),
      provider: "openai",
      nowMillis: now
    })
    const encoded = Schema.encodeUnknownSync(LlmError.ProviderError)(e)
    const decoded = Schema.decodeUnknownSync(LlmError.ProviderError)(encoded)
    expect(decoded).toMatchObject({ _tag: "RateLimited", limit: "tokens", retryAfterMs: 1000 })
  })

  it("requestIdOf reads x-request-id (OpenAI) and request-id (Anthropic)", () => {
    expect(Classification.requestIdOf({ "x-request-id": "req_o" })).toBe("req_o")
    expect(Classification.requestIdOf({ "Request-Id": "req_a" })).toBe("req_a")
    expect(Classification.requestIdOf({ "request-id": ["req_b", "req_c"] })).toBe("req_b")
    expect(Classification.requestIdOf({})).toBeUndefined()
    expect(Classification.requestIdOf({ "x-request-id": "r".repeat(1000) })).toBeUndefined()
  })
})

// ---------------------------------------------------------------------------------------------------------
// property test
// ---------------------------------------------------------------------------------------------------------

const errorIds = [
  "rate_limit_exceeded",
  "rate_limit_error",
  "slow_down",
  "insufficient_quota",
  "credit_balance_exhausted",
  "billing_error",
  "enforced_spend_limit_reached",
  "context_length_exceeded",
  "content_filter",
  "invalid_request_error",
  "authentication_error",
  "permission_error",
  "not_found_error",
  "request_too_large",
  "api_error",
  "overloaded_error",
  "timeout_error",
  "tokens",
  "requests",
  "error"
]

const idArb = fc.oneof(fc.constantFrom(...errorIds), fc.string(), fc.constant(null), fc.integer())

const bodyArb: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme", maxLength: 2000 }),
  fc.json(),
  fc
    .record({ type: idArb, code: idArb, message: fc.oneof(fc.string(), fc.anything()) })
    .map((e) => JSON.stringify({ error: e })),
  fc.record({ type: idArb, message: fc.string() }).map((e) => JSON.stringify({ type: "error", error: e })),
  fc.string().map((s) => `<html><head><title>${s}</title></head></html>`),
  fc.string().map((s) => `event: error\ndata: ${s}`),
  fc.anything().map((u) => {
    try {
      return JSON.stringify(u) ?? ""
    } catch {
      return ""
    }
  })
)

const headerValue = fc.oneof(
  fc.string(),
  fc.double().map(String),
  fc.constantFrom(
    "true",
    "false",
    "Infinity",
    "NaN",
    "1e308",
    "-1",
    "6m0s",
    "2025-06-01T12:00:00Z",
    "Sun, 01 Jun 2025 12:00:30 GMT"
  )
)
const headerArb = fc.dictionary(
  fc.oneof(
    fc.constantFrom(
      "retry-after",
      "retry-after-ms",
      "x-should-retry",
      "x-request-id",
      "request-id",
      "x-ratelimit-remaining-requests",
      "x-ratelimit-reset-tokens",
      "anthropic-ratelimit-input-tokens-remaining",
      "anthropic-ratelimit-tokens-reset"
    ),
    fc.string()
  ),
  fc.oneof(headerValue, fc.array(headerValue, { maxLength: 2 }))
)

const statusArb = fc.oneof(
  fc.constantFrom(0, 200, 400, 401, 402, 403, 404, 408, 409, 413, 422, 429, 500, 502, 503, 504, 529),
  fc.integer(),
  fc.double()
)

const okDuration = (d: number | undefined): boolean =>
  d === undefined || (Number.isFinite(d) && d >= 0 && d <= RateLimitSnapshot.maxDurationMs)

describe("Classification.classify (property)", () => {
  it("never throws and always yields a valid ProviderError with finite, non-negative durations", () => {
    const isProviderError = Schema.is(LlmError.ProviderError)
    fc.assert(
      fc.property(
        statusArb,
        headerArb,
        bodyArb,
        fc.oneof(fc.integer({ min: 0, max: 4e12 }), fc.double()),
        (status, headers, body, at) => {
          const e = Classification.classify({ status, headers, body, nowMillis: at })
          const rl = "rateLimit" in e ? e.rateLimit : undefined
          return (
            isProviderError(e) &&
            e.message.length > 0 &&
            e.message.length <= 500 &&
            okDuration("retryAfterMs" in e ? e.retryAfterMs : undefined) &&
            okDuration(rl?.retryAfterMs) &&
            [rl?.requests, rl?.tokens, rl?.inputTokens, rl?.outputTokens].every((w) => okDuration(w?.resetAfterMs)) &&
            (e._tag !== "QuotaExhausted" || e.resetAt === undefined || Number.isFinite(e.resetAt)) &&
            (e._tag !== "Timeout" || (Number.isFinite(e.afterMs) && e.afterMs >= 0))
          )
        }
      ),
      { numRuns: 3000 }
    )
  })

  it("is total even on inputs that break the declared types", () => {
    for (const bad of [null, undefined, 5, "x", {}, { status: "429", headers: null, body: 42, nowMillis: "now" }]) {
      const e = Classification.classify(bad as never)
      expect(Schema.is(LlmError.ProviderError)(e)).toBe(true)
    }
  })

  it("requestIdOf never throws", () => {
    fc.assert(
      fc.property(headerArb, (h) => {
        const id = Classification.requestIdOf(h)
        return id === undefined || (typeof id === "string" && id.length > 0 && id.length <= 200)
      })
    )
  })
})

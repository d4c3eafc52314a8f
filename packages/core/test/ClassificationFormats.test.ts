/**
 * Classification of the error bodies and hints of Azure OpenAI, Google Gemini and the OpenAI Responses API,
 * replayed from their documented (and captured) shapes, plus fuzzing of the Gemini `details` hints.
 */
import { describe, expect, it } from "@effect/vitest"
import { Classification, LlmError, RateLimitSnapshot } from "@llm-resilience/core"
import { Schema } from "effect"
import * as fc from "fast-check"

const now = Date.parse("2026-06-01T12:00:00.000Z")

const classify = (status: number, body: unknown, headers: RateLimitSnapshot.HeaderInput = {}) =>
  Classification.classify({
    status,
    headers,
    body: typeof body === "string" ? body : JSON.stringify(body),
    provider: "p",
    model: "m",
    nowMillis: now
  })

const google = (code: number, status: string, message: string, details?: ReadonlyArray<unknown>) => ({
  error: { code, message, status, ...(details === undefined ? {} : { details }) }
})

const retryInfo = (retryDelay: unknown) => ({ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay })
const quotaFailure = (...quotaIds: ReadonlyArray<string>) => ({
  "@type": "type.googleapis.com/google.rpc.QuotaFailure",
  violations: quotaIds.map((quotaId) => ({ quotaId }))
})

describe("Gemini error bodies", () => {
  it("429 RESOURCE_EXHAUSTED per minute: RateLimited, RetryInfo's delay as retryAfterMs and in the snapshot", () => {
    // "You exceeded your current quota" is on every Gemini 429: it must not make a per-minute limit a quota
    const e = classify(
      429,
      google(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan.", [
        quotaFailure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
        retryInfo("34.4s")
      ])
    )
    expect(e._tag).toBe("RateLimited")
    expect(e).toMatchObject({
      retryAfterMs: 34_400,
      limit: "requests",
      status: 429,
      rateLimit: { retryAfterMs: 34_400 }
    })
  })

  it("an input-token quota is a tokens limit", () => {
    const e = classify(
      429,
      google(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", [
        quotaFailure("GenerateContentInputTokensPerModelPerMinute-FreeTier")
      ])
    )
    expect(e).toMatchObject({ _tag: "RateLimited", limit: "tokens" })
  })

  it("429 per day, or with limit: 0, is QuotaExhausted (waiting a minute never helps), resetAt from RetryInfo", () => {
    const daily = classify(
      429,
      google(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota.", [
        quotaFailure(
          "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
          "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        ),
        retryInfo("3600s")
      ])
    )
    expect(daily).toMatchObject({ _tag: "QuotaExhausted", resetAt: now + 3_600_000 })
    const zero = classify(
      429,
      google(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, model: gemini-3-pro",
        [retryInfo("20s")]
      )
    )
    expect(zero._tag).toBe("QuotaExhausted")
  })

  it("the message's 'Please retry in Xs' stands in for a missing RetryInfo; a header wins over both", () => {
    const body = google(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted. Please retry in 45.57s.")
    expect(classify(429, body)).toMatchObject({ _tag: "RateLimited", retryAfterMs: 45_570 })
    expect(classify(429, body, { "retry-after": "3" })).toMatchObject({ retryAfterMs: 3000 })
  })

  it("maps the other statuses into the taxonomy", () => {
    const rows: ReadonlyArray<readonly [number, unknown, LlmError.ProviderError["_tag"]]> = [
      [
        400,
        google(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
          { "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason: "API_KEY_INVALID", domain: "googleapis.com" }
        ]),
        "Authentication"
      ],
      [
        400,
        google(
          400,
          "INVALID_ARGUMENT",
          "The input token count (1196260) exceeds the maximum number of tokens allowed (1048576)."
        ),
        "ContextLengthExceeded"
      ],
      [400, google(400, "INVALID_ARGUMENT", "Invalid JSON payload received."), "BadRequest"],
      [400, google(400, "FAILED_PRECONDITION", "User location is not supported for the API use."), "BadRequest"],
      [403, google(403, "PERMISSION_DENIED", "The caller does not have permission"), "PermissionDenied"],
      [404, google(404, "NOT_FOUND", "models/x is not found for API version v1beta"), "ModelNotFound"],
      [500, google(500, "INTERNAL", "An internal error has occurred."), "ServerError"],
      [503, google(503, "UNAVAILABLE", "The model is overloaded. Please try again later."), "Overloaded"],
      [504, google(504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."), "Timeout"],
      // an error event inside an HTTP 200 stream
      [200, google(503, "UNAVAILABLE", "The model is overloaded."), "Overloaded"],
      [200, google(429, "RESOURCE_EXHAUSTED", "Quota exceeded."), "RateLimited"]
    ]
    for (const [status, body, tag] of rows) expect(classify(status, body)._tag, JSON.stringify(body)).toBe(tag)
  })
})

describe("Azure OpenAI error bodies and headers", () => {
  const azure = (code: string, message: string, inner?: object) => ({
    error: { code, message, ...(inner === undefined ? {} : inner) }
  })

  it("429 token rate limit: retry-after-ms, x-ms-retry-after-ms or the body's 'retry after N seconds'", () => {
    const body = azure(
      "429",
      "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 7 seconds."
    )
    expect(classify(429, body)).toMatchObject({ _tag: "RateLimited", limit: "tokens", retryAfterMs: 7000 })
    expect(classify(429, body, { "retry-after-ms": "1500", "retry-after": "2" })).toMatchObject({ retryAfterMs: 1500 })
    expect(classify(429, body, { "x-ms-retry-after-ms": "2500", "retry-after": "2" })).toMatchObject({
      retryAfterMs: 2500
    })
    // "retry after 86400 seconds" is kept (clamped at 24 h): the retry stage caps what it waits
    const day = azure("429", "Rate limit is exceeded. Please retry after 86400 seconds.")
    expect(classify(429, day)).toMatchObject({ retryAfterMs: RateLimitSnapshot.maxDurationMs })
  })

  it("the capacity 429 ('experiencing high demand') is Overloaded, not your rate limit", () => {
    const e = classify(
      429,
      azure(
        "429",
        "The system is currently experiencing high demand and cannot process your request. Please retry after 20 seconds."
      )
    )
    expect(e).toMatchObject({ _tag: "Overloaded", retryAfterMs: 20_000 })
  })

  it("a filtered prompt (400 content_filter, either inner error spelling) is ContentFiltered", () => {
    const results = { hate: { filtered: true, severity: "high" }, jailbreak: { filtered: false, detected: false } }
    for (const inner of [
      { innererror: { code: "ResponsibleAIPolicyViolation", content_filter_result: results } },
      { inner_error: { code: "ResponsibleAIPolicyViolation", content_filter_results: results } }
    ]) {
      const body = {
        error: {
          message: "The response was filtered",
          type: null,
          param: "prompt",
          code: "content_filter",
          status: 400,
          ...inner
        }
      }
      expect(classify(400, body)._tag).toBe("ContentFiltered")
    }
    expect(classify(400, azure("400", "filtered", { innererror: { code: "ResponsibleAIPolicyViolation" } }))._tag).toBe(
      "ContentFiltered"
    )
  })

  it("401, DeploymentNotFound, and apim-request-id as the request id", () => {
    const auth = classify(401, azure("401", "Access denied due to invalid subscription key or wrong API endpoint."), {
      "apim-request-id": "0f1e2d3c"
    })
    expect(auth).toMatchObject({ _tag: "Authentication", requestId: "0f1e2d3c" })
    expect(
      classify(404, azure("DeploymentNotFound", "The API deployment for this resource does not exist."))._tag
    ).toBe("ModelNotFound")
    expect(classify(200, azure("DeploymentNotFound", "gone"))._tag).toBe("ModelNotFound")
  })
})

describe("OpenAI Responses in-stream errors", () => {
  it("the documented flat error event and the observed nested one classify alike", () => {
    const flat = {
      type: "error",
      code: "rate_limit_exceeded",
      message: "Rate limit reached",
      param: null,
      sequence_number: 3
    }
    expect(classify(200, flat)._tag).toBe("RateLimited")
    const nested = {
      type: "error",
      sequence_number: 2,
      error: {
        type: "insufficient_quota",
        code: "insufficient_quota",
        message: "You exceeded your current quota",
        param: null
      }
    }
    expect(classify(200, nested)._tag).toBe("QuotaExhausted")
    expect(classify(200, { error: { code: "server_error", message: "An error occurred" } })._tag).toBe("ServerError")
    expect(classify(200, { error: { code: "invalid_prompt", message: "flagged" } })._tag).toBe("ContentFiltered")
  })
})

describe("hints (property)", () => {
  const okDuration = (d: number | undefined): boolean =>
    d === undefined || (Number.isFinite(d) && d >= 0 && d <= RateLimitSnapshot.maxDurationMs)

  const absurd = fc.oneof(
    fc.constantFrom("34.4s", "-5s", "NaNs", "Infinitys", "1e400s", "99999999999999999999s", "0s", "", "s", "1h", "5"),
    fc.string(),
    fc.double(),
    fc.constant(null),
    fc.object()
  )

  const detail = fc.oneof(
    fc.record({ "@type": fc.constant("type.googleapis.com/google.rpc.RetryInfo"), retryDelay: absurd }),
    fc.record({
      "@type": fc.constant("type.googleapis.com/google.rpc.QuotaFailure"),
      violations: fc.oneof(fc.array(fc.record({ quotaId: fc.oneof(fc.string(), absurd) })), absurd)
    }),
    fc.record({ "@type": fc.constant("type.googleapis.com/google.rpc.ErrorInfo"), reason: absurd }),
    fc.anything()
  )

  it("Gemini details and Azure texts with absurd values: always a valid error, durations finite and capped", () => {
    const isProviderError = Schema.is(LlmError.ProviderError)
    fc.assert(
      fc.property(
        fc.constantFrom(200, 400, 429, 500, 503),
        fc.oneof(fc.array(detail, { maxLength: 30 }), absurd),
        fc.oneof(
          fc.string(),
          fc.constantFrom(
            "Please retry after 1e308 seconds.",
            "retry in 0.000001s",
            "Please retry after -3 seconds",
            "limit: 0"
          )
        ),
        fc.record(
          {
            "retry-after": fc.string(),
            "retry-after-ms": fc.oneof(fc.string(), fc.constantFrom("-1", "NaN", "1e999", "250")),
            "x-ms-retry-after-ms": fc.oneof(fc.string(), fc.constantFrom("-1", "NaN", "1e999", "250"))
          },
          { requiredKeys: [] }
        ),
        (status, details, message, headers) => {
          const e = classify(
            status,
            { error: { code: status, status: "RESOURCE_EXHAUSTED", message, details } },
            headers
          )
          const rl = "rateLimit" in e ? e.rateLimit : undefined
          return (
            isProviderError(e) &&
            okDuration("retryAfterMs" in e ? e.retryAfterMs : undefined) &&
            okDuration(rl?.retryAfterMs) &&
            (e._tag !== "QuotaExhausted" || e.resetAt === undefined || Number.isFinite(e.resetAt))
          )
        }
      ),
      { numRuns: 2000 }
    )
  })

  it("a RetryInfo delay is read only when it is a non-negative duration", () => {
    const delay = (retryDelay: unknown) =>
      classify(429, google(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", [retryInfo(retryDelay)]))
    expect(delay("1.5s")).toMatchObject({ retryAfterMs: 1500 })
    for (const bad of ["-1s", "NaN", "later", 30, null, "Infinitys"]) {
      expect(
        "retryAfterMs" in delay(bad) ? (delay(bad) as LlmError.RateLimited).retryAfterMs : undefined
      ).toBeUndefined()
    }
    expect(delay("999999999s")).toMatchObject({ retryAfterMs: RateLimitSnapshot.maxDurationMs })
  })
})

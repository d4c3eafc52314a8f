import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import { LlmError } from "@llm-resilience/core"

const base = { message: "m", provider: "p", model: "x" }

describe("LlmError", () => {
  it("derives retryability from the kind", () => {
    const retryable = [
      new LlmError.RateLimited({ ...base, limit: "requests" }),
      new LlmError.Overloaded(base),
      new LlmError.ServerError(base),
      new LlmError.Timeout({ ...base, phase: "idle", afterMs: 10 }),
      new LlmError.ConnectionError(base),
      new LlmError.StreamTruncated({ ...base, receivedChunks: 2 })
    ]
    const fatal = [
      new LlmError.BadRequest(base),
      new LlmError.Authentication(base),
      new LlmError.PermissionDenied(base),
      new LlmError.ModelNotFound(base),
      new LlmError.ContextLengthExceeded(base),
      new LlmError.ContentFiltered(base),
      new LlmError.QuotaExhausted(base),
      new LlmError.CircuitOpen({ key: "k", retryAfterMs: 5 }),
      new LlmError.AdmissionRejected({ key: "k", reason: "queue-full" }),
      new LlmError.DeadlineExceeded({ deadlineMs: 5 })
    ]
    expect(retryable.map(LlmError.isRetryable)).toEqual(retryable.map(() => true))
    expect(fatal.map(LlmError.isRetryable)).toEqual(fatal.map(() => false))
  })

  it("round-trips through the union schema", () => {
    const e = new LlmError.RetryBudgetExhausted({
      key: "openai/gpt",
      lastError: new LlmError.Overloaded({ ...base, status: 529 })
    })
    const encoded = Schema.encodeUnknownSync(LlmError.LlmError)(e)
    const decoded = Schema.decodeUnknownSync(LlmError.LlmError)(encoded)
    expect(decoded._tag).toBe("RetryBudgetExhausted")
    expect(decoded instanceof LlmError.RetryBudgetExhausted).toBe(true)
    expect(decoded.message).toContain("Overloaded")
  })

  it("reads the Retry-After hint where an error has one", () => {
    expect(LlmError.retryAfterMs(new LlmError.Overloaded({ ...base, retryAfterMs: 30 }))).toBe(30)
    expect(LlmError.retryAfterMs(new LlmError.BadRequest(base))).toBeUndefined()
  })
})

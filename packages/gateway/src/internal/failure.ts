/**
 * What a failed call looks like to an HTTP client: the status, the error type of each wire format, the
 * Retry-After to send and whether the client should retry at all.
 *
 * Retries happen at one layer: the gateway's. A failure the gateway already retried and gave up on is sent
 * with `x-should-retry: false`, which the official OpenAI and Anthropic clients obey, so that a client's
 * own retries do not multiply the load on a provider that is already failing. Rejections that carry a wait
 * (an open circuit, a rate limit, a full admission queue) are sent with that wait as `retry-after` and
 * `x-should-retry: true`.
 *
 * @internal
 */
import { LlmError } from "@llm-resilience/core"

/** An HTTP failure in both wire formats' terms. */
export interface Failure {
  readonly status: number
  /** The status an Anthropic client expects when it differs (529 for overload). */
  readonly anthropicStatus?: number
  /** OpenAI `error.type`. */
  readonly type: string
  /** OpenAI `error.code`. */
  readonly code: string | null
  /** OpenAI `error.param`. */
  readonly param?: string
  /** Anthropic `error.type`. */
  readonly anthropicType: string
  readonly message: string
  readonly retryAfterMs: number | undefined
  /** Whether a client should retry (sent as `x-should-retry`). */
  readonly shouldRetry: boolean
}

/** A failure of the gateway itself (bad body, unknown model, missing key). */
export const gatewayFailure = (
  status: number,
  message: string,
  options?: { readonly code?: string; readonly param?: string; readonly retryAfterMs?: number }
): Failure => {
  const kind = kinds[status] ?? kinds[400]
  return {
    status,
    type: kind.type,
    code: options?.code ?? null,
    ...(options?.param === undefined ? {} : { param: options.param }),
    anthropicType: kind.anthropicType,
    message,
    retryAfterMs: options?.retryAfterMs,
    shouldRetry: options?.retryAfterMs !== undefined
  }
}

const kinds: Record<number, { readonly type: string; readonly anthropicType: string }> = {
  400: { type: "invalid_request_error", anthropicType: "invalid_request_error" },
  401: { type: "authentication_error", anthropicType: "authentication_error" },
  403: { type: "permission_error", anthropicType: "permission_error" },
  404: { type: "invalid_request_error", anthropicType: "not_found_error" },
  413: { type: "invalid_request_error", anthropicType: "request_too_large" },
  429: { type: "rate_limit_exceeded", anthropicType: "rate_limit_error" },
  500: { type: "server_error", anthropicType: "api_error" },
  502: { type: "server_error", anthropicType: "api_error" },
  503: { type: "server_error", anthropicType: "overloaded_error" },
  504: { type: "timeout", anthropicType: "timeout_error" }
}

const of = (
  status: number,
  error: { readonly message: string },
  options?: {
    readonly code?: string
    readonly param?: string
    readonly type?: string
    readonly anthropicType?: string
    readonly anthropicStatus?: number
    readonly retryAfterMs?: number | undefined
    readonly shouldRetry?: boolean
  }
): Failure => {
  const kind = kinds[status]
  return {
    status,
    ...(options?.anthropicStatus === undefined ? {} : { anthropicStatus: options.anthropicStatus }),
    type: options?.type ?? kind.type,
    code: options?.code ?? null,
    ...(options?.param === undefined ? {} : { param: options.param }),
    anthropicType: options?.anthropicType ?? kind.anthropicType,
    message: error.message,
    retryAfterMs: options?.retryAfterMs,
    shouldRetry: options?.shouldRetry ?? false
  }
}

/** The HTTP failure of a call's error. */
export const failureOf = (error: LlmError.LlmError): Failure => {
  switch (error._tag) {
    case "RateLimited":
      return of(429, error, { code: "rate_limit_exceeded", retryAfterMs: error.retryAfterMs })
    case "QuotaExhausted":
      return of(429, error, { type: "insufficient_quota", code: "insufficient_quota", anthropicType: "billing_error" })
    case "Overloaded":
      return of(503, error, { code: "server_is_overloaded", anthropicStatus: 529, retryAfterMs: error.retryAfterMs })
    case "ServerError":
    case "ConnectionError":
    case "StreamTruncated":
    case "OutputInvalid":
    case "StreamDiverged":
      return of(502, error, { code: "upstream_error" })
    case "Timeout":
      return of(504, error, { code: "upstream_timeout" })
    case "DeadlineExceeded":
      return of(504, error, { code: "deadline_exceeded" })
    case "BadRequest":
      return of(400, error)
    case "Authentication":
    case "PermissionDenied":
      // the gateway's own credentials for the provider were refused: not the client's fault
      return of(502, error, { code: "upstream_credentials_refused" })
    case "ModelNotFound":
      return of(404, error, { code: "model_not_found", param: "model" })
    case "ContextLengthExceeded":
      return of(400, error, { code: "context_length_exceeded", param: "messages" })
    case "ContentFiltered":
      return of(400, error, { code: "content_filter" })
    case "CircuitOpen":
      return of(503, error, { code: "circuit_open", retryAfterMs: error.retryAfterMs, shouldRetry: true })
    case "AdmissionRejected":
      return error.reason === "never-admissible"
        ? of(413, error, { code: "request_too_large" })
        : of(429, error, { code: "admission_rejected", retryAfterMs: 1_000, shouldRetry: true })
    case "RetryBudgetExhausted":
      return { ...failureOf(error.lastError), shouldRetry: false }
    case "RetryAfterTooLong":
      return of(429, error, { code: "retry_after_too_long", retryAfterMs: error.retryAfterMs })
    case "BudgetExceeded":
      return of(429, error, {
        type: "insufficient_quota",
        code: "budget_exceeded",
        anthropicType: "billing_error",
        retryAfterMs: error.retryAfterMs
      })
    case "TurnLimitExceeded":
      return of(429, error, { code: "turn_limit_exceeded" })
    case "LoopDetected":
      return of(429, error, { code: "loop_detected" })
    case "AcceptedForLater":
      return of(503, error, { code: "accepted_for_later" })
  }
}

/** The response headers of a failure. */
export const failureHeaders = (failure: Failure): Record<string, string> => ({
  "x-should-retry": failure.shouldRetry ? "true" : "false",
  ...(failure.retryAfterMs === undefined
    ? {}
    : {
        "retry-after": String(Math.max(0, Math.ceil(failure.retryAfterMs / 1000))),
        "retry-after-ms": String(Math.max(0, Math.round(failure.retryAfterMs)))
      })
})

/**
 * Builds a provider error of a given kind from a bag of fields, picking the fields that kind carries. The one
 * place that knows which fields each `ProviderError` has, for code that decides the kind first (the classifier,
 * adapters re-stamping an error with new facts).
 *
 * @internal
 */
import * as LlmError from "../LlmError.ts"
import type { RateLimitSnapshot } from "../RateLimitSnapshot.ts"

/** Every field some provider error carries; each kind takes its own. */
export interface Fields {
  readonly message: string
  readonly provider?: string | undefined
  readonly model?: string | undefined
  readonly status?: number | undefined
  readonly requestId?: string | undefined
  readonly retryAfterMs?: number | undefined
  readonly rateLimit?: RateLimitSnapshot | undefined
  readonly limit?: LlmError.RateLimitKind | undefined
  readonly phase?: LlmError.TimeoutPhase | undefined
  readonly afterMs?: number | undefined
  readonly receivedChunks?: number | undefined
  readonly resetAt?: number | undefined
}

/** The fields every provider error has. */
export interface Common {
  message: string
  provider?: string
  model?: string
  status?: number
  requestId?: string
}

interface Hint {
  retryAfterMs?: number
  rateLimit?: RateLimitSnapshot
}

/** A provider error of `kind` with the fields of `f` that the kind has (undefined ones left out). */
export const make = (kind: LlmError.ProviderError["_tag"], f: Fields): LlmError.ProviderError => {
  const common: Common = { message: f.message }
  if (f.provider !== undefined) common.provider = f.provider
  if (f.model !== undefined) common.model = f.model
  if (f.status !== undefined) common.status = f.status
  if (f.requestId !== undefined) common.requestId = f.requestId
  const hint: Hint = {}
  if (f.retryAfterMs !== undefined) hint.retryAfterMs = f.retryAfterMs
  if (f.rateLimit !== undefined) hint.rateLimit = f.rateLimit
  switch (kind) {
    case "RateLimited":
      return new LlmError.RateLimited({ ...common, ...hint, limit: f.limit ?? "unknown" })
    case "Overloaded":
      return new LlmError.Overloaded({ ...common, ...hint })
    case "ServerError":
      return new LlmError.ServerError({ ...common, ...hint })
    case "Timeout":
      return new LlmError.Timeout({ ...common, phase: f.phase ?? "total", afterMs: f.afterMs ?? 0 })
    case "ConnectionError":
      return new LlmError.ConnectionError(common)
    case "StreamTruncated":
      return new LlmError.StreamTruncated({ ...common, receivedChunks: f.receivedChunks ?? 0 })
    case "QuotaExhausted":
      return f.resetAt !== undefined && Number.isFinite(f.resetAt)
        ? new LlmError.QuotaExhausted({ ...common, resetAt: f.resetAt })
        : new LlmError.QuotaExhausted(common)
    case "BadRequest":
      return new LlmError.BadRequest(common)
    case "Authentication":
      return new LlmError.Authentication(common)
    case "PermissionDenied":
      return new LlmError.PermissionDenied(common)
    case "ModelNotFound":
      return new LlmError.ModelNotFound(common)
    case "ContextLengthExceeded":
      return new LlmError.ContextLengthExceeded(common)
    case "ContentFiltered":
      return new LlmError.ContentFiltered(common)
  }
}

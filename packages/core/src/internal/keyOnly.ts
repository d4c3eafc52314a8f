/**
 * The request a stage sees when its combinator guards an effect by key alone (`CircuitBreaker.protect`,
 * `Bulkhead.withPermit`): no messages, the model part of the key.
 *
 * @internal
 */
import type { LlmRequest } from "../LlmRequest.ts"

/** @internal */
export const keyOnly = (key: string): LlmRequest => ({ model: key.slice(key.indexOf("/") + 1), messages: [] })

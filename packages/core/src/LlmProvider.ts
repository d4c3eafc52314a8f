/**
 * The provider service: the one interface every stage of the toolkit wraps and every provider implements.
 *
 * A raw provider (HTTP, FakeProvider, an SDK adapter) fails only with {@link ProviderError}s; a resilient
 * provider built from it by the toolkit can also fail with the toolkit's own rejections, so the service's
 * error channel is the whole {@link LlmError} union and wrapped providers keep the same type.
 *
 * @since 0.1.0
 */
import { Context, type Effect, type Stream } from "effect"
import type { LlmError } from "./LlmError.ts"
import type { LlmRequest } from "./LlmRequest.ts"
import type { LlmResponse, StreamChunk } from "./LlmResponse.ts"

/**
 * A language-model provider.
 *
 * - `complete` answers with the whole response.
 * - `stream` emits `TextDelta` chunks and ends with one `Finish` chunk; a stream that ends without
 *   `Finish` fails with `StreamTruncated` instead.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmProvider } from "@llm-resilience/core"
 *
 * const program = Effect.gen(function*() {
 *   const llm = yield* LlmProvider.LlmProvider
 *   const response = yield* llm.complete({ model: "gpt-5.4-mini", messages: [{ role: "user", content: "Hi" }] })
 *   return response.text
 * })
 * ```
 * @since 0.1.0
 */
export class LlmProvider extends Context.Service<
  LlmProvider,
  {
    /** The provider's name as it appears in errors, metrics and breaker keys (e.g. `openai`). */
    readonly name: string
    readonly complete: (request: LlmRequest) => Effect.Effect<LlmResponse, LlmError>
    readonly stream: (request: LlmRequest) => Stream.Stream<StreamChunk, LlmError>
  }
>()("@llm-resilience/core/LlmProvider") {}

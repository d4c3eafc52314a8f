/**
 * Chaos tour: starts the chaos server in-process, points the real providers (OpenAI Chat Completions and
 * Responses, Azure OpenAI, Anthropic, Gemini) at it (over real sockets, through `NodeHttpClient.layerUndici`),
 * and runs one non-streaming and one streaming call per fault. For each, it prints the typed error the provider produced (or the answer),
 * whether the toolkit would retry it, the wait the provider asked for, and the request id.
 *
 * No API key, no network beyond localhost. Stalls are shortened to 300 ms.
 *
 * Run: `npx node examples/chaos-tour.ts`
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { LlmError, type LlmProvider, type LlmRequest, type LlmResponse } from "@llm-resilience/core"
import {
  AnthropicProvider,
  AzureOpenAiProvider,
  GeminiProvider,
  OpenAiProvider,
  OpenAiResponsesProvider
} from "@llm-resilience/providers"
import { ChaosServer } from "@llm-resilience/testing"
import { Console, Effect, Layer, Redacted, Result, Stream } from "effect"

const apiKey = Redacted.make("sk-chaos-tour")

const request: LlmRequest.LlmRequest = {
  model: "tour-model",
  messages: [{ role: "user", content: "Tell me something reassuring about on-call." }],
  maxOutputTokens: 64
}

const describeError = (error: LlmError.LlmError): string => {
  const parts: Array<string> = [error._tag]
  if ("status" in error && error.status !== undefined) parts.push(`status ${error.status}`)
  parts.push(LlmError.isRetryable(error) ? "retryable" : "fatal")
  const wait = LlmError.retryAfterMs(error)
  if (wait !== undefined) parts.push(`retry after ${wait} ms`)
  if (error._tag === "RateLimited") parts.push(`limit: ${error.limit}`)
  if (error._tag === "StreamTruncated") parts.push(`${error.receivedChunks} chunks before the cut`)
  if ("requestId" in error && error.requestId !== undefined) parts.push(error.requestId)
  const message = "message" in error ? error.message : ""
  return `${parts.join(", ")}  -- ${message.length > 70 ? `${message.slice(0, 70)}...` : message}`
}

const describeCall = <A>(result: Result.Result<A, LlmError.LlmError>, ok: (a: A) => string): string =>
  Result.isSuccess(result) ? `ok: ${ok(result.success)}` : describeError(result.failure)

const onePass = (name: string, provider: LlmProvider.LlmProvider["Service"]) =>
  Effect.gen(function* () {
    const whole = yield* Effect.result(provider.complete(request))
    const streamed = yield* Effect.result(Stream.runCollect(provider.stream(request)))
    yield* Console.log(
      `    ${name.padEnd(12)} complete: ${describeCall(
        whole,
        (r: LlmResponse.LlmResponse) => `"${r.text.slice(0, 32)}..." (${r.usage.outputTokens} tokens)`
      )}`
    )
    yield* Console.log(
      `    ${"".padEnd(12)} stream:   ${describeCall(
        streamed,
        (chunks) => `${chunks.length - 1} deltas, then ${chunks[chunks.length - 1]?._tag}`
      )}`
    )
  })

const program = Effect.gen(function* () {
  const chaos = yield* ChaosServer.ChaosServer
  yield* Console.log(`chaos server on ${chaos.url}\n`)
  for (const fault of [undefined, ...ChaosServer.faults]) {
    yield* Console.log(fault === undefined ? "ok: a normal answer" : `${fault}: ${ChaosServer.describeFault(fault)}`)
    yield* onePass("openai", yield* OpenAiProvider.make({ apiKey, baseUrl: chaos.openAiBaseUrl(fault) }))
    yield* onePass("responses", yield* OpenAiResponsesProvider.make({ apiKey, baseUrl: chaos.openAiBaseUrl(fault) }))
    yield* onePass("azure-openai", yield* AzureOpenAiProvider.make({ apiKey, endpoint: chaos.azureEndpoint(fault) }))
    yield* onePass("anthropic", yield* AnthropicProvider.make({ apiKey, baseUrl: chaos.anthropicBaseUrl(fault) }))
    yield* onePass("gemini", yield* GeminiProvider.make({ apiKey, baseUrl: chaos.geminiBaseUrl(fault) }))
  }
  yield* Console.log("\nEvery fault ended in a typed error (or an answer); none crashed or hung.")
})

const ChaosLive = ChaosServer.layer({ stallMs: 300, slowHeadersMs: 200, keepAliveIntervalMs: 50 })

Effect.runPromise(program.pipe(Effect.provide(Layer.mergeAll(ChaosLive, NodeHttpClient.layerUndici)))).catch(
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)

/**
 * Replaying payloads to the HTTP providers: an in-memory HTTP client that records each request and answers
 * with the given bytes, calls and streams over it, SSE framing, and fuzzing of documented streams with
 * absurd and malformed values.
 */
import { assert, it } from "@effect/vitest"
import type { LlmError, LlmProvider, LlmRequest, LlmResponse } from "@llm-resilience/core"
import { LlmError as Errors } from "@llm-resilience/core"
import { Effect, Exit, Redacted, Schema, Stream } from "effect"
import { Headers, type HttpBody, HttpClient, HttpClientResponse } from "effect/http"
import * as fc from "fast-check"
import { AzureOpenAiProvider, GeminiProvider, OpenAiResponsesProvider } from "../../src/index.ts"

export const secret = "sk-wire-formats-SECRET-0123456789"
export const apiKey = Redacted.make(secret)

export interface Reply {
  readonly status?: number
  readonly headers?: Record<string, string>
  readonly body: string
}

export interface Seen {
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: Record<string, unknown>
  /** Header names the client redacts where it renders headers. */
  readonly redacted: ReadonlyArray<string | RegExp>
}

/** A client that records each request and answers `reply` (SSE when the body starts with `data:`/`event:`). */
export const replayClient = (reply: Reply, seen: Array<Seen>) =>
  HttpClient.make((request, url) =>
    Effect.withFiber((fiber) => {
      const body = request.body as HttpBody.Uint8Array
      seen.push({
        url: url.toString(),
        headers: request.headers,
        body: JSON.parse(new TextDecoder().decode(body.body)),
        redacted: fiber.getRef(Headers.CurrentRedactedNames)
      })
      const sse = /^(?:data|event):/.test(reply.body)
      return Effect.succeed(
        HttpClientResponse.fromWeb(
          request,
          new Response(reply.body, {
            status: reply.status ?? 200,
            headers: { "content-type": sse ? "text/event-stream" : "application/json", ...reply.headers }
          })
        )
      )
    })
  )

export type Maker = (client: HttpClient.HttpClient) => Effect.Effect<LlmProvider.LlmProvider["Service"], unknown>

export const responses: Maker = (client) =>
  Effect.provideService(
    OpenAiResponsesProvider.make({ apiKey, baseUrl: "https://api.test/v1" }),
    HttpClient.HttpClient,
    client
  )
export const azure =
  (options: Partial<AzureOpenAiProvider.MakeOptions> = {}): Maker =>
  (client) =>
    Effect.provideService(
      AzureOpenAiProvider.make({ apiKey, endpoint: "https://res.openai.azure.com", ...options }),
      HttpClient.HttpClient,
      client
    )
export const gemini: Maker = (client) =>
  Effect.provideService(
    GeminiProvider.make({ apiKey, baseUrl: "https://gl.test/v1beta" }),
    HttpClient.HttpClient,
    client
  )

export const request: LlmRequest.LlmRequest = {
  model: "m-1",
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello." },
    { role: "user", content: "Again" }
  ],
  maxOutputTokens: 64,
  temperature: 0.5
}

export const call = (make: Maker, reply: Reply, req: LlmRequest.LlmRequest = request) =>
  Effect.gen(function* () {
    const seen: Array<Seen> = []
    const provider = yield* Effect.orDie(make(replayClient(reply, seen)))
    const exit = yield* Effect.exit(provider.complete(req))
    return { exit, seen }
  })

export const streamed = (make: Maker, reply: Reply, req: LlmRequest.LlmRequest = request) =>
  Effect.gen(function* () {
    const seen: Array<Seen> = []
    const provider = yield* Effect.orDie(make(replayClient(reply, seen)))
    const exit = yield* Effect.exit(Stream.runCollect(provider.stream(req)))
    return { exit, seen }
  })

export const ok = <A>(exit: Exit.Exit<A, unknown>): A => {
  if (Exit.isSuccess(exit)) return exit.value
  return assert.fail(`expected success, got ${JSON.stringify(exit.cause)}`)
}

export const failure = (exit: Exit.Exit<unknown, LlmError.LlmError>): LlmError.LlmError => {
  const error = Exit.isFailure(exit) ? Exit.findErrorOption(exit) : undefined
  if (error === undefined || error._tag !== "Some") return assert.fail("expected a typed failure")
  return error.value
}

export const textOf = (chunks: ReadonlyArray<LlmResponse.StreamChunk>) =>
  chunks.map((c) => (c._tag === "TextDelta" ? c.text : "")).join("")

export const finishOf = (chunks: ReadonlyArray<LlmResponse.StreamChunk>) => {
  const last = chunks[chunks.length - 1]
  assert.strictEqual(chunks.filter((c) => c._tag === "Finish").length, 1)
  if (last._tag !== "Finish") return assert.fail("the stream does not end with Finish")
  return last
}

export const sse = (frames: ReadonlyArray<unknown>, separator = "\n\n") =>
  frames.map((f) => `data: ${typeof f === "string" ? f : JSON.stringify(f)}${separator}`).join("")
export type Event = { readonly type: string; readonly [key: string]: unknown }
export const named = (frames: ReadonlyArray<Event>) =>
  frames.map((f) => `event: ${f.type}\ndata: ${JSON.stringify(f)}\n\n`).join("")

const absurd = fc.oneof(
  fc.constantFrom(-1, Number.MAX_VALUE, 1e308, 0, 2 ** 53 + 1, "12", "NaN", null, true, "", "STOP", "completed"),
  fc.double(),
  fc.string({ maxLength: 8 }),
  fc.constant([]),
  fc.constant({})
)
/** Replaces some leaves of a documented payload with absurd values. */
const mutate = (value: unknown, picks: ReadonlyArray<unknown>, at: { i: number }): unknown => {
  if (Array.isArray(value)) return value.map((v) => mutate(v, picks, at))
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mutate(v, picks, at)]))
  }
  const pick = picks[at.i++ % Math.max(1, picks.length)]
  return pick === undefined || at.i % 3 !== 0 ? value : pick
}
const garbageFrame = fc.constantFrom(
  'data: {"choices": [ }\n\n',
  "data: not json\n\n",
  ": keep-alive\n\n",
  "data: []\n\n",
  "data: 42\n\n"
)

const isProviderError = Schema.is(Errors.ProviderError)

/**
 * A property test: `frames` (a documented stream), cut anywhere, some leaves replaced by absurd values and
 * malformed events put in front, end in exactly one `Finish` with finite usage, or in a typed provider
 * error, never a defect.
 */
export const fuzzStreams = (
  name: string,
  make: Maker,
  frames: ReadonlyArray<unknown>,
  render: (frames: ReadonlyArray<unknown>) => string
) =>
  it(`${name}: absurd values and malformed events end in one Finish with sane usage, or a typed error`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(absurd, { maxLength: 40 }),
        fc.array(garbageFrame, { maxLength: 4 }),
        fc.nat(frames.length),
        async (picks, garbage, keep) => {
          const mutated = frames.slice(0, keep + 1).map((f) => (typeof f === "string" ? f : mutate(f, picks, { i: 0 })))
          const body = garbage.join("") + render(mutated)
          const exit = await Effect.runPromise(Effect.map(streamed(make, { body }), (r) => r.exit))
          if (Exit.isSuccess(exit)) {
            const chunks = exit.value
            const last = chunks[chunks.length - 1]
            return (
              last?._tag === "Finish" &&
              chunks.filter((c) => c._tag === "Finish").length === 1 &&
              [last.usage.inputTokens, last.usage.outputTokens].every((n) => Number.isFinite(n) && n >= 0)
            )
          }
          const error = Exit.findErrorOption(exit)
          return error._tag === "Some" && isProviderError(error.value)
        }
      ),
      { numRuns: 150 }
    )
  })

/**
 * Acceptance: with a recognisable key in every credential header style and a recognisable marker in every
 * prompt, calls through the resilient provider fail in every way over real sockets (each chaos fault, so each
 * error class; attempt timeouts; streams cut; callers interrupted), and nothing observable afterwards holds the
 * key or the prompt: no span (name, attributes, events, links, the exit it recorded, of the client and of the
 * chaos server), no log, no caller's exit, no metric. Everything is walked deeply, through `Redacted` values
 * and bytes.
 */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { assert, describe, it } from "@effect/vitest"
import { type LlmProvider, type LlmRequest, Resilience } from "@llm-resilience/core"
import { ChaosServer } from "@llm-resilience/testing"
import { Cause, Effect, Exit, Fiber, Logger, Metric, Option, Redacted, References, Stream, Tracer } from "effect"
import { Headers, HttpClient } from "effect/http"
import { AnthropicProvider, OpenAiProvider } from "../src/index.ts"
import { capturingTracer } from "./support/tracer.ts"

const KEY = "sk-LEAKCHECK-7f3a9c1e5b2d46801"
const PROMPT = "PROMPT-MARKER-3b9d2e71"
const apiKey = Redacted.make(KEY)
/** The key of styles whose credential travels in a header of the user's own. */
const otherKey = Redacted.make("sk-unrelated-but-valid-0000")

/** Completions go through a path that retries (the retry stage records span events), streams through one
 * that does not (so each stream ends in the provider's own error). */
const request = (model: string, path: "retrying" | "plain" | "patient" = "retrying"): LlmRequest.LlmRequest => ({
  model,
  messages: [
    { role: "system", content: `Be brief. ${PROMPT}` },
    { role: "user", content: `Say hello ${PROMPT}` }
  ],
  maxOutputTokens: 20,
  metadata: { path }
})

type Style = "authorization" | "api-key" | "x-api-key" | "x-goog-api-key" | "configured"

/** One provider per credential style, named so; the chaos server picks the fault from the base URL. */
const providerFor = (style: Style, chaos: ChaosServer.ChaosServer["Service"], fault: ChaosServer.Fault) => {
  const limits = { maxResponseBytes: 64 * 1024 }
  switch (style) {
    case "authorization":
      return OpenAiProvider.make({ name: style, apiKey, baseUrl: chaos.openAiBaseUrl(fault), ...limits })
    case "api-key":
      return OpenAiProvider.make({
        name: style,
        apiKey,
        authHeader: "api-key",
        baseUrl: chaos.openAiBaseUrl(fault),
        urlParams: { "api-version": "2024-10-21" },
        ...limits
      })
    case "x-api-key":
      return AnthropicProvider.make({ name: style, apiKey, baseUrl: chaos.anthropicBaseUrl(fault), ...limits })
    case "x-goog-api-key":
      return OpenAiProvider.make({
        name: style,
        apiKey: otherKey,
        headers: { "x-goog-api-key": KEY },
        baseUrl: chaos.openAiBaseUrl(fault),
        ...limits
      })
    case "configured":
      // a gateway's own credential header, named in effect's redacted header names
      return OpenAiProvider.make({
        name: style,
        apiKey: otherKey,
        headers: { "x-gateway-credential": KEY },
        baseUrl: chaos.openAiBaseUrl(fault),
        ...limits
      })
  }
}

const styles: ReadonlyArray<Style> = ["authorization", "api-key", "x-api-key", "x-goog-api-key", "configured"]

/** Every string reachable from `root`: own properties (enumerable or not, symbols too), Map and Set entries,
 * the value inside a `Redacted`, bytes decoded as UTF-8. */
const strings = (root: unknown): Array<string> => {
  const out: Array<string> = []
  const seen = new Set<unknown>()
  const decoder = new TextDecoder()
  const stack: Array<unknown> = [root]
  while (stack.length > 0) {
    const value = stack.pop()
    if (typeof value === "string") {
      out.push(value)
      continue
    }
    if (typeof value === "bigint" || typeof value === "number" || typeof value === "boolean") continue
    if (value === null || value === undefined || seen.has(value)) continue
    if (typeof value !== "object" && typeof value !== "function") continue
    seen.add(value)
    if (typeof value === "function") continue
    if (Redacted.isRedacted(value)) stack.push(Redacted.value(value))
    if (ArrayBuffer.isView(value)) {
      out.push(decoder.decode(value as Uint8Array))
      continue
    }
    if (value instanceof ArrayBuffer) {
      out.push(decoder.decode(new Uint8Array(value)))
      continue
    }
    if (value instanceof Map) for (const [k, v] of value) stack.push(k, v)
    if (value instanceof Set) for (const v of value) stack.push(v)
    for (const key of Reflect.ownKeys(value)) {
      if (typeof key === "string") out.push(key)
      const descriptor = Object.getOwnPropertyDescriptor(value, key)
      if (descriptor !== undefined && "value" in descriptor) stack.push(descriptor.value)
    }
  }
  return out
}

describe("secrets and prompts", () => {
  it.live(
    "no span, log, error or metric holds a key or a prompt while calls fail in every way",
    () =>
      Effect.gen(function* () {
        const { spans, tracer } = capturingTracer()
        const logs: Array<unknown> = []
        const capture = Logger.make((o) => {
          logs.push({
            message: o.message,
            cause: o.cause,
            level: o.logLevel,
            annotations: o.fiber.getRef(References.CurrentLogAnnotations)
          })
        })
        const exits: Array<Exit.Exit<unknown, unknown>> = []
        const interrupted: Array<Exit.Exit<unknown, unknown>> = []

        const run = Effect.gen(function* () {
          const settings = {
            stallMs: 400,
            slowHeadersMs: 50,
            keepAliveIntervalMs: 50,
            retryAfterSeconds: 0,
            hugeBodyBytes: 128 * 1024
          }
          // the server checks the key where the provider sends it; the two header styles of the user's own
          // go to a server that does not check it (their `authorization` carries another key)
          const checking = yield* ChaosServer.make({ ...settings, apiKey: KEY })
          const open = yield* ChaosServer.make(settings)
          // the callers that give up call servers that stall far longer than a caller waits before giving up,
          // on a path whose timeouts never fire first: however late a loaded machine runs the interruption,
          // the call ends by it
          const stalling = { ...settings, stallMs: 20_000 }
          const checkingStall = yield* ChaosServer.make({ ...stalling, apiKey: KEY })
          const openStall = yield* ChaosServer.make(stalling)
          const faults: ReadonlyArray<ChaosServer.Fault> = ChaosServer.faults
          const calls: Array<Effect.Effect<void>> = []
          for (const style of styles) {
            for (const fault of faults) {
              const keyless = style === "x-goog-api-key" || style === "configured"
              const paths = {
                retrying: {
                  retry: { maxRetries: 1, baseMs: 1, capMs: 5, maxRetryAfterMs: 100 },
                  timeouts: { totalMs: 1_500, firstTokenMs: 200, idleMs: 200 }
                },
                plain: { retry: "none", timeouts: { totalMs: 1_500, firstTokenMs: 200, idleMs: 200 } },
                patient: { retry: "none", timeouts: { totalMs: 60_000, firstTokenMs: 60_000, idleMs: 60_000 } }
              } as const
              const raw = yield* providerFor(style, keyless ? open : checking, fault)
              const { provider } = yield* Resilience.make({ paths }, [raw as LlmProvider.LlmProvider["Service"]])
              const model = `m-${fault}`
              calls.push(
                Effect.flatMap(Effect.exit(provider.complete(request(model))), (exit) =>
                  Effect.sync(() => void exits.push(exit))
                ),
                Effect.flatMap(Effect.exit(Stream.runCollect(provider.stream(request(model, "plain")))), (exit) =>
                  Effect.sync(() => void exits.push(exit))
                )
              )
              if (fault === "stall-first-byte" || fault === "stall-mid-stream") {
                // callers that give up: interrupted while the provider stalls
                const stalled = yield* providerFor(style, keyless ? openStall : checkingStall, fault)
                const { provider: patient } = yield* Resilience.make({ paths }, [
                  stalled as LlmProvider.LlmProvider["Service"]
                ])
                calls.push(
                  Effect.gen(function* () {
                    const complete = yield* Effect.forkChild(patient.complete(request(`${model}-i`, "patient")))
                    const stream = yield* Effect.forkChild(
                      Stream.runCollect(patient.stream(request(`${model}-i`, "patient")))
                    )
                    yield* Effect.sleep("100 millis")
                    yield* Fiber.interrupt(complete)
                    yield* Fiber.interrupt(stream)
                    interrupted.push(yield* Fiber.await(complete), yield* Fiber.await(stream))
                  })
                )
              }
            }
          }
          yield* Effect.all(calls, { concurrency: 16, discard: true })
          for (const exit of exits) if (Exit.isFailure(exit)) yield* Effect.logError("call failed", exit.cause)
          return yield* Metric.snapshot
        }).pipe(Effect.scoped)

        const metrics = yield* run.pipe(
          Effect.provideService(Tracer.Tracer, tracer),
          Effect.provideService(Logger.CurrentLoggers, new Set([capture])),
          Effect.provideService(References.MinimumLogLevel, "All"),
          Effect.provideService(Metric.MetricRegistry, new Map()),
          // header capture on, and a credential header of the user's own named as one to redact
          Effect.provideService(HttpClient.TracerHeaderFilter, () => true),
          Effect.provideService(Headers.CurrentRedactedNames, [
            ...Headers.CurrentRedactedNames.defaultValue(),
            "x-gateway-credential"
          ])
        )

        // the calls did fail in every way: each style saw errors of many classes, timeouts, cut streams
        const tags = new Set(
          exits.flatMap((exit) =>
            Exit.isFailure(exit) ? [(Option.getOrUndefined(Exit.findErrorOption(exit)) as { _tag?: string })?._tag] : []
          )
        )
        for (const tag of [
          "RateLimited",
          "QuotaExhausted",
          "Overloaded",
          "ServerError",
          "Authentication",
          "PermissionDenied",
          "ModelNotFound",
          "BadRequest",
          "ContextLengthExceeded",
          "ConnectionError",
          "Timeout",
          "StreamTruncated"
        ]) {
          assert.isTrue(tags.has(tag), `no call failed with ${tag}: ${[...tags].join(", ")}`)
        }
        assert.isAbove(interrupted.length, 0)
        for (const exit of interrupted) {
          assert.isTrue(
            Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause),
            Exit.isFailure(exit) ? Cause.pretty(exit.cause) : "success"
          )
        }
        // the tracer saw client spans (with their headers) and the chaos server's spans
        const names = new Set(spans.map((s) => s.name))
        assert.isTrue(names.has("POST") && names.has("ChaosServer.request"), [...names].join(", "))
        assert.isTrue(spans.some((s) => s.attributes.has("http.request.header.api-key")))
        assert.isAbove(logs.length, 0)
        assert.isAbove(metrics.length, 0)

        const found: Array<string> = []
        const leaks = (what: string, root: unknown) => {
          for (const s of strings(root)) {
            if (s.includes(KEY) || s.includes(PROMPT)) found.push(`${what}: ${s.slice(0, 120)}`)
          }
        }
        for (const span of spans) {
          leaks(`span ${span.name} (${span.kind})`, {
            name: span.name,
            attributes: span.attributes,
            events: span.events,
            links: span.links,
            status: span.status
          })
        }
        leaks("the log", logs)
        leaks("the callers' exits", [exits, interrupted])
        leaks("the metrics", metrics)
        assert.deepStrictEqual([...new Set(found)].slice(0, 10), [])
      }).pipe(Effect.provide(NodeHttpClient.layerUndici)),
    60_000
  )
})

describe("tracePrompts", () => {
  it.live("records the prompt on the provider's span only when asked to", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosServer.make({ apiKey: KEY })
      const bodies: Array<unknown> = []
      const tracer = Tracer.make({
        span: (options) => {
          const span = new Tracer.NativeSpan(options)
          const end = span.end.bind(span)
          span.end = (endTime, exit) => {
            if (span.name.endsWith(".complete")) bodies.push(span.attributes.get("llm.request.body"))
            end(endTime, exit)
          }
          return span
        }
      })
      for (const tracePrompts of [false, true]) {
        const openai = yield* OpenAiProvider.make({ apiKey, baseUrl: chaos.openAiBaseUrl(), tracePrompts })
        const anthropic = yield* AnthropicProvider.make({ apiKey, baseUrl: chaos.anthropicBaseUrl(), tracePrompts })
        yield* openai.complete(request("m")).pipe(Effect.provideService(Tracer.Tracer, tracer))
        yield* anthropic.complete(request("m")).pipe(Effect.provideService(Tracer.Tracer, tracer))
      }
      assert.strictEqual(bodies.length, 4)
      assert.deepStrictEqual(bodies.slice(0, 2), [undefined, undefined])
      for (const body of bodies.slice(2)) {
        assert.include(body as string, PROMPT)
        assert.notInclude(body as string, KEY)
      }
    }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici))
  )
})

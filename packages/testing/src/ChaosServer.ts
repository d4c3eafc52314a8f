/**
 * A real HTTP server that speaks the OpenAI Chat Completions, OpenAI Responses, Azure OpenAI, Anthropic
 * Messages and Google Gemini wire formats, and misbehaves on request.
 *
 * It answers `POST /v1/chat/completions`, `/v1/responses`,
 * `/openai/deployments/{deployment}/chat/completions?api-version=...`, `/v1/messages` and
 * `/v1beta/models/{model}:generateContent` / `:streamGenerateContent?alt=sse` faithfully enough for the
 * official `openai` (also its `AzureOpenAI` client), `@anthropic-ai/sdk` and `@google/genai` clients (whole
 * answers and SSE streams, usage, request ids, rate-limit headers and hints), and injects a {@link Fault}
 * chosen per request, in each wire's own shapes (any other path or method gets a JSON 404):
 *
 * 1. the `x-chaos-fault: <fault>` request header, else
 * 2. a path prefix: `/fault/<fault>/v1/chat/completions`, `/fault/<fault>/v1/messages`, else
 * 3. the next step of the server's scenario (`scenario` option or {@link ChaosServer.setScenario}), else
 * 4. a normal answer (`ok`).
 *
 * `x-chaos-delay-ms: <ms>` overrides the delay of a stall / slow-headers / slow-first-token fault for one request.
 *
 * On the OpenAI Chat Completions and Anthropic Messages wires, a request that forces a tool call (`tools` with
 * `tool_choice` `"required"` / `{type: "any"}` or naming a tool) is answered with a call to that tool (else
 * the first), its arguments `{"text": <the answer text>}` streamed in pieces; the partial faults cut them.
 *
 * The server runs on real time and real sockets; stalls are bounded by `stallMs` so tests stay short. The
 * layer closes every connection, then the server, when its scope closes.
 *
 * @since 0.1.0
 */
import * as Http from "node:http"
import type { Socket } from "node:net"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Clock, Context, Duration, Effect, Layer, Option, Schema, type Scope, Tracer } from "effect"
import { constTrue } from "effect/Function"
import { HttpMiddleware, type HttpServerError, HttpServerRequest, HttpTraceContext as TraceContext } from "effect/http"
import { faultDescriptions, faults as allFaults, type Fault as FaultName } from "./internal/chaos/faults.ts"
import { makeHandler, type Recorded, type State } from "./internal/chaos/handler.ts"
import { makeHistory } from "./internal/chaos/history.ts"
import { type LimitEvent as LimitEventShape, makeLimiter, RateLimits } from "./internal/chaos/limits.ts"

/**
 * The faults the server can inject.
 *
 * @since 0.1.0
 */
export const Fault: Schema.Literals<ReadonlyArray<FaultName>> = Schema.Literals(allFaults)

/**
 * @since 0.1.0
 */
export type Fault = FaultName

/**
 * Every fault, in catalogue order.
 *
 * @example
 * ```ts
 * import { ChaosServer } from "@llm-resilience/testing"
 * for (const fault of ChaosServer.faults) console.log(fault, ChaosServer.describeFault(fault))
 * ```
 * @since 0.1.0
 */
export const faults: ReadonlyArray<Fault> = allFaults

/**
 * One line saying what a fault does.
 *
 * @example
 * ```ts
 * import { ChaosServer } from "@llm-resilience/testing"
 * ChaosServer.describeFault("rate-limit") // "429 transient rate limit with Retry-After and rate-limit headers"
 * ```
 * @since 0.1.0
 */
export const describeFault = (fault: Fault): string => faultDescriptions[fault]

/**
 * A scenario step: a fault or `ok`.
 *
 * @since 0.1.0
 */
export const Step = Schema.Literals(["ok", ...allFaults])

/**
 * @since 0.1.0
 */
export type Step = typeof Step.Type

const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))
const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/**
 * Server options. Every field is optional:
 *
 * - `port` (default `0`: an ephemeral port), `host` (default `127.0.0.1`);
 * - `stallMs` (default `30000`): how long stalls last before the connection drops, and how long a
 *   keep-alive-only stream runs;
 * - `slowHeadersMs` (default `2000`): the wait before headers for `slow-headers`, before the first chunk for
 *   `slow-first-token`;
 * - `partialChunks` (default half the answer): how many chunks `stall-mid-stream`, `truncated-stream` and
 *   `stream-error` send before their fault;
 * - `keepAliveIntervalMs` (default `1000`): the gap between keep-alive comments;
 * - `retryAfterSeconds` (default `2`): the `retry-after` of a 429;
 * - `text` (default a short sentence): the answer, streamed one word per chunk;
 * - `cachedInputTokens` (default `0`): reported as prompt-cache hits;
 * - `apiKey`: when set, any request with another key gets the provider's 401;
 * - `hugeBodyBytes` (default 10 MB): the size of the `huge-body` body;
 * - `scenario` / `loopScenario` (default none / `false`): steps taken by requests that name no fault;
 * - `rateLimits` (default none): requests and tokens per window by model, counted at arrival over a
 *   sliding window of `rateLimitWindowMs` (default `60000`); a call over a limit gets the provider's real
 *   429 with its rate-limit headers and `retry-after`, a call under them the headers with what remains
 *   (see {@link ChaosServer} `limitLog`). Tokens are the answer's input plus output tokens;
 * - `historyLimit` (default `10000`): how many of the latest requests `requests` keeps, and of the latest
 *   calls `limitLog` keeps: older ones are dropped, so that a server under a long load test keeps a bounded
 *   memory.
 *
 * @since 0.1.0
 */
export const Options = Schema.Struct({
  port: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 }))),
  host: Schema.optional(Schema.String),
  stallMs: Schema.optional(NonNegativeInt),
  slowHeadersMs: Schema.optional(NonNegativeInt),
  keepAliveIntervalMs: Schema.optional(PositiveInt),
  retryAfterSeconds: Schema.optional(NonNegativeInt),
  text: Schema.optional(Schema.NonEmptyString),
  cachedInputTokens: Schema.optional(NonNegativeInt),
  apiKey: Schema.optional(Schema.String),
  hugeBodyBytes: Schema.optional(PositiveInt),
  partialChunks: Schema.optional(NonNegativeInt),
  scenario: Schema.optional(Schema.Array(Step)),
  loopScenario: Schema.optional(Schema.Boolean),
  rateLimits: Schema.optional(RateLimits),
  rateLimitWindowMs: Schema.optional(PositiveInt),
  historyLimit: Schema.optional(PositiveInt)
})

/**
 * @since 0.1.0
 */
export type Options = typeof Options.Type

/**
 * One request as the server saw it: which wire format, which step it took, the model and whether it
 * asked for a stream.
 *
 * @since 0.1.0
 */
export type RecordedRequest = Recorded

/**
 * One call to a model with rate limits, as the server counted it: when it arrived, its tokens, and whether
 * it was refused with a 429.
 *
 * @since 0.1.0
 */
export type LimitEvent = LimitEventShape

/**
 * A running chaos server.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ChaosServer } from "@llm-resilience/testing"
 *
 * const program = Effect.gen(function*() {
 *   const chaos = yield* ChaosServer.ChaosServer
 *   chaos.openAiBaseUrl("rate-limit") // "http://127.0.0.1:PORT/fault/rate-limit/v1"
 *   yield* chaos.setScenario(["overloaded", "ok"])
 * }).pipe(Effect.provide(ChaosServer.layer({ stallMs: 200 })))
 * ```
 * @since 0.1.0
 */
export class ChaosServer extends Context.Service<
  ChaosServer,
  {
    /** `http://host:port`, no trailing slash. */
    readonly url: string
    readonly port: number
    /** A base URL for OpenAI clients (`.../v1`), with an optional fault in the path. */
    readonly openAiBaseUrl: (fault?: Fault) => string
    /** A base URL for Anthropic clients (the SDK appends `/v1/messages`), with an optional fault. */
    readonly anthropicBaseUrl: (fault?: Fault) => string
    /** An Azure OpenAI endpoint (clients append `/openai/deployments/...`), with an optional fault. */
    readonly azureEndpoint: (fault?: Fault) => string
    /**
     * A Gemini base URL with an optional fault: `.../v1beta` (for the providers), or with `{ version: false }`
     * the root the `@google/genai` client appends its API version to.
     */
    readonly geminiBaseUrl: (fault?: Fault, options?: { readonly version?: boolean }) => string
    /** Replaces the scenario: the next requests that name no fault take these steps in order. */
    readonly setScenario: (steps: ReadonlyArray<Step>, options?: { readonly loop?: boolean }) => Effect.Effect<void>
    /** The requests served so far, the latest `historyLimit` of them, oldest first. */
    readonly requests: Effect.Effect<ReadonlyArray<RecordedRequest>>
    /** The calls to a model with `rateLimits`, the latest `historyLimit` of them, in arrival order. */
    readonly limitLog: Effect.Effect<ReadonlyArray<LimitEvent>>
  }
>()("@llm-resilience/testing/ChaosServer") {}

/**
 * Starts a chaos server in the current scope; it stops (connections first) when the scope closes.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ChaosServer } from "@llm-resilience/testing"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const chaos = yield* ChaosServer.make({ port: 8787 })
 *   console.log(chaos.url)
 * }))
 * ```
 * @since 0.1.0
 */
export const make: (
  options?: typeof Options.Encoded
) => Effect.Effect<ChaosServer["Service"], Schema.SchemaError | HttpServerError.ServeError, Scope.Scope> =
  Effect.fnUntraced(function* (options?: typeof Options.Encoded) {
    const o = yield* Schema.decodeUnknownEffect(Options)(options ?? {})
    const historyLimit = o.historyLimit ?? 10_000
    const state: State = {
      scenario: o.scenario ?? [],
      cursor: 0,
      loop: o.loopScenario ?? false,
      sequence: 0,
      recorded: makeHistory(historyLimit)
    }
    const limiter =
      o.rateLimits === undefined ? undefined : makeLimiter(o.rateLimits, o.rateLimitWindowMs ?? 60_000, historyLimit)
    const handler = makeHandler(
      {
        stallMs: o.stallMs ?? 30_000,
        slowHeadersMs: o.slowHeadersMs ?? 2_000,
        keepAliveIntervalMs: o.keepAliveIntervalMs ?? 1_000,
        retryAfterSeconds: o.retryAfterSeconds ?? 2,
        text: o.text ?? "Hello from the chaos server. Every byte of this answer arrived.",
        cachedInputTokens: o.cachedInputTokens ?? 0,
        apiKey: o.apiKey,
        hugeBodyBytes: o.hugeBodyBytes ?? 10 * 1024 * 1024,
        limiter,
        partialChunks: o.partialChunks,
        // stalls are real waits even when the layer is built under a TestClock
        clock: Clock.Clock.defaultValue()
      },
      state
    )

    const sockets = new Set<Socket>()
    // undici reuses a connection only when the server's keep-alive timeout exceeds its 2 s safety margin:
    // with less, every request of a load test would open a new connection
    const nodeServer = Http.createServer({ keepAliveTimeout: 5_000 })
    nodeServer.on("connection", (socket: Socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
    })
    const host = o.host ?? "127.0.0.1"
    // Uninterruptible until the socket is bound: the server's close finalizer does nothing while `listen` is in
    // flight, so an interruption then (a sibling layer failing) would leave it listening and the process alive.
    const server = yield* Effect.uninterruptible(
      NodeHttpServer.make(() => nodeServer, {
        port: o.port ?? 0,
        host,
        gracefulShutdownTimeout: Duration.millis(250)
      })
    )
    // The server's own span. Effect's server span is off: for a 5xx it records the request, whose headers
    // (and the socket's) hold the caller's API key. This one records the method, path and status only,
    // joining the caller's trace when the request carries one; its stack trace would only point here.
    // Without a tracing backend (the native tracer) no one could see it, and it is not made.
    const tracing = (yield* Effect.tracer) !== Tracer.nativeTracer
    const serve = (request: HttpServerRequest.HttpServerRequest) => {
      const url = new URL(request.url, "http://chaos.local")
      const response = handler(request, url)
      if (!tracing) return response
      return response.pipe(
        Effect.tap((response) => Effect.annotateCurrentSpan("http.response.status_code", response.status)),
        Effect.withSpan(
          "ChaosServer.request",
          {
            kind: "server",
            parent: Option.getOrUndefined(TraceContext.fromHeaders(request.headers)),
            attributes: { "http.request.method": request.method, "url.path": url.pathname }
          },
          { captureStackTrace: false }
        )
      )
    }
    // interruptible (the server runs each request uninterruptibly): a stall ends when the server closes
    yield* server
      .serve(Effect.interruptible(Effect.flatMap(HttpServerRequest.HttpServerRequest, serve)))
      .pipe(Effect.provideService(HttpMiddleware.TracerDisabledWhen, constTrue))
    // Runs before the server's own shutdown: drop every connection so that close does not wait on them.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        for (const socket of sockets) socket.destroy()
        sockets.clear()
      })
    )

    const address = server.address
    const port = address._tag === "UnixPathAddress" ? 0 : address.port
    const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`
    return ChaosServer.of({
      url,
      port,
      openAiBaseUrl: (fault) => (fault === undefined ? `${url}/v1` : `${url}/fault/${fault}/v1`),
      anthropicBaseUrl: (fault) => (fault === undefined ? url : `${url}/fault/${fault}`),
      azureEndpoint: (fault) => (fault === undefined ? url : `${url}/fault/${fault}`),
      geminiBaseUrl: (fault, opts) =>
        `${fault === undefined ? url : `${url}/fault/${fault}`}${opts?.version === false ? "" : "/v1beta"}`,
      setScenario: (steps, opts) =>
        Effect.sync(() => {
          state.scenario = [...steps]
          state.cursor = 0
          state.loop = opts?.loop ?? false
        }),
      requests: Effect.sync(state.recorded.entries),
      limitLog: Effect.sync(() => limiter?.events() ?? [])
    })
  })

/**
 * The chaos server as a layer: started when the layer is built, stopped when it is released.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { ChaosServer } from "@llm-resilience/testing"
 *
 * const ChaosLive = ChaosServer.layer({ stallMs: 300, scenario: ["rate-limit", "ok"] })
 * const program = Effect.gen(function*() {
 *   const chaos = yield* ChaosServer.ChaosServer
 *   return chaos.url
 * }).pipe(Effect.provide(ChaosLive))
 * ```
 * @since 0.1.0
 */
export const layer = (
  options?: typeof Options.Encoded
): Layer.Layer<ChaosServer, Schema.SchemaError | HttpServerError.ServeError> => Layer.effect(ChaosServer, make(options))

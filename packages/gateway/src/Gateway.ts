/**
 * An HTTP gateway that speaks the OpenAI Chat Completions and Anthropic Messages wire formats and sends
 * every call through `Resilience`: any OpenAI or Anthropic client (any language) gets retries, fallbacks,
 * breakers, admission, budgets and timeouts by changing its base URL.
 *
 * Routes:
 *
 * - `POST /v1/chat/completions` (OpenAI, whole and streamed), `POST /v1/messages` (Anthropic, whole and
 *   streamed);
 * - `GET /v1/models`: the routes and models clients can name;
 * - `GET /metrics` (Prometheus text), `GET /healthz` (the process is up), `GET /readyz` (the gateway is built:
 *   providers, stores and stages; 503 once it is shutting down).
 *
 * Per request, these headers override the defaults: `x-llm-path` (the route, instead of the one `model`
 * names), `x-llm-fallbacks` (comma-separated routes or models tried after the request's own, like the body
 * field `fallbacks`), `x-llm-priority` (`interactive` / `background`), `x-llm-conversation-id` and
 * `x-llm-tenant` (only for a key that maps to no tenant). Every answer carries `x-llm-model` (the model
 * that answered), `x-llm-report` (the pipeline's report as JSON) and `x-request-id`.
 *
 * @since 0.1.0
 */
import { hash, randomBytes } from "node:crypto"
import { createServer } from "node:http"
// the platform's modules by path: its index loads every module it has (Redis and its client, cluster, SQL,
// workers ...), which a gateway without those never uses
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { type LlmProvider, Resilience } from "@llm-resilience/core"
import { AnthropicProvider, GeminiProvider, OpenAiProvider } from "@llm-resilience/providers"
import { Duration, Effect, Layer, Redacted, type Scope } from "effect"
import { HttpClient, HttpRouter, HttpServer, type HttpServerError, HttpServerResponse } from "effect/http"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import { RateLimiter } from "effect/persistence"
import * as GatewayConfig from "./GatewayConfig.ts"
import { anthropic } from "./internal/anthropic.ts"
import { gatewayFailure } from "./internal/failure.ts"
import { DrainState } from "./internal/drain.ts"
import { type Caller, type Context, handle, type Target } from "./internal/handler.ts"
import { openAi } from "./internal/openai.ts"
import { dispatch, Response } from "./internal/server.ts"
import * as Upstream from "./internal/upstream.ts"

/**
 * The SHA-256 (hex) of a gateway key, as the configuration's `keys[].sha256` stores it.
 *
 * @example
 * ```ts
 * import { Gateway } from "@llm-resilience/gateway"
 * Gateway.hashKey("gw-team-a-secret") // "…64 hex digits…"
 * ```
 * @since 0.1.0
 */
export const hashKey = (key: string): string => hash("sha256", key, "hex")

const defaultKeyEnv = { openai: "OPENAI_API_KEY", anthropic: "ANTHROPIC_API_KEY", gemini: "GEMINI_API_KEY" } as const

const configError = (field: string, issue: string) => new GatewayConfig.GatewayConfigError({ field, issue })

/** The upstream providers of a configuration, keys read from `env`. */
const providersOf = Effect.fnUntraced(function* (
  config: GatewayConfig.GatewayConfig,
  env: Readonly<Record<string, string | undefined>>
) {
  const built: Array<LlmProvider.LlmProvider["Service"]> = []
  for (const [name, p] of Object.entries(config.providers)) {
    const field = `providers.${name}`
    const variable = p.apiKeyEnv ?? defaultKeyEnv[p.kind]
    const key = env[variable]
    if (key === undefined || key.length === 0) {
      return yield* configError(`${field}.apiKeyEnv`, `the environment variable ${variable} is not set`)
    }
    const options = {
      name,
      apiKey: Redacted.make(key),
      ...(p.baseUrl === undefined ? {} : { baseUrl: p.baseUrl }),
      ...(p.headers === undefined ? {} : { headers: p.headers })
    }
    const make =
      p.kind === "openai"
        ? OpenAiProvider.make(options)
        : p.kind === "anthropic"
          ? AnthropicProvider.make(options)
          : GeminiProvider.make(options)
    built.push(
      yield* make.pipe(
        Effect.mapError((e) =>
          configError(field, e._tag === "SchemaError" ? e.message.split("\n")[0] : String(e.message))
        )
      )
    )
  }
  return built
})

/** A request's credential: the bearer token of `authorization`, else `x-api-key`. */
const credentialOf = (headers: Readonly<Record<string, string | undefined>>): string | undefined => {
  const authorization = headers["authorization"]
  return authorization !== undefined && /^Bearer\s./i.test(authorization)
    ? authorization.slice(7).trim()
    : headers["x-api-key"]?.trim()
}

/**
 * The caller of a request's credential, by the SHA-256 of the configured keys. A credential that matched is
 * remembered, so that the next request with it is a map lookup rather than a hash (a few microseconds, about
 * 1 % of a request's CPU). Only credentials that matched a configured hash are kept: at most one per
 * configured key, and nothing a client sends can grow the memo. It holds keys in clear; so does every
 * request's headers, and the process holds the providers' keys in clear too: a memory dump of the gateway
 * gives those away either way (the configuration holds hashes so that the file does not).
 */
const authenticator = (keys: ReadonlyMap<string, Caller>) => {
  const open: Caller = { tenant: undefined, requestsPerMinute: undefined }
  const verified = new Map<string, Caller>()
  return (headers: Readonly<Record<string, string | undefined>>): Caller | undefined => {
    if (keys.size === 0) return open
    const credential = credentialOf(headers)
    if (credential === undefined) return undefined
    const known = verified.get(credential)
    if (known !== undefined) return known
    const caller = keys.get(hashKey(credential))
    if (caller !== undefined && verified.size < keys.size) verified.set(credential, caller)
    return caller
  }
}

/**
 * Request ids: 32 hex digits, a random half drawn once per gateway and a counter. Unique within a gateway
 * and, by the random half, across instances; not secret (an id names a request in logs and answers, it
 * grants nothing), so a counter does instead of a random UUID per request.
 */
const requestIds = (): (() => string) => {
  const prefix = randomBytes(8).toString("hex")
  let next = 0
  return () => prefix + (++next).toString(16).padStart(16, "0")
}

/** The names clients can put in `model`: routes, `provider/model` keys, and bare model names that are unique. */
const targetsOf = (config: GatewayConfig.GatewayConfig): ReadonlyMap<string, Target> => {
  const targets = new Map<string, Target>()
  const bare = new Map<string, Target | null>()
  for (const key of Object.keys(config.models ?? {})) {
    const model = key.slice(key.indexOf("/") + 1)
    const target = { path: key, model }
    targets.set(key, target)
    bare.set(model, bare.has(model) ? null : target)
  }
  for (const [model, target] of bare) if (target !== null && !targets.has(model)) targets.set(model, target)
  for (const [name, route] of Object.entries(config.routes ?? {})) {
    const first = route.fallback[0]
    targets.set(name, { path: name, model: "model" in first ? first.model : name })
  }
  return targets
}

/**
 * The gateway's request handling, built from a configuration: the resilient provider, the keys, the
 * tenant limits. Fails with a `GatewayConfigError` naming the field when the configuration cannot be used
 * (including a provider whose key variable is unset).
 *
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (
  input: unknown,
  options?: { readonly env?: Readonly<Record<string, string | undefined>> }
): Effect.fn.Return<
  Context & { readonly config: GatewayConfig.GatewayConfig },
  GatewayConfig.GatewayConfigError,
  HttpClient.HttpClient | RateLimiter.RateLimiter | Scope.Scope
> {
  const config = yield* GatewayConfig.decode(input)
  const providers = yield* providersOf(config, options?.env ?? process.env)
  const { provider } = yield* Resilience.make(GatewayConfig.toResilience(config), providers).pipe(
    Effect.mapError((e) => configError(GatewayConfig.fieldOf(e.field), e.issue))
  )
  const keys = new Map<string, Caller>()
  for (const k of config.keys ?? []) keys.set(k.sha256, { tenant: k.tenant, requestsPerMinute: k.requestsPerMinute })
  const limiter = yield* RateLimiter.RateLimiter
  return {
    config,
    provider,
    targets: targetsOf(config),
    authenticate: authenticator(keys),
    admitTenant: (caller) =>
      caller.requestsPerMinute === undefined
        ? Effect.succeed(undefined)
        : limiter
            .consume({
              key: `tenant:${caller.tenant ?? "-"}`,
              limit: caller.requestsPerMinute,
              window: "1 minute",
              onExceeded: "fail"
            })
            .pipe(
              Effect.as(undefined),
              Effect.catch((e) =>
                Effect.succeed(
                  e.reason._tag === "RateLimitExceeded"
                    ? gatewayFailure(429, `tenant ${caller.tenant ?? "-"} is over its request limit`, {
                        code: "tenant_rate_limited",
                        retryAfterMs: Duration.toMillis(e.reason.retryAfter)
                      })
                    : gatewayFailure(503, "the shared limit store is unavailable", { retryAfterMs: 1_000 })
                )
              )
            ),
    nextId: requestIds(),
    // the largest request the providers accept (Anthropic's Messages API: 32 MB)
    maxBodyBytes: config.server?.maxBodyBytes ?? 32 * 1024 * 1024
  } satisfies Context & { readonly config: GatewayConfig.GatewayConfig }
})

/**
 * The state several instances share, on the configuration's `store` (one Redis client): the tenants'
 * request limits and the stores of `Resilience` (`RedisStore.layerFrom`: admission, breaker, retry budget,
 * spend, agent turns). Without a store, everything is kept in memory.
 */
const sharedState = (
  config: GatewayConfig.GatewayConfig
): Layer.Layer<RateLimiter.RateLimiter, GatewayConfig.GatewayConfigError> => {
  const store = config.store
  if (store === undefined) return RateLimiter.layer.pipe(Layer.provide(RateLimiter.layerStoreMemory))
  return Layer.unwrap(
    Effect.promise(() =>
      Promise.all([import("@effect/platform-node/NodeRedis"), import("@llm-resilience/redis")])
    ).pipe(
      Effect.map(([NodeRedis, { RedisStore }]) =>
        Layer.merge(
          (RateLimiter.layer as Layer.Layer<RateLimiter.RateLimiter, never, RateLimiter.RateLimiterStore>).pipe(
            Layer.provide(RateLimiter.layerStoreRedis({ prefix: `${store.prefix ?? "llm:"}gateway:tenant:` }))
          ),
          RedisStore.layerFrom(GatewayConfig.toResilience(config))
        ).pipe(
          Layer.provide(NodeRedis.layer({ url: store.url, disableOfflineQueue: true })),
          Layer.catchTag("RedisError", (e) =>
            Layer.effect(
              RateLimiter.RateLimiter,
              Effect.fail(configError("store.url", `cannot reach Redis: ${String(e.cause)}`))
            )
          ),
          Layer.catchTag("InvalidConfig", (e) =>
            Layer.effect(RateLimiter.RateLimiter, Effect.fail(configError(GatewayConfig.fieldOf(e.field), e.issue)))
          )
        )
      )
    )
  )
}

/**
 * The gateway's routes on the `HttpRouter` in context, to serve beside other routes (`layer` serves the same
 * routes on a server of its own, without a router, and drains them on shutdown).
 *
 * @example
 * ```ts
 * import { NodeHttpClient, NodeHttpServer } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { HttpRouter } from "effect/http"
 * import { Gateway } from "@llm-resilience/gateway"
 * import { createServer } from "node:http"
 *
 * const Live = HttpRouter.serve(Gateway.routes(config)).pipe(
 *   Layer.provide(NodeHttpServer.layer(createServer, { port: 8080 })),
 *   Layer.provide(NodeHttpClient.layerUndici)
 * )
 * declare const config: unknown
 * ```
 * @since 0.1.0
 */
export const routes = (
  input: unknown,
  options?: { readonly env?: Readonly<Record<string, string | undefined>> }
): Layer.Layer<never, GatewayConfig.GatewayConfigError, HttpRouter.HttpRouter | HttpClient.HttpClient> =>
  Layer.unwrap(
    Effect.map(GatewayConfig.decode(input), (config) =>
      Layer.effectDiscard(
        Effect.gen(function* () {
          const router = yield* HttpRouter.HttpRouter
          // served beside other routes, the gateway does not drain: whoever runs the server does
          yield* router.addAll(yield* endpoints(config, new DrainState(), options))
        })
      ).pipe(Layer.provide(sharedState(config)))
    )
  )

/** The gateway's routes for a configuration: method, path and handler; `drain` says when it is draining. */
const endpoints = Effect.fnUntraced(function* (
  config: GatewayConfig.GatewayConfig,
  drain: DrainState,
  options: { readonly env?: Readonly<Record<string, string | undefined>> } | undefined
) {
  const ctx: Context = { ...(yield* make(config, options)), draining: () => drain.draining }
  return [
    HttpRouter.route("POST", "/v1/chat/completions", handle(ctx, openAi)),
    HttpRouter.route("POST", "/v1/messages", handle(ctx, anthropic)),
    HttpRouter.route(
      "GET",
      "/v1/models",
      HttpServerResponse.text(
        JSON.stringify({
          object: "list",
          data: [...ctx.targets.keys()].map((id) => ({ id, object: "model", created: 0, owned_by: "gateway" }))
        }),
        { contentType: "application/json" }
      )
    ),
    HttpRouter.route(
      "GET",
      "/metrics",
      Effect.map(PrometheusMetrics.format(), (text) =>
        HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
      )
    ),
    HttpRouter.route("GET", "/healthz", HttpServerResponse.text("ok")),
    // served once every provider, store and stage is built; 503 from the shutdown signal on
    HttpRouter.route(
      "GET",
      "/readyz",
      Effect.sync(() =>
        drain.draining ? HttpServerResponse.text("draining", { status: 503 }) : HttpServerResponse.text("ready")
      )
    )
  ]
})

/**
 * The client the providers call upstream with: effect's `HttpClient` over undici's dispatcher with a lean
 * handler per request, on one `Agent` (see internal/upstream.ts for why and what it costs).
 */
const upstreamClient: Layer.Layer<HttpClient.HttpClient> = Upstream.layer

/**
 * The whole gateway: its routes served on Node's HTTP server at the configuration's `server.host` /
 * `server.port` (default `127.0.0.1:8080`), with an HTTP client for the providers. When the layer is
 * released (SIGTERM under `GatewayCli.run`), the gateway drains: `GET /readyz` answers 503 (`GET /healthz`
 * stays 200), new model requests get a 503 to retry elsewhere, and in-flight requests and streams get
 * `server.shutdownGraceMs` (default 10 s) to finish; then the server closes.
 *
 * @example
 * ```ts
 * import { NodeRuntime } from "@effect/platform-node"
 * import { Effect, Layer } from "effect"
 * import { Gateway, GatewayConfig } from "@llm-resilience/gateway"
 *
 * Effect.flatMap(GatewayConfig.load("gateway.yaml"), (config) => Layer.launch(Gateway.layer(config))).pipe(
 *   NodeRuntime.runMain
 * )
 * ```
 * @since 0.1.0
 */
export const layer = (
  config: GatewayConfig.GatewayConfig,
  options?: { readonly env?: Readonly<Record<string, string | undefined>> }
): Layer.Layer<HttpServer.HttpServer, GatewayConfig.GatewayConfigError | HttpServerError.ServeError> =>
  Layer.unwrap(
    Effect.sync(() => {
      const drain = new DrainState()
      const graceMs = config.server?.shutdownGraceMs ?? 10_000
      const served = Layer.unwrap(
        Effect.map(endpoints(config, drain, options), (all) => HttpServer.serve(dispatch(all)))
      ).pipe(
        Layer.provide(sharedState(config)),
        Layer.provide(upstreamClient),
        // the server alone: the platform's file system, path, terminal and HTTP file services (which
        // `NodeHttpServer.layer` adds) serve nothing here, and every service of this context is in each
        // request's context (copied whenever a request's context is flattened)
        Layer.provideMerge(
          NodeHttpServer.layerServer(
            () =>
              createServer({ ServerResponse: Response })
                .on("request", drain.onRequest)
                // a request with `expect: 100-continue` comes as this event instead
                .on("checkContinue", drain.onRequest),
            {
              port: config.server?.port ?? 8080,
              host: config.server?.host ?? "127.0.0.1",
              // the drain (below) had the grace period: what is still running after it is cut
              gracefulShutdownTimeout: Duration.zero
            }
          )
        )
      )
      // built after the server, so released before it: the drain runs while the server still answers
      return Layer.effectDiscard(Effect.addFinalizer(() => drain.drain(graceMs))).pipe(Layer.provideMerge(served))
    })
  )

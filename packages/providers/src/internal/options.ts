/**
 * Option schemas and helpers shared by the providers.
 *
 * @internal
 */
import { Cause, Config, Context, Effect, Exit, Redacted, Schema } from "effect"
import { constTrue } from "effect/Function"
import { Telemetry } from "@llm-resilience/core"
import {
  Headers,
  HttpBody,
  HttpClient,
  type HttpClientError,
  HttpClientRequest,
  type HttpClientResponse
} from "effect/http"

/** An absolute http(s) URL. */
export const HttpUrl = Schema.String.check(
  Schema.makeFilter((s: string) => {
    try {
      const url = new URL(s)
      return url.protocol === "http:" || url.protocol === "https:" ? undefined : "expected an http(s) URL"
    } catch {
      return "expected an absolute URL"
    }
  })
)

/** A positive integer byte count. */
export const ByteCount = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))

/** Default byte caps. */
export const defaultLimits = {
  maxResponseBytes: 8 * 1024 * 1024,
  maxErrorBodyBytes: 1024 * 1024,
  maxEventBytes: 1024 * 1024
} as const

/** Joins a base URL and a path without doubling or losing slashes. */
export const joinUrl = (base: string, path: string): string => `${base.replace(/\/+$/, "")}/${path.replace(/^\/+/, "")}`

/** Replaces every occurrence of the key in a text (for error messages built from foreign text). */
export const scrubber = (apiKey: Redacted.Redacted<string>): ((text: string) => string) => {
  const key = Redacted.value(apiKey)
  return key.length < 4 ? (text) => text : (text) => (text.includes(key) ? text.split(key).join("<redacted>") : text)
}

const ApiKey = Schema.Struct({
  apiKey: Schema.Unknown.check(
    Schema.makeFilter((u: unknown) =>
      Redacted.isRedacted(u) && typeof Redacted.value(u) === "string"
        ? undefined
        : "expected a Redacted<string> (Redacted.make or Config.Redacted); the value is not shown"
    )
  )
})

/** Fails unless the value is a `Redacted` string, without ever printing the value. */
export const checkApiKey = (u: unknown): Effect.Effect<Redacted.Redacted<string>, Schema.SchemaError> =>
  Effect.map(Schema.decodeUnknownEffect(ApiKey)({ apiKey: u }), (o) => o.apiKey as Redacted.Redacted<string>)

/**
 * The key and base URL of a provider: the given ones, else `<PREFIX>_API_KEY` / `<PREFIX>_BASE_URL` (or
 * `baseUrlVar`) from the config (environment), the URL defaulting to `defaultBaseUrl`; both validated.
 */
export const connection = Effect.fnUntraced(function* (options: {
  readonly apiKey: Redacted.Redacted<string> | undefined
  readonly baseUrl: string | undefined
  readonly envPrefix: string
  readonly baseUrlVar?: string | undefined
  readonly defaultBaseUrl: string | undefined
}) {
  const apiKey = yield* checkApiKey(options.apiKey ?? (yield* Config.Redacted(`${options.envPrefix}_API_KEY`)))
  const urlVar = Config.String(options.baseUrlVar ?? `${options.envPrefix}_BASE_URL`)
  const baseUrl =
    options.baseUrl ??
    (yield* options.defaultBaseUrl === undefined ? urlVar : urlVar.pipe(Config.withDefault(options.defaultBaseUrl)))
  yield* Schema.decodeUnknownEffect(Schema.Struct({ baseUrl: HttpUrl }))({ baseUrl })
  return { apiKey, baseUrl }
})

/**
 * Header names that carry credentials. They are redacted wherever the HTTP client renders headers, on top of
 * effect's `Headers.CurrentRedactedNames` (the names an application configures there stay redacted too).
 */
export const credentialHeaders: ReadonlyArray<string | RegExp> = [
  "authorization",
  "proxy-authorization",
  "api-key",
  "x-api-key",
  "x-goog-api-key",
  "cookie",
  "set-cookie",
  /(?:^|-)(?:auth|api-?key|secret|password|token)$/i
]

/**
 * Once an exchange is over, replaces what a request object retains by what may be kept: the values of
 * credential headers become `<redacted>` and the body (the prompt) is dropped. The request has been sent;
 * only the objects that keep a reference to it (the client span's recorded exit, the response, errors) see
 * the change.
 */
const strip = (request: unknown, names: ReadonlyArray<string | RegExp>, done: WeakSet<object>): void => {
  if (!HttpClientRequest.isHttpClientRequest(request) || done.has(request)) return
  done.add(request)
  const headers: Record<string, string> = {}
  for (const name in request.headers) {
    headers[name] = Headers.isRedactedName(name, names) ? "<redacted>" : request.headers[name]
  }
  const retained = request as { headers: Headers.Headers; body: HttpBody.HttpBody }
  retained.headers = Headers.fromInput(headers)
  retained.body = HttpBody.empty
}

/** The requests an exit of the client refers to: the response's, or each error's (and its response's). */
const requestsOf = (exit: Exit.Exit<HttpClientResponse.HttpClientResponse, unknown>): Array<unknown> => {
  if (Exit.isSuccess(exit)) return [exit.value.request]
  const out: Array<unknown> = []
  for (const reason of exit.cause.reasons) {
    const error = Cause.isFailReason(reason) ? reason.error : Cause.isDieReason(reason) ? reason.defect : undefined
    const r = (error as { readonly reason?: { readonly request?: unknown; readonly response?: { request?: unknown } } })
      ?.reason
    out.push(r?.request, r?.response?.request)
  }
  return out
}

/**
 * How the providers send: a request on the given client, with the client's span only where a span could be
 * seen (`Telemetry.spanVisible`: a tracer is installed or the call runs under a parent span); elsewhere the
 * span would be made and dropped unseen, so the client runs untraced (no span, no trace headers).
 *
 * Effect's client span records the response (or the error) as its exit, and both keep the request with all
 * its headers and its body: the API key and the prompt, readable by any exporter that looks at the exit. The
 * traced client keeps the span as effect makes it (attributes, headers rendered with {@link credentialHeaders}
 * redacted, trace propagation), runs the given client untraced inside it, and strips the request once the
 * exchange is over, before the span ends.
 */
export const withoutRetainedSecrets = (
  client: HttpClient.HttpClient
): ((
  request: HttpClientRequest.HttpClientRequest
) => Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError>) => {
  const traced = withStrippedSpan(client)
  // the redacted names with ours, kept while the configured ones stay the same
  let configured: ReadonlyArray<string | RegExp> | undefined
  let names: ReadonlyArray<string | RegExp> = credentialHeaders
  return (request) =>
    Effect.withFiber((fiber) => {
      const current = fiber.getRef(Headers.CurrentRedactedNames)
      if (current !== configured) {
        configured = current
        names = [...current, ...credentialHeaders]
      }
      return Telemetry.spanVisible(fiber)
        ? Effect.provideService(traced.execute(request), Headers.CurrentRedactedNames, names)
        : Effect.updateContext(client.execute(request), (context) =>
            Context.add(
              Context.add(context, HttpClient.TracerDisabledWhen, constTrue),
              Headers.CurrentRedactedNames,
              names
            )
          )
    })
}

const withStrippedSpan = (client: HttpClient.HttpClient): HttpClient.HttpClient =>
  HttpClient.make((request, _url, _signal, fiber) => {
    const names = fiber.getRef(Headers.CurrentRedactedNames)
    return Effect.onExit(
      Effect.provideService(client.execute(request), HttpClient.TracerDisabledWhen, constTrue),
      (exit) =>
        Effect.sync(() => {
          const done = new WeakSet<object>()
          strip(request, names, done)
          for (const r of requestsOf(exit)) strip(r, names, done)
        })
    )
  })

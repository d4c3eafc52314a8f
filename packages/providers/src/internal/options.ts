/**
 * Option schemas and helpers shared by the providers.
 *
 * @internal
 */
import { Config, Effect, Redacted, Schema } from "effect"
import { Headers, HttpClient } from "effect/http"

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

/** Makes the HTTP client redact an extra header name wherever it renders request headers. */
export const redactHeader = (client: HttpClient.HttpClient, header: string): HttpClient.HttpClient =>
  HttpClient.transform(client, (effect) =>
    Effect.withFiber((fiber) =>
      Effect.provideService(effect, Headers.CurrentRedactedNames, [
        ...fiber.getRef(Headers.CurrentRedactedNames),
        header
      ])
    )
  )

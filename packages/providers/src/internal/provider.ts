/**
 * What every HTTP provider module shares when it builds its service: the common options, the key in its
 * header (redacted wherever effect/http renders headers, scrubbed from error text) and the read caps.
 *
 * @internal
 */
import { LlmProvider } from "@llm-resilience/core"
import { type Config, Effect, Redacted, Schema } from "effect"
import { HttpClient } from "effect/http"
import type { Codec } from "./codec.ts"
import { makeEngine, type Route } from "./engine.ts"
import { ByteCount, connection, defaultLimits, scrubber } from "./options.ts"

/** Option fields every provider has: `name`, extra `headers`, and the read caps. */
export const commonFields = {
  name: Schema.optional(Schema.NonEmptyString),
  headers: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  maxResponseBytes: Schema.optional(ByteCount),
  maxErrorBodyBytes: Schema.optional(ByteCount),
  maxEventBytes: Schema.optional(ByteCount),
  tracePrompts: Schema.optional(Schema.Boolean)
}

type CommonOptions = Schema.Struct.Type<typeof commonFields>

/** One provider: its wire, where calls go, and how the key is sent. */
export interface ProviderSpec {
  readonly options: CommonOptions
  readonly defaultName: string
  readonly spanPrefix: string
  readonly url: string
  readonly route?: ((model: string, stream: boolean) => Route) | undefined
  readonly urlParams?: Readonly<Record<string, string>> | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
  readonly codec: Codec
  readonly apiKey: Redacted.Redacted<string>
  /** `authorization` sends `Bearer <key>`; any other header carries the bare key. */
  readonly keyHeader: "authorization" | "api-key" | "x-api-key" | "x-goog-api-key"
}

/** The provider service of a spec on an HTTP client. */
export const makeProvider = (client: HttpClient.HttpClient, spec: ProviderSpec): LlmProvider.LlmProvider["Service"] => {
  const { options: o } = spec
  const key = Redacted.value(spec.apiKey)
  return LlmProvider.LlmProvider.of(
    makeEngine(client, {
      name: o.name ?? spec.defaultName,
      spanPrefix: spec.spanPrefix,
      url: spec.url,
      route: spec.route,
      headers: {
        ...o.headers,
        ...spec.headers,
        [spec.keyHeader]: spec.keyHeader === "authorization" ? `Bearer ${key}` : key
      },
      urlParams: spec.urlParams ?? {},
      codec: spec.codec,
      limits: {
        maxResponseBytes: o.maxResponseBytes ?? defaultLimits.maxResponseBytes,
        maxErrorBodyBytes: o.maxErrorBodyBytes ?? defaultLimits.maxErrorBodyBytes,
        maxEventBytes: o.maxEventBytes ?? defaultLimits.maxEventBytes
      },
      scrub: scrubber(spec.apiKey),
      tracePrompts: o.tracePrompts ?? false
    })
  )
}

/** Where a provider's key and base URL come from when they are not given (see `connection`). */
export interface Connect {
  readonly baseUrl: string | undefined
  readonly envPrefix: string
  readonly baseUrlVar?: string | undefined
  readonly defaultBaseUrl: string | undefined
}

/**
 * The `make` of a provider module: decodes the options (the key apart), resolves the key and base URL, and
 * builds the service of `spec` on the `HttpClient` in context.
 */
export const makeWith =
  <O extends CommonOptions>(
    decode: (input: unknown) => Effect.Effect<O, Schema.SchemaError>,
    connect: (options: O) => Connect,
    spec: (options: O, baseUrl: string) => Omit<ProviderSpec, "options" | "apiKey">
  ) =>
  (options?: {
    readonly apiKey?: Redacted.Redacted<string> | undefined
  }): Effect.Effect<
    LlmProvider.LlmProvider["Service"],
    Schema.SchemaError | Config.ConfigError,
    HttpClient.HttpClient
  > =>
    Effect.gen(function* () {
      const { apiKey: givenKey, ...rest } = options ?? {}
      const o = yield* decode(rest)
      const { apiKey, baseUrl } = yield* connection({ apiKey: givenKey, ...connect(o) })
      return makeProvider(yield* HttpClient.HttpClient, { ...spec(o, baseUrl), options: o, apiKey })
    })

/**
 * What every HTTP provider module shares when it builds its service: the common options, the key in its
 * header (redacted wherever effect/http renders headers, scrubbed from error text) and the read caps.
 *
 * @internal
 */
import { LlmProvider } from "@llm-resilience/core"
import { Redacted, Schema } from "effect"
import type { HttpClient } from "effect/http"
import type { Codec } from "./codec.ts"
import { makeEngine, type Route } from "./engine.ts"
import { ByteCount, defaultLimits, redactHeader, scrubber } from "./options.ts"

/** Option fields every provider has: `name`, extra `headers`, and the read caps. */
export const commonFields = {
  name: Schema.optional(Schema.NonEmptyString),
  headers: Schema.optional(Schema.Record(Schema.String, Schema.String)),
  maxResponseBytes: Schema.optional(ByteCount),
  maxErrorBodyBytes: Schema.optional(ByteCount),
  maxEventBytes: Schema.optional(ByteCount)
}

/** One provider: its wire, where calls go, and how the key is sent. */
export interface ProviderSpec {
  readonly options: Schema.Struct.Type<typeof commonFields>
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
    makeEngine(spec.keyHeader === "authorization" ? client : redactHeader(client, spec.keyHeader), {
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
      scrub: scrubber(spec.apiKey)
    })
  )
}

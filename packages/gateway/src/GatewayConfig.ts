/**
 * The gateway's configuration file: the providers it calls, the models and routes it serves, the policies
 * of `Resilience` (breaker, budgets, retry budget, admission, agent guard), the gateway keys of its clients
 * and, optionally, a Redis server for the state several instances share (`store`).
 *
 * The file is YAML (`.yaml`, `.yml`) or JSON, decoded with Schema; every error names the field
 * (`routes.chat.fallback[1].provider`), a syntax error the file, line and column.
 * The policy sections are `Resilience.Config`'s own schemas, so a section means the same here as in an
 * Effect program, and {@link toResilience} maps the file onto a `Resilience.Config`:
 *
 * - each route becomes a path of the same name (its fallback steps, retry profile, timeouts, hedging,
 *   mid-stream mode);
 * - each model under `models` also becomes a path of its own (`provider/model`, one step), so clients can
 *   name a model directly and list models in `fallbacks`;
 * - `budgets` is `Resilience.Config.spend`.
 *
 * API keys are never in the file: a provider names the environment variable that holds its key.
 * Gateway keys are stored as SHA-256 hashes (`sha256`), never in clear.
 *
 * @since 0.1.0
 */
import { Resilience } from "@llm-resilience/core"
import { Data, Effect, Schema } from "effect"
import * as fs from "node:fs"

const PositiveInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(1))
const NonNegativeInt = Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))

/**
 * One upstream provider: its wire format (`kind`), base URL, and the name of the environment variable that
 * holds its API key (default `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` / `GEMINI_API_KEY`).
 *
 * @since 0.1.0
 */
export const ProviderConfig = Schema.Struct({
  kind: Schema.Literals(["openai", "anthropic", "gemini"]),
  baseUrl: Schema.optional(Schema.String),
  apiKeyEnv: Schema.optional(Schema.NonEmptyString),
  headers: Schema.optional(Schema.Record(Schema.String, Schema.String))
})

/**
 * One route: a model alias clients name in `model`, served by the `Resilience` path of the same name: its
 * fallback steps (required here), retry profile, timeouts, hedging and mid-stream mode (`fail`: the client
 * gets the wire's in-band error event; `continue`: the next step carries on with the answer; `buffer`).
 *
 * @since 0.1.0
 */
export const RouteConfig = Schema.Struct({
  ...Resilience.PathConfig.fields,
  fallback: Schema.Array(Resilience.StepConfig)
})

/**
 * A gateway key: the SHA-256 of the key (hex), the tenant it maps to (its spend budgets, conversation
 * guards and metrics), and the tenant's request limit per minute.
 *
 * @since 0.1.0
 */
export const KeyConfig = Schema.Struct({
  sha256: Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}$/)),
  tenant: Schema.optional(Schema.NonEmptyString),
  requestsPerMinute: Schema.optional(PositiveInt)
})

/**
 * Where the gateway listens, how long it lets in-flight requests finish on shutdown, and the largest request
 * body it reads (`maxBodyBytes`, default 32 MiB, the largest request the providers accept; a larger one gets
 * a 413 in the wire's error shape and is not read).
 *
 * @since 0.1.0
 */
export const ServerConfig = Schema.Struct({
  host: Schema.optional(Schema.String),
  port: Schema.optional(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 }))),
  shutdownGraceMs: Schema.optional(NonNegativeInt),
  maxBodyBytes: Schema.optional(PositiveInt)
})

const policies = Resilience.Config.fields

/**
 * The whole file.
 *
 * @example
 * ```ts
 * import type { GatewayConfig } from "@llm-resilience/gateway"
 * const config: GatewayConfig.GatewayConfig = {
 *   providers: { openai: { kind: "openai", apiKeyEnv: "OPENAI_API_KEY" } },
 *   models: { "openai/gpt-5.4-mini": { requestsPerMinute: 500, contextWindow: 128000 } },
 *   routes: { chat: { fallback: [{ provider: "openai", model: "gpt-5.4-mini" }], retry: "interactive" } }
 * }
 * ```
 * @since 0.1.0
 */
export const GatewayConfig = Schema.Struct({
  server: Schema.optional(ServerConfig),
  providers: Schema.Record(Schema.String, ProviderConfig),
  models: policies.models,
  routes: Schema.optional(Schema.Record(Schema.String, RouteConfig)),
  breaker: policies.breaker,
  retryBudget: policies.retryBudget,
  admission: policies.admission,
  prices: policies.prices,
  budgets: policies.spend,
  agent: policies.agent,
  limitGroups: policies.limitGroups,
  /**
   * Where state shared by several gateway instances lives (`Resilience.Config.store`: the Redis URL, key
   * prefix, what to do while Redis fails): admission limits, breaker, retry budget, spend, agent turns, and
   * the tenants' request limits.
   */
  store: policies.store,
  /** Gateway keys; without any, the gateway serves every request (for a trusted network only). */
  keys: Schema.optional(Schema.Array(KeyConfig))
})

/**
 * @since 0.1.0
 */
export type GatewayConfig = typeof GatewayConfig.Encoded

/**
 * The configuration cannot be used: `field` is the path of the offending field, or the file when it cannot
 * be read or parsed (then `line` and `column`, from 1, say where a syntax error is).
 *
 * @since 0.1.0
 */
export class GatewayConfigError extends Data.TaggedError("GatewayConfigError")<{
  readonly field: string
  readonly issue: string
  readonly line?: number
  readonly column?: number
}> {
  override get message(): string {
    const at = this.line === undefined ? this.field : `${this.field}:${this.line}:${this.column ?? 1}`
    return `invalid gateway configuration at ${at}: ${this.issue}`
  }
}

/**
 * Checks a configuration, failing with a {@link GatewayConfigError} that names the field; succeeds with the
 * configuration as given (durations as written, for {@link toResilience}).
 *
 * @example
 * ```ts
 * import { GatewayConfig } from "@llm-resilience/gateway"
 * const checked = GatewayConfig.decode({ providers: { openai: { kind: "openia" } } })
 * // fails: invalid gateway configuration at providers.openai.kind: ...
 * ```
 * @since 0.1.0
 */
export const decode = (input: unknown): Effect.Effect<GatewayConfig, GatewayConfigError> =>
  Schema.decodeUnknownEffect(GatewayConfig)(input, { errors: "first", onExcessProperty: "error" }).pipe(
    Effect.mapError((e) => {
      const invalid = Resilience.invalidConfigAt(undefined, input)(e)
      return new GatewayConfigError({ field: invalid.field, issue: invalid.issue })
    }),
    Effect.flatMap((c) => {
      for (const [name, route] of Object.entries(c.routes ?? {})) {
        if (name.includes("/")) {
          return Effect.fail(new GatewayConfigError({ field: `routes.${name}`, issue: "route names have no /" }))
        }
        if (route.fallback.length === 0) {
          return Effect.fail(new GatewayConfigError({ field: `routes.${name}.fallback`, issue: "needs a step" }))
        }
      }
      return Effect.succeed(input as GatewayConfig)
    })
  )

/** The value of a YAML document, or the error at its first syntax problem. */
const parseYaml = (Yaml: typeof import("yaml"), text: string, path: string): unknown => {
  const document = Yaml.parseDocument(text)
  const problem = document.errors[0]
  if (problem === undefined) return document.toJS()
  const at = problem.linePos?.[0]
  throw new GatewayConfigError({
    field: path,
    // the message's first line, without the position it ends with (` at line 3, column 7:`)
    issue: problem.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, ""),
    ...(at === undefined ? {} : { line: at.line, column: at.col })
  })
}

/**
 * Reads and decodes a configuration file: YAML when its name ends in `.yaml` or `.yml`, else JSON. A
 * syntax error names the file, line and column; a schema error the field.
 *
 * @example
 * ```ts
 * import { GatewayConfig } from "@llm-resilience/gateway"
 * const config = GatewayConfig.load("gateway.yaml")
 * ```
 * @since 0.1.0
 */
export const load = (path: string): Effect.Effect<GatewayConfig, GatewayConfigError> => {
  const attempt = <A>(f: () => A) =>
    Effect.try({
      try: f,
      catch: (e) =>
        e instanceof GatewayConfigError
          ? e
          : new GatewayConfigError({ field: path, issue: e instanceof Error ? e.message : String(e) })
    })
  return attempt(() => fs.readFileSync(path, "utf8")).pipe(
    Effect.flatMap((text) =>
      /\.ya?ml$/i.test(path)
        ? // the YAML parser is loaded only for a YAML file (a JSON configuration never needs it)
          Effect.flatMap(
            Effect.promise(() => import("yaml")),
            (Yaml) => attempt(() => parseYaml(Yaml, text, path))
          )
        : attempt((): unknown => JSON.parse(text))
    ),
    Effect.flatMap(decode)
  )
}

/**
 * The `Resilience.Config` a gateway configuration means: routes and models become paths, `budgets` the
 * spend guard's budgets.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { GatewayConfig } from "@llm-resilience/gateway"
 * const resilience = Effect.map(GatewayConfig.load("gateway.yaml"), GatewayConfig.toResilience)
 * ```
 * @since 0.1.0
 */
export const toResilience = (c: GatewayConfig): Resilience.Config => {
  const paths: Record<string, NonNullable<Resilience.Config["paths"]>[string]> = {}
  for (const key of Object.keys(c.models ?? {})) {
    const at = key.indexOf("/")
    paths[key] = { fallback: [{ provider: key.slice(0, at), model: key.slice(at + 1) }] }
  }
  for (const [name, path] of Object.entries(c.routes ?? {})) paths[name] = path
  return {
    ...(c.models === undefined ? {} : { models: c.models }),
    paths,
    ...(c.breaker === undefined ? {} : { breaker: c.breaker }),
    ...(c.retryBudget === undefined ? {} : { retryBudget: c.retryBudget }),
    ...(c.admission === undefined ? {} : { admission: c.admission }),
    ...(c.prices === undefined ? {} : { prices: c.prices }),
    ...(c.budgets === undefined ? {} : { spend: c.budgets }),
    ...(c.agent === undefined ? {} : { agent: c.agent }),
    ...(c.limitGroups === undefined ? {} : { limitGroups: c.limitGroups }),
    ...(c.store === undefined ? {} : { store: c.store })
  }
}

/**
 * The field of a gateway configuration that a `Resilience` configuration field came from.
 *
 * @since 0.1.0
 */
export const fieldOf = (resilienceField: string): string =>
  resilienceField.replace(/^paths\./, "routes.").replace(/^spend\b/, "budgets")

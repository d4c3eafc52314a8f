/**
 * The chaos server's command line (`llm-chaos-server`, `npm run chaos-server` in the repository): flags to
 * server options, the help text and the start-up banner.
 *
 * @internal
 */
import * as fs from "node:fs"
import { parseArgs } from "node:util"
import { Data, Effect, Runtime, Schema } from "effect"
import { type Fault, faultDescriptions, faults, type Step } from "./faults.ts"
import { RateLimits } from "./limits.ts"

/** A bad command line: the message says what is wrong; the process exits with 2 without a stack trace. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {
  override readonly [Runtime.errorExitCode] = 2
  override readonly [Runtime.errorReported] = false
}

/** The server could not start (the port is taken, the host is unknown): exit 1 with one line, no stack trace. */
export class StartError extends Data.TaggedError("StartError")<{ readonly message: string }> {
  override readonly [Runtime.errorExitCode] = 1
  override readonly [Runtime.errorReported] = false
}

/** The server options the command line sets (a subset of `ChaosServer.Options`). */
export interface ServeOptions {
  readonly host: string
  readonly port: number
  readonly scenario?: ReadonlyArray<Step>
  readonly loopScenario?: boolean
  readonly stallMs?: number
  readonly slowHeadersMs?: number
  readonly keepAliveIntervalMs?: number
  readonly retryAfterSeconds?: number
  readonly partialChunks?: number
  readonly rateLimits?: typeof RateLimits.Type
}

/** What the command line asks for. */
export type Command = { readonly _tag: "Help" } | { readonly _tag: "Serve"; readonly options: ServeOptions }

const steps: ReadonlyArray<Step> = ["ok", ...faults]

/** The `--help` text. */
export const usage = `Usage: llm-chaos-server [options]

A local HTTP server that speaks the OpenAI Chat Completions and Anthropic Messages wire formats and
injects faults: point a client's base URL at it.

Options:
  --host <host>            interface to listen on (default 127.0.0.1)
  --port <port>            port to listen on; 0 picks a free one (default 8787)
  --scenario <steps|file>  what requests that name no fault get, in order: a step, a comma-separated list
                           of steps (rate-limit,overloaded,ok), or a JSON file holding such a list or
                           {"steps": [...], "loop": true}; after the last step, normal answers
  --loop                   repeat the scenario forever
  --stall-ms <ms>          how long stalls last before the connection drops (default 30000)
  --slow-headers-ms <ms>   the wait before headers for slow-headers, before the first chunk for
                           slow-first-token (default 2000)
  --keep-alive-ms <ms>     the gap between SSE keep-alive comments (default 1000)
  --retry-after <s>        the retry-after of a 429, in seconds (default 2)
  --partial-chunks <n>     the chunks stall-mid-stream, truncated-stream and stream-error send first
                           (default half the answer)
  --rate-limits <json>     requests and tokens per minute by model, inline or in a JSON file, enforced
                           with the provider's 429 and rate-limit headers counting down, e.g.
                           '{"gpt-4o":{"requestsPerMinute":500}}' (default none: answers then carry
                           fixed rate-limit headers, which a client that reads them may obey)
  -h, --help               print this help

A request picks its fault, in order, by the x-chaos-fault header, by a /fault/<fault> path prefix, or by
the scenario; else it gets a normal answer. x-chaos-delay-ms overrides one request's stall.

Steps: ok (a normal answer) or a fault:
${faults.map((f) => `  ${f.padEnd(Math.max(...faults.map((g) => g.length)))}  ${faultDescriptions[f]}`).join("\n")}
`

const isStep = Schema.is(Schema.Literals(steps))

const ScenarioFile = Schema.Union([
  Schema.Array(Schema.String),
  Schema.Struct({ steps: Schema.Array(Schema.String), loop: Schema.optional(Schema.Boolean) })
])

const checkSteps = (names: ReadonlyArray<string>, where: string): Effect.Effect<ReadonlyArray<Step>, UsageError> => {
  const unknown = names.filter((name) => !isStep(name))
  return unknown.length === 0
    ? Effect.succeed(names.filter(isStep))
    : Effect.fail(
        new UsageError({
          message: `${where}: unknown step ${unknown.map((u) => `"${u}"`).join(", ")}; steps are ok, ${faults.join(", ")}`
        })
      )
}

const readScenarioFile = (
  file: string
): Effect.Effect<{ readonly steps: ReadonlyArray<Step>; readonly loop?: boolean }, UsageError> =>
  Effect.gen(function* () {
    const text = yield* Effect.try({
      try: () => fs.readFileSync(file, "utf8"),
      catch: (error) => new UsageError({ message: `--scenario ${file}: cannot read the file (${String(error)})` })
    })
    const json = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (error) => new UsageError({ message: `--scenario ${file}: not JSON (${String(error)})` })
    })
    const decoded = yield* Schema.decodeUnknownEffect(ScenarioFile)(json).pipe(
      Effect.mapError(
        () =>
          new UsageError({
            message: `--scenario ${file}: expected a list of steps or {"steps": [...], "loop": true}`
          })
      )
    )
    const names = "steps" in decoded ? decoded.steps : decoded
    const loop = "steps" in decoded ? decoded.loop : undefined
    return { steps: yield* checkSteps(names, `--scenario ${file}`), ...(loop === undefined ? {} : { loop }) }
  })

/** `--rate-limits`: inline JSON, or a file holding it. */
const readRateLimits = (raw: string): Effect.Effect<typeof RateLimits.Type, UsageError> =>
  Effect.gen(function* () {
    const fail = (why: string) => new UsageError({ message: `--rate-limits: ${why}` })
    const text = raw.trimStart().startsWith("{")
      ? raw
      : yield* Effect.try({
          try: () => fs.readFileSync(raw, "utf8"),
          catch: (error) => fail(`cannot read the file ${raw} (${String(error)})`)
        })
    const json = yield* Effect.try({
      try: (): unknown => JSON.parse(text),
      catch: (error) => fail(`not JSON (${String(error)})`)
    })
    return yield* Schema.decodeUnknownEffect(RateLimits)(json).pipe(
      Effect.mapError(() =>
        fail(`expected {"<model>": {"requestsPerMinute": <n>, "tokensPerMinute": <n>}} with whole numbers above 0`)
      )
    )
  })

const wholeNumber = (flag: string, raw: string | undefined): Effect.Effect<number | undefined, UsageError> =>
  raw === undefined
    ? Effect.succeed(undefined)
    : /^\d+$/.test(raw)
      ? Effect.succeed(Number(raw))
      : Effect.fail(new UsageError({ message: `--${flag}: expected a whole number, got "${raw}"` }))

/**
 * Reads the command line (without the `node` and script arguments). A value of `--scenario` that ends in
 * `.json` or names an existing file is a scenario file; otherwise it is a comma-separated list of steps.
 */
export const parse = (argv: ReadonlyArray<string>): Effect.Effect<Command, UsageError> =>
  Effect.gen(function* () {
    const { values } = yield* Effect.try({
      try: () =>
        parseArgs({
          args: [...argv],
          strict: true,
          allowPositionals: false,
          options: {
            host: { type: "string" },
            port: { type: "string" },
            scenario: { type: "string" },
            loop: { type: "boolean" },
            "stall-ms": { type: "string" },
            "slow-headers-ms": { type: "string" },
            "keep-alive-ms": { type: "string" },
            "retry-after": { type: "string" },
            "partial-chunks": { type: "string" },
            "rate-limits": { type: "string" },
            help: { type: "boolean", short: "h" }
          }
        }),
      catch: (error) => new UsageError({ message: error instanceof Error ? error.message : String(error) })
    })
    if (values.help === true) return { _tag: "Help" } as const

    const port = (yield* wholeNumber("port", values.port)) ?? 8787
    if (port > 65535) return yield* new UsageError({ message: `--port: ${port} is not a port (0 to 65535)` })
    const raw = values.scenario
    const scenario =
      raw === undefined
        ? undefined
        : raw.endsWith(".json") || fs.existsSync(raw)
          ? yield* readScenarioFile(raw)
          : {
              steps: yield* checkSteps(
                raw.split(",").map((s) => s.trim()),
                "--scenario"
              )
            }
    const loop = values.loop === true ? true : scenario?.loop
    if (loop === true && scenario === undefined) {
      return yield* new UsageError({ message: "--loop needs a --scenario" })
    }
    const numbers = {
      stallMs: yield* wholeNumber("stall-ms", values["stall-ms"]),
      slowHeadersMs: yield* wholeNumber("slow-headers-ms", values["slow-headers-ms"]),
      keepAliveIntervalMs: yield* wholeNumber("keep-alive-ms", values["keep-alive-ms"]),
      retryAfterSeconds: yield* wholeNumber("retry-after", values["retry-after"]),
      partialChunks: yield* wholeNumber("partial-chunks", values["partial-chunks"])
    }
    if (numbers.keepAliveIntervalMs === 0) {
      return yield* new UsageError({ message: "--keep-alive-ms: must be at least 1" })
    }
    const rateLimits = values["rate-limits"] === undefined ? undefined : yield* readRateLimits(values["rate-limits"])
    const options: ServeOptions = {
      host: values.host ?? "127.0.0.1",
      port,
      ...(scenario === undefined ? {} : { scenario: scenario.steps }),
      ...(loop === undefined ? {} : { loopScenario: loop }),
      ...Object.fromEntries(Object.entries(numbers).filter(([, v]) => v !== undefined)),
      ...(rateLimits === undefined ? {} : { rateLimits })
    }
    return { _tag: "Serve", options } as const
  })

/** The start-up banner: where the server listens and how to pick a fault. */
export const banner = (chaos: {
  readonly url: string
  readonly openAiBaseUrl: (fault?: Fault) => string
  readonly anthropicBaseUrl: (fault?: Fault) => string
}): string =>
  [
    `chaos server listening on ${chaos.url}`,
    "",
    `  OpenAI base URL:    ${chaos.openAiBaseUrl()}      (POST /v1/chat/completions)`,
    `  Anthropic base URL: ${chaos.anthropicBaseUrl()}         (POST /v1/messages)`,
    "",
    "Pick a fault per request with a header or a path prefix:",
    `  curl -s ${chaos.url}/v1/chat/completions -H 'x-chaos-fault: rate-limit' \\`,
    `       -H 'content-type: application/json' -d '{"model":"gpt-5-mini","messages":[{"role":"user","content":"hi"}]}'`,
    `  OpenAI SDK:    baseURL: "${chaos.openAiBaseUrl("overloaded")}"`,
    `  Anthropic SDK: baseURL: "${chaos.anthropicBaseUrl("overloaded")}"`,
    "",
    "llm-chaos-server --help lists the faults and options. Ctrl-C to stop."
  ].join("\n")

/**
 * The gateway's command line: `llm-resilience gateway --config gateway.yaml` (or
 * `llm-resilience-gateway --config gateway.yaml`). It loads the file, starts the gateway, prints the address
 * it listens on, and runs until SIGTERM / SIGINT, then drains in-flight requests and exits 0.
 *
 * @since 0.1.0
 */
import { parseArgs } from "node:util"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Console, Data, Effect, Exit, Layer, Runtime } from "effect"
import { HttpServer } from "effect/http"
import * as Gateway from "./Gateway.ts"
import * as GatewayConfig from "./GatewayConfig.ts"

/**
 * The usage text.
 *
 * @since 0.1.0
 */
export const usage = `Usage: llm-resilience gateway --config <file> [options]

Serves the OpenAI Chat Completions and Anthropic Messages APIs in front of the providers the file
configures, with every policy of @llm-resilience/core on each call.

Options:
  --config <file>          the configuration (YAML or JSON); see docs/gateway.md
  --port <port>            listen on this port (overrides server.port; default 8080)
  --host <host>            listen on this host (overrides server.host; default 127.0.0.1)
  -h, --help               print this help

Routes: POST /v1/chat/completions, POST /v1/messages, GET /v1/models, GET /metrics, GET /healthz, GET /readyz`

/**
 * A bad command line or configuration: exit 2 with the message.
 *
 * @since 0.1.0
 */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {
  override readonly [Runtime.errorExitCode] = 2
  override readonly [Runtime.errorReported] = false
}

const parse = (argv: ReadonlyArray<string>) =>
  Effect.try({
    try: () =>
      parseArgs({
        args: [...(argv[0] === "gateway" ? argv.slice(1) : argv)],
        options: {
          config: { type: "string" },
          port: { type: "string" },
          host: { type: "string" },
          help: { type: "boolean", short: "h" }
        }
      }).values,
    catch: (e) => new UsageError({ message: (e as Error).message })
  })

/**
 * The gateway program for a command line (without the node and script paths).
 *
 * @example
 * ```ts
 * import { GatewayCli } from "@llm-resilience/gateway"
 * const run = GatewayCli.program(["--config", "gateway.yaml"])
 * ```
 * @since 0.1.0
 */
export const program = (argv: ReadonlyArray<string>): Effect.Effect<void, UsageError> =>
  Effect.gen(function* () {
    const args = yield* parse(argv)
    if (args.help === true) return yield* Console.log(usage)
    if (args.config === undefined) return yield* new UsageError({ message: `--config is required\n\n${usage}` })
    const port = args.port === undefined ? undefined : Number(args.port)
    if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
      return yield* new UsageError({ message: `--port must be a port number, got ${args.port}` })
    }
    const loaded = yield* GatewayConfig.load(args.config)
    const config: GatewayConfig.GatewayConfig = {
      ...loaded,
      server: {
        ...loaded.server,
        ...(port === undefined ? {} : { port }),
        ...(args.host === undefined ? {} : { host: args.host })
      }
    }
    const announce = Layer.effectDiscard(
      Effect.flatMap(HttpServer.HttpServer, (server) =>
        Console.log(`llm-resilience gateway listening on ${HttpServer.formatAddress(server.address)}`)
      )
    )
    return yield* Layer.launch(announce.pipe(Layer.provide(Gateway.layer(config))))
  }).pipe(
    Effect.catchTags({
      GatewayConfigError: (e) => Effect.fail(new UsageError({ message: e.message })),
      ServeError: (e) => Effect.fail(new UsageError({ message: `cannot listen: ${String(e.cause)}` }))
    }),
    Effect.tapError((e) => Console.error(e.message))
  )

/**
 * Runs a program that serves the gateway as the process: SIGTERM or SIGINT interrupts it (the gateway
 * drains) and the process exits 0; a failure exits non-zero.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { Gateway, GatewayCli, GatewayConfig } from "@llm-resilience/gateway"
 * GatewayCli.run(Effect.flatMap(GatewayConfig.load("gateway.yaml"), (c) => Layer.launch(Gateway.layer(c))))
 * ```
 * @since 0.1.0
 */
export const run = <E>(self: Effect.Effect<void, E>): void =>
  NodeRuntime.runMain(self, {
    // a signal ends the program by interruption: after a drain, that is a clean exit
    teardown: (exit, onExit) =>
      Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
  })

/**
 * Runs {@link program} for a command line as the process (see {@link run}).
 *
 * @example
 * ```ts
 * import { GatewayCli } from "@llm-resilience/gateway"
 * GatewayCli.main(process.argv.slice(2))
 * ```
 * @since 0.1.0
 */
export const main = (argv: ReadonlyArray<string>): void => run(program(argv))

#!/usr/bin/env node
/**
 * `llm-chaos-server` (`npm run chaos-server -- <options>` in the repository): starts the chaos server and
 * prints its base URLs. `--help` lists the options and the faults.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Console, Effect, Layer } from "effect"
import * as ChaosServer from "../src/ChaosServer.ts"
import { banner, parse, StartError, usage } from "../src/internal/chaos/cli.ts"

const main = Effect.gen(function* () {
  const command = yield* parse(process.argv.slice(2))
  if (command._tag === "Help") return yield* Console.log(usage)
  const printBanner = Effect.flatMap(ChaosServer.ChaosServer, (chaos) => Console.log(banner(chaos)))
  const { host, port } = command.options
  return yield* Layer.launch(
    Layer.effectDiscard(printBanner).pipe(Layer.provide(ChaosServer.layer(command.options)))
  ).pipe(
    Effect.catchTag("ServeError", (error) =>
      Effect.fail(new StartError({ message: `cannot listen on ${host}:${port}: ${String(error.cause)}` }))
    )
  )
}).pipe(
  Effect.tapError((error) =>
    error._tag === "UsageError"
      ? Console.error(`${error.message}\nRun with --help for the options.`)
      : error._tag === "StartError"
        ? Console.error(error.message)
        : Effect.void
  )
)

NodeRuntime.runMain(main)

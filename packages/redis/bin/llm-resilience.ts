#!/usr/bin/env -S node --max-semi-space-size=16
/**
 * `llm-resilience dlq list|show|replay|purge`: the dead-letter queue of a durable queue kept in Redis.
 * `llm-resilience gateway --config <file>`: the gateway (`@llm-resilience/gateway`, when installed).
 * `--help` lists the options.
 *
 * Node runs with the flags of `llm-resilience-gateway`'s own `#!` line (16 MB semi-spaces: a busy gateway's
 * lower resident memory, see docs/architecture.md), so the gateway runs the same whichever command starts it;
 * they change nothing measurable for the short `dlq` commands. A flag cannot be given to the running Node
 * later (V8 sizes its heap at startup), hence the `#!` line rather than a switch in the `gateway` branch.
 */
import { NodeRedis, NodeRuntime } from "@effect/platform-node"
import { Console, Data, Effect, Layer, Option, References, Runtime } from "effect"
import { DurableQueue } from "@llm-resilience/core"
import { RedisQueue } from "../src/index.ts"
import { type Command, parse, renderList, usage, UsageError } from "../src/internal/dlqCli.ts"

/** Redis cannot be reached: exit 1 with one line. */
class Unreachable extends Data.TaggedError("Unreachable")<{ readonly message: string }> {
  override readonly [Runtime.errorReported] = false
}

const run = (command: Extract<Command, { _tag: "Dlq" }>) =>
  Effect.gen(function* () {
    const queue = yield* DurableQueue.DurableQueue
    switch (command.action) {
      case "list":
        return yield* Console.log(renderList(yield* queue.deadLetters, command.json))
      case "show": {
        const job = yield* queue.status(command.ticket!)
        if (Option.isNone(job) || job.value.status !== "dead") {
          return yield* new UsageError({ message: `no dead job with ticket ${command.ticket}` })
        }
        return yield* Console.log(JSON.stringify(job.value, null, 2))
      }
      case "replay":
        return yield* Console.log(`replayed ${yield* queue.replay(command.ticket)}`)
      case "purge":
        return yield* Console.log(`purged ${yield* queue.purge(command.ticket)}`)
    }
  }).pipe(
    Effect.provide(
      RedisQueue.layer({ name: command.queue, prefix: command.prefix }).pipe(
        Layer.provide(NodeRedis.layer({ url: command.redisUrl, disableOfflineQueue: true }))
      )
    ),
    Effect.catchTag("RedisError", (e) =>
      Effect.fail(new Unreachable({ message: `cannot reach Redis at ${command.redisUrl}: ${String(e.cause)}` }))
    ),
    // node-redis' connection warnings would bury the one line that matters
    Effect.provideService(References.MinimumLogLevel, "None")
  )

const main = Effect.flatMap(parse(process.argv.slice(2), process.env), (command) =>
  command._tag === "Help" ? Console.log(usage) : run(command)
).pipe(
  Effect.tapError((error) =>
    Console.error(
      error._tag === "UsageError" ? `${error.message}\nRun with --help for the commands.` : String(error.message)
    )
  )
)

/** `llm-resilience gateway ...` is the gateway's command line, when `@llm-resilience/gateway` is installed. */
const gateway = async (argv: ReadonlyArray<string>): Promise<void> => {
  const specifier = "@llm-resilience/gateway"
  try {
    const { GatewayCli } = (await import(specifier)) as {
      readonly GatewayCli: { readonly main: (argv: ReadonlyArray<string>) => void }
    }
    GatewayCli.main(argv)
  } catch (error) {
    if ((error as { code?: unknown }).code !== "ERR_MODULE_NOT_FOUND") throw error
    console.error("llm-resilience gateway needs @llm-resilience/gateway: npm install @llm-resilience/gateway")
    process.exitCode = 2
  }
}

if (process.argv[2] === "gateway") void gateway(process.argv.slice(2))
else NodeRuntime.runMain(main)

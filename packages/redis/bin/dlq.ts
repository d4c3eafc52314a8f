/**
 * `llm-resilience dlq list|show|replay|purge`: the dead-letter queue of a durable queue kept in Redis (loaded by
 * `llm-resilience` for every command but `gateway`).
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

NodeRuntime.runMain(main)

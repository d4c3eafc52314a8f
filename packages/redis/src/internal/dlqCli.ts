/**
 * The `llm-resilience` command line: `dlq list|show|replay|purge` over a Redis queue. Parsing and
 * rendering are here; `bin/llm-resilience.ts` connects and runs.
 *
 * @internal
 */
import { parseArgs } from "node:util"
import type { DurableQueue } from "@llm-resilience/core"
import { Data, Effect, Runtime } from "effect"

/** A bad command line: exit 2 with the message, no stack trace. */
export class UsageError extends Data.TaggedError("UsageError")<{ readonly message: string }> {
  override readonly [Runtime.errorExitCode] = 2
  override readonly [Runtime.errorReported] = false
}

/** What the command line asks for. */
export type Command =
  | { readonly _tag: "Help" }
  | {
      readonly _tag: "Dlq"
      readonly action: "list" | "show" | "replay" | "purge"
      /** A ticket, or `undefined` for all (`--all`). */
      readonly ticket: string | undefined
      readonly redisUrl: string
      readonly queue: string
      readonly prefix: string
      readonly json: boolean
    }

export const usage = `Usage: llm-resilience dlq <command> [options]
       llm-resilience gateway --config <file>   (with @llm-resilience/gateway installed; see its --help)

Inspects and repairs the dead-letter queue of a durable queue kept in Redis.

Commands:
  dlq list                 the dead jobs, oldest first: ticket, reason, attempts, when they died
  dlq show <ticket>        one dead job: its request and every attempt's error (JSON)
  dlq replay <ticket>      queue a dead job again with fresh attempts
  dlq replay --all         queue every dead job again
  dlq purge <ticket>       delete a dead job
  dlq purge --all          delete every dead job

Options:
  --redis <url>            the Redis server (default: $REDIS_URL, else redis://127.0.0.1:6379)
  --queue <name>           the queue's name (default llm-later)
  --prefix <prefix>        the queue's key prefix (default llmq:)
  --json                   print list as JSON lines
  -h, --help               print this help`

/** Parses `argv` (without the node and script paths). */
export const parse = (argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv): Effect.Effect<Command, UsageError> =>
  Effect.suspend((): Effect.Effect<Command, UsageError> => {
    let parsed
    try {
      parsed = parseArgs({
        args: [...argv],
        allowPositionals: true,
        options: {
          redis: { type: "string" },
          queue: { type: "string" },
          prefix: { type: "string" },
          all: { type: "boolean" },
          json: { type: "boolean" },
          help: { type: "boolean", short: "h" }
        }
      })
    } catch (e) {
      return Effect.fail(new UsageError({ message: (e as Error).message }))
    }
    const { values, positionals } = parsed
    if (values.help === true || positionals.length === 0) return Effect.succeed({ _tag: "Help" })
    const [group, action, ticket, ...extra] = positionals
    const usageError = (message: string) => Effect.fail(new UsageError({ message }))
    if (group !== "dlq") return usageError(`unknown command: ${group}`)
    if (action !== "list" && action !== "show" && action !== "replay" && action !== "purge") {
      return usageError(action === undefined ? "dlq needs a command" : `unknown dlq command: ${action}`)
    }
    if (extra.length > 0) return usageError(`unexpected arguments: ${extra.join(" ")}`)
    const all = values.all === true
    if (action === "list" && (ticket !== undefined || all)) return usageError("dlq list takes no ticket")
    if (action === "show" && (ticket === undefined || all)) return usageError("dlq show needs one ticket")
    if ((action === "replay" || action === "purge") && (ticket === undefined) === !all) {
      return usageError(`dlq ${action} needs a ticket or --all (not both)`)
    }
    return Effect.succeed({
      _tag: "Dlq",
      action,
      ticket,
      redisUrl: values.redis ?? env.REDIS_URL ?? "redis://127.0.0.1:6379",
      queue: values.queue ?? "llm-later",
      prefix: values.prefix ?? "llmq:",
      json: values.json === true
    })
  })

const iso = (ms: number | undefined) => (ms === undefined ? "-" : new Date(ms).toISOString())

/** The `dlq list` table (or JSON lines). */
export const renderList = (jobs: ReadonlyArray<DurableQueue.Job>, json: boolean): string => {
  if (json) {
    return jobs
      .map((j) => JSON.stringify({ ticket: j.ticket, reason: j.reason, attempts: j.attempts, deadAt: j.finishedAt }))
      .join("\n")
  }
  if (jobs.length === 0) return "the dead-letter queue is empty"
  const rows = [
    ["TICKET", "REASON", "ATTEMPTS", "DIED AT", "LAST ERROR"],
    ...jobs.map((j) => [
      j.ticket,
      j.reason ?? "-",
      String(j.attempts),
      iso(j.finishedAt),
      (j.failures.at(-1)?.message ?? "-").slice(0, 60)
    ])
  ]
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join("  ")
        .trimEnd()
    )
    .join("\n")
}

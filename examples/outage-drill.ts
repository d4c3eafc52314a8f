/**
 * The outage drill: the main job of `npm start`.
 *
 * Plays one scripted day of trouble (examples/drill/scenario.ts) on the simulated provider in virtual time,
 * once through a naive client and once through `Resilience`, prints a side-by-side table, and writes
 * `drill-report.html` with a timeline of each run. No API key and no network; it runs in seconds.
 *
 *   npm start            # table + drill-report.html, progress on stderr
 *   npm start -- --json  # one JSON object {"naive":{...},"resilient":{...}} on stdout
 */
import { writeFileSync } from "node:fs"
import { Effect, Logger } from "effect"
import * as Report from "./drill/report.ts"
import { runDay } from "./drill/run.ts"
import * as Day from "./drill/scenario.ts"

const json = process.argv.includes("--json")

const progress = (label: string) => (virtualMs: number) =>
  Effect.sync(() => {
    const total = Day.dayMs + 15 * Day.minute
    const done = Math.min(1, virtualMs / total)
    const bar = "#".repeat(Math.round(done * 30)).padEnd(30, ".")
    process.stderr.write(
      `\r${label.padEnd(10)} [${bar}] ${Math.round(virtualMs / Day.minute)} of ${total / Day.minute} virtual min`
    )
    if (done === 1) process.stderr.write("\n")
  })

const program = Effect.gen(function* () {
  const naive = yield* runDay("naive", progress("naive"))
  const resilient = yield* runDay("resilient", progress("resilient"))
  writeFileSync("drill-report.html", Report.html(naive, resilient))
  if (json) {
    process.stdout.write(`${JSON.stringify({ naive: naive.summary, resilient: resilient.summary })}\n`)
  } else {
    console.log(`\n${Report.table(naive.summary, resilient.summary)}\n`)
    console.log(`agent turns before the loop was stopped: naive ${naive.agentTurns}, resilient ${resilient.agentTurns}`)
    console.log("timeline: drill-report.html")
  }
})

// the drill's own warnings (fallback activations are logged by the toolkit) would drown the table
Effect.runPromise(program.pipe(Effect.provide(Logger.layer([])))).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})

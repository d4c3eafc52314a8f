/**
 * The outage drill: the main job of `npm start`.
 *
 * Plays one scripted day of trouble (examples/drill/scenario.ts) on the simulated provider in virtual time,
 * once through a naive client and once through `Resilience`, prints a side-by-side table (with a line of
 * explanation under each figure on which the resilient run looks worse), and writes `drill-report.html` with a
 * timeline of each run. No API key and no network; it runs in seconds.
 *
 *   npm start            # table + drill-report.html, progress on stderr (redrawn on a terminal, a line per
 *                        # update when piped)
 *   npm start -- --json  # one JSON object {"naive":{...},"resilient":{...}} on stdout
 */
import { writeFileSync } from "node:fs"
import { Effect } from "effect"
import * as Report from "./drill/report.ts"
import { runDay } from "./drill/run.ts"

const json = process.argv.includes("--json")

// on a terminal the progress line is redrawn in place; piped into a log, each update is a line of its own
const redraw = process.stderr.isTTY === true

const progress = (label: string) => (virtualMs: number) =>
  Effect.sync(() => process.stderr.write(Report.progress(label, virtualMs, redraw)))

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

Effect.runPromise(program).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})

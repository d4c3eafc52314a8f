/**
 * The quality drill: `npm run drill:quality`.
 *
 * Reproduces the three bugs of a provider's postmortem that degraded answers for weeks while every call
 * succeeded (examples/quality/scenario.ts), each on a simulated provider in virtual time at 100 requests
 * per minute, behind a fallback plan with the output monitor and the quality breaker. Prints the time to
 * detection of each bug and the false alarms over a simulated healthy week, and writes
 * `quality-report.html` with the signal lines and the moments of detection. No API key, no network.
 *
 *   npm run drill:quality            # table + quality-report.html
 *   npm run drill:quality -- --json  # one JSON object on stdout
 */
import { writeFileSync } from "node:fs"
import { Effect } from "effect"
import * as Report from "./quality/report.ts"
import { runBug, runHealthy } from "./quality/run.ts"
import * as Q from "./quality/scenario.ts"

const json = process.argv.includes("--json")

const program = Effect.gen(function* () {
  const runs = []
  for (const bug of Q.bugs) {
    process.stderr.write(`bug: ${Q.bugLabel[bug]} ...\n`)
    runs.push(yield* runBug(bug))
  }
  process.stderr.write("a healthy week ...\n")
  const healthy = yield* runHealthy(Q.week / Q.minute)
  writeFileSync("quality-report.html", Report.html(runs, healthy))
  if (json) {
    const figures = runs.map(({ timeline: _, evidence: __, ...r }) => r)
    process.stdout.write(`${JSON.stringify({ bugs: figures, healthy })}\n`)
  } else {
    console.log(`\n${Report.table(runs, healthy)}\n`)
    console.log("signal lines: quality-report.html")
  }
})

Effect.runPromise(program).catch((error: unknown) => {
  console.error(error)
  process.exitCode = 1
})

/**
 * The outage drill's acceptance, kept as a regression test: the resilient run of the scripted day must keep
 * the figures the product promises, whatever the naive run produces.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Report from "../drill/report.ts"
import { resilientConfig, runDay } from "../drill/run.ts"
import * as Day from "../drill/scenario.ts"

const quiet = () => Effect.void

describe("outage drill", () => {
  it("redraws its progress line only on a terminal; piped, every update is a line", () => {
    const updates = [10, 70, 135].map((m) => m * Day.minute)
    const piped = updates.map((ms) => Report.progress("naive", ms, false)).join("")
    expect(piped).not.toContain("\r")
    expect(piped.split("\n")).toHaveLength(updates.length + 1)
    const tty = updates.map((ms) => Report.progress("naive", ms, true))
    expect(tty.every((text) => text.startsWith("\r"))).toBe(true)
    expect(tty.map((text) => text.endsWith("\n"))).toEqual([false, false, true])
  })

  it.live("the resilient run keeps its promises on the day of trouble", () =>
    Effect.gen(function* () {
      const naive = yield* runDay("naive", quiet)
      const resilient = yield* runDay("resilient", quiet)
      const r = resilient.summary
      const interactiveDeadlineMs = 10_000 // the interactive retry profile's deadline
      expect(r.amplification).toBeLessThanOrEqual(1.1)
      expect(r.outageCallsToPrimary).toBeLessThanOrEqual(15)
      expect(r.interactiveSuccessRate).toBeGreaterThanOrEqual(0.99)
      expect(r.interactiveP99Ms).toBeLessThanOrEqual(interactiveDeadlineMs)
      expect(r.rateLimited429).toBeLessThan(naive.summary.rateLimited429)
      // the runaway agent is stopped at turn 21 by the turn guard
      expect(resilient.agentTurns).toBe(21)
      expect(naive.agentTurns).toBeGreaterThan(21)
      // the drill measures the configuration it documents
      expect(resilientConfig.agent?.maxTurns).toBe(20)

      // the storm's batch requests that could not start within a minute were accepted for later, and the
      // queue's workers answered every one of them after the storm, within the day
      expect(r.acceptedForLater).toBeGreaterThan(100)
      expect(r.answeredLater).toBe(r.acceptedForLater)
      expect(r.lastLaterAnswerAtMs).toBeGreaterThan(Day.storm.at)
      expect(r.lastLaterAnswerAtMs).toBeLessThan(Day.dayMs)
      expect(r.successRate + r.acceptedForLater / r.requests).toBeGreaterThanOrEqual(0.999)
      expect(naive.summary.acceptedForLater).toBe(0)

      // where the resilient run looks worse (cost), the table and the report say why
      const n = naive.summary
      expect(r.costUsd).toBeGreaterThan(n.costUsd)
      const notes = Report.explanations(n, r)
      expect(notes.map((e) => e.label)).toEqual(["cost (USD)"])
      expect(notes[0].why).toContain(`${r.servedByFallback} answers came from the fallback model`)
      const table = Report.table(n, r)
      const html = Report.html(naive, resilient)
      for (const note of notes) {
        expect(table).toContain(`* ${note.label}: ${note.why}`)
        expect(html).toContain(`<td class="why">${note.why}</td>`)
      }
      expect(table).not.toContain("no known reason")

      // the progress line and the report agree on the simulated span: the day and the drain after it
      const minutes = Day.simulatedMs / Day.minute
      expect(minutes).toBe(135)
      expect(Report.progress("resilient", Day.simulatedMs, false)).toContain(`${minutes} of ${minutes} virtual min`)
      expect(html).toContain(`${minutes} virtual minutes in all`)
    })
  )
})

/**
 * The outage drill's acceptance, kept as a regression test: the resilient run of the scripted day must keep
 * the figures the product promises, whatever the naive run produces.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { resilientConfig, runDay } from "../drill/run.ts"

const quiet = () => Effect.void

describe("outage drill", () => {
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
    })
  )
})

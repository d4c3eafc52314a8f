/**
 * The quality drill's figures, kept as a regression test: each of the postmortem's three bugs is detected
 * within 60 virtual minutes by the signal that should see it, the quality breaker moves the traffic at the
 * next call, and the healthy warm-ups raise no alarm. The healthy week is measured by the drill itself
 * (`npm run drill:quality`; figures in docs/benchmarks.md): a million outputs take too long for the suite.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Report from "../quality/report.ts"
import { runBug, runHealthy } from "../quality/run.ts"
import * as Q from "../quality/scenario.ts"

describe("quality drill", () => {
  it.live("detects each bug within 60 virtual minutes and moves the traffic at once", () =>
    Effect.gen(function* () {
      const runs = []
      for (const bug of Q.bugs) runs.push(yield* runBug(bug))
      const [context, script, wrong] = runs
      // the figures in docs/benchmarks.md
      expect(runs.map((r) => (r.detectedAfterMs ?? Infinity) / Q.minute)).toEqual([15, 17, 24])
      for (const r of runs) {
        expect(r.detectedAfterMs).toBeLessThanOrEqual(60 * Q.minute)
        expect(r.falseAlarms).toBe(0)
        // the breaker moves the traffic at the next call, and keeps a trickle of probes on the primary
        expect(r.movedAfterMs).toBe(0)
        expect(r.probeShare).toBeGreaterThan(0.02)
        expect(r.probeShare).toBeLessThan(0.1)
      }
      // each bug is seen by the signal meant for it, and the evidence shows it
      expect(context.signals).toContain("embedding")
      expect(context.evidence?.samples.some((s) => /conversation|document|attachment/.test(s))).toBe(true)
      expect(script.signals).toEqual(["mixed_script"])
      expect(
        script.evidence?.samples.every((s) => /[\u0370-\u06ff\u0e00-\u0e7f\u4e00-\u9fff\uac00-\ud7af]/.test(s))
      ).toBe(true)
      expect(wrong.signals).toEqual(["judge_failure"])
      expect(wrong.evidence?.effect).toBeGreaterThan(0.05)

      const healthy = yield* runHealthy(3 * 60)
      expect(healthy.falseAlarms).toEqual([])
      const html = Report.html(runs, healthy)
      expect(html).toContain("detected after 15 min")
      expect(html).toContain("detected after 24 min")
    })
  )
})

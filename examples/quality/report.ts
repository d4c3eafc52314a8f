/**
 * The quality drill's outputs: a table for the terminal and `quality-report.html`, a self-contained page
 * (inline SVG, no scripts, no network) with the monitor's signal lines per bug and the moment of detection.
 */
import type { BugRun, HealthyRun, Minute } from "./run.ts"
import * as Q from "./scenario.ts"
import { baseStyle, esc } from "../html.ts"

const minutes = (ms: number | undefined) => (ms === undefined ? "not detected" : `${(ms / Q.minute).toFixed(0)} min`)

/** The table printed at the end of the drill. */
export const table = (runs: ReadonlyArray<BugRun>, healthy: HealthyRun): string => {
  const w = Math.max(...runs.map((r) => Q.bugLabel[r.bug].length))
  const lines = [`${"bug".padEnd(w)}  ${"detected after".padStart(14)}  ${"by".padEnd(16)}  traffic moved after`]
  for (const r of runs) {
    lines.push(
      `${Q.bugLabel[r.bug].padEnd(w)}  ${minutes(r.detectedAfterMs).padStart(14)}  ${r.signals.join(", ").padEnd(16)}  ${
        r.movedAfterMs === undefined ? "-" : `${(r.movedAfterMs / 1000).toFixed(0)} s (the next call)`
      }`
    )
  }
  const days = healthy.minutes / (24 * 60)
  lines.push(
    "",
    `false alarms over ${days} healthy day(s) at ${Q.requestsPerMinute} requests/min (${healthy.requests.toLocaleString("en-US")} outputs): ${healthy.falseAlarms.length}` +
      healthy.falseAlarms.map((a) => ` [${a.signal} at ${(a.at / Q.hour).toFixed(1)} h]`).join("")
  )
  return lines.join("\n")
}

const chart = (run: BugRun): string => {
  const width = 960
  const height = 240
  const left = 48
  const top = 16
  const plotW = width - left - 40
  const plotH = height - top - 36
  const timeline = run.timeline
  const first = timeline[0]?.minute ?? 0
  const span = Math.max(1, timeline.length)
  const x = (minute: number) => left + ((minute - first) / span) * plotW
  // rates on 0..20%, the embedding ratio on 0..5 (its threshold is 2)
  const yRate = (v: number) => top + plotH - Math.min(1, v / 0.2) * plotH
  const yRatio = (v: number) => top + plotH - Math.min(1, v / 5) * plotH
  const line = (pick: (m: Minute) => number | undefined, y: (v: number) => number) => {
    let d = ""
    for (const m of timeline) {
      const v = pick(m)
      if (v === undefined || !Number.isFinite(v)) continue
      d += `${d === "" ? "M" : "L"}${x(m.minute + 0.5).toFixed(1)},${y(v).toFixed(1)} `
    }
    return d
  }
  const fallback = timeline
    .map((m) =>
      m.fallback > 0
        ? `<rect x="${x(m.minute).toFixed(1)}" y="${(top + plotH * (1 - m.fallback)).toFixed(1)}" width="${(plotW / span).toFixed(2)}" height="${(plotH * m.fallback).toFixed(1)}" fill="#5dade2" opacity="0.25"/>`
        : ""
    )
    .join("")
  const marks = [{ at: 0, label: "bug starts" }]
  if (run.detectedAfterMs !== undefined) {
    marks.push({ at: run.detectedAfterMs / Q.minute, label: `detected (${run.signals.join(", ")})` })
  }
  const markup = marks
    .map((m) => {
      const mx = x(m.at)
      return `<line x1="${mx}" y1="${top}" x2="${mx}" y2="${top + plotH}" stroke="#888" stroke-dasharray="4 3"/><text x="${mx + 3}" y="${top + 12}" font-size="11" fill="#555">${esc(m.label)}</text>`
    })
    .join("")
  const ticks = timeline
    .filter((m) => m.minute % 30 === 0)
    .map(
      (m) =>
        `<text x="${x(m.minute)}" y="${top + plotH + 16}" font-size="11" text-anchor="middle" fill="#555">${m.minute} min</text>`
    )
    .join("")
  const title = Q.bugLabel[run.bug]
  return `<figure>
<figcaption>${esc(title)}: detected after ${minutes(run.detectedAfterMs)}</figcaption>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(title)}">
<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="#fafafa" stroke="#ddd"/>
${fallback}${markup}
<path d="${line((m) => m.judgeFailure, yRate)}" fill="none" stroke="#c0392b" stroke-width="1.5"/>
<path d="${line((m) => m.mixedScript, yRate)}" fill="none" stroke="#7d3c98" stroke-width="1.5"/>
<path d="${line((m) => m.embedding, yRatio)}" fill="none" stroke="#2e86c1" stroke-width="1.5"/>
${ticks}
<text x="${left - 6}" y="${top + 10}" font-size="11" text-anchor="end" fill="#555">20% / 5x</text>
<text x="${left - 6}" y="${top + plotH}" font-size="11" text-anchor="end" fill="#555">0</text>
</svg>
</figure>`
}

/** `quality-report.html`: a chart per bug and the figures. */
export const html = (runs: ReadonlyArray<BugRun>, healthy: HealthyRun): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>llm-resilience quality drill</title>
<style>
${baseStyle}
pre { background: #f6f6f6; padding: 12px; overflow-x: auto; }
</style>
</head>
<body>
<h1>Quality drill: silent degradation at 100 requests/min</h1>
<p>Each bug runs on the primary model after ${Q.warmupMs / Q.hour} hours of healthy traffic, in virtual time,
behind a fallback plan whose circuit check is the quality breaker. The lines are the output monitor's values over
its current window (the last 30 minutes), as exported in <code>llm_output_signal</code>; the shaded area is the
share of each minute's requests answered by the fallback.</p>
<p class="legend">
<span><i class="sw" style="background:#c0392b"></i>judge failure rate (0 to 20%)</span>
<span><i class="sw" style="background:#7d3c98"></i>mixed-script rate (0 to 20%)</span>
<span><i class="sw" style="background:#2e86c1"></i>embedding: centroid distance / distance by chance (0 to 5)</span>
<span><i class="sw" style="background:#5dade2;height:10px;opacity:.5"></i>answered by the fallback</span>
</p>
${runs.map(chart).join("\n")}
<h2>Figures</h2>
<pre>${esc(table(runs, healthy))}</pre>
</body>
</html>
`

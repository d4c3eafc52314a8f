/**
 * The drill's outputs: a side-by-side table for the terminal and `drill-report.html`, a self-contained page
 * (inline SVG, no scripts, no network) with a timeline per run.
 */
import type { Minute, RunResult, Summary } from "./run.ts"
import * as Day from "./scenario.ts"
import { baseStyle, esc } from "../html.ts"

/** One figure of the summary: its label, and which direction is better where one is. */
interface Row {
  readonly key: keyof Summary
  readonly label: string
  readonly better?: "lower" | "higher"
  /** Why the resilient run can show a worse figure than the naive one, in one line. */
  readonly why?: (naive: Summary, resilient: Summary) => string
}

const fmt = (v: number) => (Number.isInteger(v) ? v.toLocaleString("en-US") : String(v))

const queuedNotFailed = (naive: Summary, resilient: Summary) =>
  `background work waited its turn in the admission queue through the storm (background p99 ${fmt(resilient.backgroundP99Ms)} ms) ` +
  `instead of failing on 429s (${fmt(naive.rateLimited429)} for the naive run); interactive p99 is ${fmt(resilient.interactiveP99Ms)} ms`

const rows: ReadonlyArray<Row> = [
  { key: "requests", label: "caller requests" },
  { key: "providerCalls", label: "provider calls", better: "lower" },
  { key: "amplification", label: "amplification (calls / request)", better: "lower" },
  { key: "successRate", label: "success rate", better: "higher" },
  { key: "interactiveSuccessRate", label: "interactive success rate", better: "higher" },
  { key: "servedByFallback", label: "served by fallback" },
  { key: "p50Ms", label: "p50 latency (ms)", better: "lower", why: queuedNotFailed },
  { key: "p99Ms", label: "p99 latency (ms)", better: "lower", why: queuedNotFailed },
  { key: "interactiveP99Ms", label: "interactive p99 (ms)", better: "lower" },
  { key: "failFast", label: "failed fast (< 1 s)" },
  { key: "rateLimited429", label: "429s received", better: "lower" },
  { key: "outageCallsToPrimary", label: "calls into the outage", better: "lower" },
  { key: "acceptedForLater", label: "accepted for later (ticket)" },
  { key: "answeredLater", label: "answered later by the queue" },
  { key: "laterMaxWaitMs", label: "longest wait for it (ms)" },
  { key: "lastLaterAnswerAtMs", label: "last one answered at (ms)" },
  {
    key: "costUsd",
    label: "cost (USD)",
    better: "lower",
    why: (naive, resilient) =>
      `${fmt(resilient.answered)} requests were answered against ${fmt(naive.answered)}, and ` +
      `${fmt(resilient.servedByFallback)} answers came from the fallback model, which costs more per token`
  }
]

const worse = (row: Row, naive: Summary, resilient: Summary) =>
  row.better === "lower"
    ? resilient[row.key] > naive[row.key]
    : row.better === "higher" && resilient[row.key] < naive[row.key]

/**
 * One line per figure on which the resilient run looks worse than the naive one, saying why; a figure that
 * is worse without a known reason is reported as such.
 */
export const explanations = (
  naive: Summary,
  resilient: Summary
): ReadonlyArray<{ readonly label: string; readonly why: string }> =>
  rows
    .filter((row) => worse(row, naive, resilient))
    .map((row) => ({
      label: row.label,
      why: row.why?.(naive, resilient) ?? "worse than the naive run, for no known reason"
    }))

/**
 * What to write to stderr for `label` after `virtualMs` of the simulated span (`Day.simulatedMs`). With
 * `redraw` (a terminal) the line is drawn over the previous one and ended when the run is done; otherwise
 * (piped into a log) every update is a line of its own.
 */
export const progress = (label: string, virtualMs: number, redraw: boolean): string => {
  const done = Math.min(1, virtualMs / Day.simulatedMs)
  const bar = "#".repeat(Math.round(done * 30)).padEnd(30, ".")
  const line = `${label.padEnd(10)} [${bar}] ${Math.round(virtualMs / Day.minute)} of ${Day.simulatedMs / Day.minute} virtual min`
  if (!redraw) return `${line}\n`
  return done === 1 ? `\r${line}\n` : `\r${line}`
}

/** The side-by-side table printed at the end of the drill, with a line under it for each worse figure. */
export const table = (naive: Summary, resilient: Summary): string => {
  const w0 = Math.max(...rows.map((row) => row.label.length))
  const lines = [`${"".padEnd(w0)}  ${"naive".padStart(12)}  ${"resilient".padStart(12)}`]
  for (const row of rows) {
    const mark = worse(row, naive, resilient) ? " *" : ""
    lines.push(
      `${row.label.padEnd(w0)}  ${fmt(naive[row.key]).padStart(12)}  ${fmt(resilient[row.key]).padStart(12)}${mark}`
    )
  }
  const notes = explanations(naive, resilient)
  if (notes.length > 0) lines.push("", ...notes.map((n) => `* ${n.label}: ${n.why}`))
  return lines.join("\n")
}

/** The highest per-minute count of a timeline: both charts share one scale so that they compare. */
const peak = (timeline: ReadonlyArray<Minute>) =>
  Math.max(10, ...timeline.map((m) => Math.max(m.requests, m.providerCalls)))

const chart = (title: string, timeline: ReadonlyArray<Minute>, max: number): string => {
  const width = 960
  const height = 260
  const left = 48
  const top = 16
  const plotW = width - left - 40
  const plotH = height - top - 36
  const x = (i: number) => left + (i / timeline.length) * plotW
  const y = (v: number) => top + plotH - (v / max) * plotH
  const line = (pick: (m: Minute) => number) =>
    timeline.map((m, i) => `${i === 0 ? "M" : "L"}${x(i + 0.5).toFixed(1)},${y(pick(m)).toFixed(1)}`).join(" ")
  const barW = plotW / timeline.length
  const breaker = timeline
    .map((m, i) =>
      m.breakerOpen > 0
        ? `<rect x="${x(i).toFixed(1)}" y="${top}" width="${(barW * m.breakerOpen).toFixed(1)}" height="${plotH}" fill="#f5b041" opacity="0.35"/>`
        : ""
    )
    .join("")
  const events = [
    { at: Day.storm.at, label: "rate-limit storm" },
    { at: Day.outage.from, label: "outage (hangs)" },
    { at: Day.stalledStreams.from, label: "stalled streams" },
    { at: Day.agentLoop.from, label: "agent loop" }
  ]
    .map((e) => {
      const ex = x(e.at / Day.minute)
      return `<line x1="${ex}" y1="${top}" x2="${ex}" y2="${top + plotH}" stroke="#888" stroke-dasharray="4 3"/><text x="${ex + 3}" y="${top + 12}" font-size="11" fill="#555">${esc(e.label)}</text>`
    })
    .join("")
  const ticks = [0, 15, 30, 45, 60, 75, 90, 105, 120]
    .map(
      (m) => `<text x="${x(m)}" y="${top + plotH + 16}" font-size="11" text-anchor="middle" fill="#555">${m} min</text>`
    )
    .join("")
  const yTicks = [0, 0.5, 1]
    .map(
      (f) =>
        `<text x="${left - 6}" y="${y(max * f) + 4}" font-size="11" text-anchor="end" fill="#555">${Math.round(max * f)}</text>`
    )
    .join("")
  const fallbackBars = timeline
    .map((m, i) =>
      m.fallbacks > 0
        ? `<rect x="${x(i).toFixed(1)}" y="${y(m.fallbacks).toFixed(1)}" width="${Math.max(1, barW - 1).toFixed(1)}" height="${(top + plotH - y(m.fallbacks)).toFixed(1)}" fill="#5dade2" opacity="0.7"/>`
        : ""
    )
    .join("")
  return `<figure>
<figcaption>${esc(title)}</figcaption>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${esc(title)} timeline">
<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="#fafafa" stroke="#ddd"/>
${breaker}${fallbackBars}${events}
<path d="${line((m) => m.requests)}" fill="none" stroke="#2e86c1" stroke-width="1.5"/>
<path d="${line((m) => m.providerCalls)}" fill="none" stroke="#7d3c98" stroke-width="1.5"/>
<path d="${line((m) => m.failed)}" fill="none" stroke="#c0392b" stroke-width="2"/>
<path d="${line((m) => m.rateLimited)}" fill="none" stroke="#e67e22" stroke-width="1.5" stroke-dasharray="3 2"/>
${ticks}${yTicks}
</svg>
</figure>`
}

const summaryRows = (naive: Summary, resilient: Summary) => {
  const notes = new Map(explanations(naive, resilient).map((n) => [n.label, n.why]))
  return rows
    .map(
      (row) =>
        `<tr><td>${esc(row.label)}</td><td>${naive[row.key]}</td><td>${resilient[row.key]}</td><td class="why">${esc(notes.get(row.label) ?? "")}</td></tr>`
    )
    .join("\n")
}

/** `drill-report.html`: the two timelines and the table, in one self-contained page. */
export const html = (naive: RunResult, resilient: RunResult): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>llm-resilience outage drill</title>
<style>
${baseStyle}
table { border-collapse: collapse; margin: 12px 0; } td, th { padding: 3px 12px; border-bottom: 1px solid #eee; text-align: right; }
td:first-child, th:first-child, .why { text-align: left; } .why { color: #555; max-width: 420px; }
</style>
</head>
<body>
<h1>Outage drill: a day of trouble, naive vs resilient</h1>
<p>${Day.dayMs / Day.minute} minutes of virtual time at 100 requests/min (interactive streams and background
completions) on a simulated provider, with a rate-limit storm, a 5-minute outage in which calls hang, two minutes
of stalled streams and a runaway agent loop, then ${Day.drainMs / Day.minute} minutes without new traffic for
queued and in-flight requests to finish: ${Day.simulatedMs / Day.minute} virtual minutes in all, as on the
progress line. Each chart bins the day per minute.</p>
<p class="legend">
<span><i class="sw" style="background:#2e86c1"></i>caller requests</span>
<span><i class="sw" style="background:#7d3c98"></i>provider calls</span>
<span><i class="sw" style="background:#c0392b"></i>failed requests</span>
<span><i class="sw" style="background:#e67e22"></i>429s</span>
<span><i class="sw" style="background:#5dade2;height:10px"></i>served by fallback</span>
<span><i class="sw" style="background:#f5b041;height:10px;opacity:.5"></i>primary's circuit open</span>
</p>
${chart("Naive: 3 retries without jitter, no breaker, no budget, no admission, no fallback", naive.timeline, peak(naive.timeline))}
${chart(
  "Resilient: Resilience pipeline (admission, breaker, retry budget, timeouts, fallback, guards), same scale",
  resilient.timeline,
  peak(naive.timeline)
)}
<h2>Summary</h2>
<p>Amplification is provider calls per caller request; "calls into the outage" counts calls that reached the
primary while it was hanging; latency is measured per caller request, from the first attempt to the last answer
or error (background work that waited in the admission queue during the storm is included). The storm's batch
requests that could not start within a minute were accepted for later: the caller got a ticket at once (counted
as not answered, and in the latency up to the ticket), and the queue's workers answered them when capacity freed
up; the "answered later" rows say how many, the longest wait from ticket to answer, and when the last answer came.</p>
<table>
<tr><th></th><th>naive</th><th>resilient</th><th class="why">why the resilient figure is worse</th></tr>
${summaryRows(naive.summary, resilient.summary)}
<tr><td>agent turns before it was stopped</td><td>${naive.agentTurns}</td><td>${resilient.agentTurns}</td><td class="why"></td></tr>
</table>
</body>
</html>
`

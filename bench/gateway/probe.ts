/**
 * Loaded into the gateway and the chaos server by the benchmark (bundled, `node --import probe.mjs ...`):
 * records the process's GC pauses (start as epoch milliseconds, duration, kind) and appends them, a line each,
 * to the file named by `BENCH_GC_LOG` every 200 ms, so that the benchmark can tell which of its slowest
 * requests waited through a pause. It only observes: a `PerformanceObserver` of `gc` entries and one
 * unreferenced timer (no event-loop delay monitor, whose timer would wake the process hundreds of times per
 * second and change what is measured).
 */
import * as fs from "node:fs"
import { type PerformanceEntry, PerformanceObserver } from "node:perf_hooks"

const file = process.env.BENCH_GC_LOG
if (file !== undefined) {
  const lines: Array<string> = []
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as PerformanceEntry & { readonly detail?: { readonly kind?: number } }).detail?.kind ?? 0
      lines.push(`${(performance.timeOrigin + entry.startTime).toFixed(3)} ${entry.duration.toFixed(3)} ${kind}\n`)
    }
  }).observe({ entryTypes: ["gc"] })
  setInterval(() => {
    if (lines.length > 0) fs.appendFileSync(file, lines.splice(0).join(""))
  }, 200).unref()
}

/** A GC pause of a process, as the probe records it. */
export interface Pause {
  /** Epoch milliseconds. */
  readonly start: number
  readonly durationMs: number
  /** V8's kind: 1 scavenge (young generation), 4 mark-compact, 8 incremental marking step, 16 weak callbacks. */
  readonly kind: number
}

/** The pauses a probe wrote to `path` (none if it wrote nothing yet). */
export const readPauses = (path: string): ReadonlyArray<Pause> =>
  fs.existsSync(path)
    ? fs
        .readFileSync(path, "utf8")
        .split("\n")
        .filter((line) => line.length > 0)
        .map((line) => {
          const [start, durationMs, kind] = line.split(" ").map(Number)
          return { start, durationMs, kind }
        })
    : []

/**
 * bench/jitter: the AWS Architecture Blog "Exponential Backoff and Jitter" experiment, in virtual time, with
 * the published model (aws-samples/aws-arch-backoff-simulator) and the toolkit's own Backoff schedules.
 *
 * One row under optimistic concurrency: a client reads the version, then writes with it; the write fails if
 * the version moved meanwhile, and the client backs off and starts again from the read. Every message takes
 * |Normal(10 ms, 2 ms)| on the network; base 5 ms, cap 2,000 ms; each of N clients (N = 10, 20, ... 100)
 * writes once; calls are counted at the server (writes); each figure is the mean of 100 runs.
 *
 * The simulation is a discrete-event loop (a binary heap of message arrival times) that runs inside one
 * Effect per configuration: each client owns a step function of a `Backoff` schedule (`Schedule.toStep`),
 * and every backoff is a real step of that schedule drawing from Effect's `Random`, seeded per configuration
 * with `Random.withSeed`. Network delays draw from the same seeded `Random`. No clock, no fibers, no sleeps:
 * the whole experiment (4,000 runs) takes seconds.
 *
 * Output: one JSON object on stdout, also written to bench/results/jitter.json, and the chart
 * docs/benchmarks/jitter.svg generated from it. `--chart-only` re-draws the chart from the saved JSON;
 * `--aws-indexing` numbers the retries as the published simulator does (see below) and writes
 * bench/results/jitter-aws-indexing.json and docs/benchmarks/jitter-aws-indexing.svg instead.
 *
 * Run: npx node bench/jitter.ts
 */
import { writeFileSync, readFileSync, mkdirSync } from "node:fs"
import { Duration, Effect, Random, Schedule } from "effect"
import * as Backoff from "../packages/core/src/Backoff.ts"

type Strategy = "none" | "full" | "equal" | "decorrelated"

interface Row {
  readonly clients: number
  readonly strategy: Strategy
  readonly calls: number
  readonly completionMs: number
}

const STRATEGIES: ReadonlyArray<Strategy> = ["none", "full", "equal", "decorrelated"]
const CLIENTS = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
const RUNS = 100
const BASE_MS = 5
const CAP_MS = 2_000
const NET_MEAN = 10
const NET_SD = 2

// message kinds
const READ_AT_SERVER = 0
const READ_REPLY = 1
const WRITE_AT_SERVER = 2
const WRITE_REPLY = 3

/** A binary min-heap of events keyed by time; payloads in parallel arrays. */
class EventHeap {
  time: Array<number> = []
  client: Array<number> = []
  kind: Array<number> = []
  value: Array<number> = []
  get size() {
    return this.time.length
  }
  push(t: number, c: number, k: number, v: number) {
    const { time, client, kind, value } = this
    let i = time.length
    time.push(t)
    client.push(c)
    kind.push(k)
    value.push(v)
    while (i > 0) {
      const p = (i - 1) >> 1
      if (time[p]! <= t) break
      time[i] = time[p]!
      client[i] = client[p]!
      kind[i] = kind[p]!
      value[i] = value[p]!
      i = p
    }
    time[i] = t
    client[i] = c
    kind[i] = k
    value[i] = v
  }
  /** Pops the earliest event into `out` ([time, client, kind, value]). */
  pop(out: [number, number, number, number]) {
    const { time, client, kind, value } = this
    out[0] = time[0]!
    out[1] = client[0]!
    out[2] = kind[0]!
    out[3] = value[0]!
    const t = time.pop()!
    const c = client.pop()!
    const k = kind.pop()!
    const v = value.pop()!
    const n = time.length
    if (n === 0) return
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const m = r < n && time[r]! < time[l]! ? r : l
      if (time[m]! >= t) break
      time[i] = time[m]!
      client[i] = client[m]!
      kind[i] = kind[m]!
      value[i] = value[m]!
      i = m
    }
    time[i] = t
    client[i] = c
    kind[i] = k
    value[i] = v
  }
}

type Step = (now: number, input: unknown) => Effect.Effect<[Duration.Duration, Duration.Duration], unknown>

/** One run: N clients, one row. Returns [calls at the server, completion time]. */
const runOnce = (clients: number, schedule: Schedule.Schedule<Duration.Duration>) =>
  Effect.gen(function* () {
    const random = yield* Random.Random
    let spare: number | undefined
    // |Normal(mean, sd)| by Box-Muller, from the seeded Random
    const delay = (): number => {
      let z: number
      if (spare !== undefined) {
        z = spare
        spare = undefined
      } else {
        const u1 = 1 - random.nextDoubleUnsafe()
        const u2 = random.nextDoubleUnsafe()
        const r = Math.sqrt(-2 * Math.log(u1))
        z = r * Math.cos(2 * Math.PI * u2)
        spare = r * Math.sin(2 * Math.PI * u2)
      }
      return Math.abs(NET_MEAN + NET_SD * z)
    }
    const steps: Array<Step> = []
    const heap = new EventHeap()
    for (let c = 0; c < clients; c++) {
      // the client's backoff schedule, as Retry would use it
      steps.push((yield* Schedule.toStep(schedule)) as Step)
      heap.push(delay(), c, READ_AT_SERVER, 0)
    }
    let version = 0
    let calls = 0
    let now = 0
    const ev: [number, number, number, number] = [0, 0, 0, 0]
    while (heap.size > 0) {
      heap.pop(ev)
      now = ev[0]
      const c = ev[1]
      switch (ev[2]) {
        case READ_AT_SERVER:
          heap.push(now + delay(), c, READ_REPLY, version)
          break
        case READ_REPLY:
          heap.push(now + delay(), c, WRITE_AT_SERVER, ev[3])
          break
        case WRITE_AT_SERVER: {
          calls++
          const ok = ev[3] === version
          if (ok) version++
          heap.push(now + delay(), c, WRITE_REPLY, ok ? 1 : 0)
          break
        }
        case WRITE_REPLY:
          if (ev[3] === 0) {
            const [, wait] = yield* Effect.orDie(steps[c]!(now, undefined))
            heap.push(now + delay() + Duration.toMillis(wait), c, READ_AT_SERVER, 0)
          }
          break
      }
    }
    return [calls, now] as const
  })

/**
 * The toolkit numbers the first retry n = 0 (`U(0, min(cap, base * 2^0))` = up to `base`); the published
 * simulator calls `backoff(attempt)` with attempt = 1 first (up to `2 * base`). `--aws-indexing` reproduces
 * the simulator's indexing exactly by passing `2 * base` to the exponential kinds (decorrelated jitter does not
 * depend on n and starts from `base` in both).
 */
const awsIndexing = process.argv.includes("--aws-indexing")

const runConfig = (clients: number, strategy: Strategy) =>
  Effect.gen(function* () {
    const base = awsIndexing && strategy !== "decorrelated" ? 2 * BASE_MS : BASE_MS
    const schedule = Backoff.make(strategy, { base, cap: CAP_MS })
    let calls = 0
    let time = 0
    for (let run = 0; run < RUNS; run++) {
      const [c, t] = yield* runOnce(clients, schedule)
      calls += c
      time += t
    }
    const row: Row = {
      clients,
      strategy,
      calls: Math.round((calls / RUNS) * 10) / 10,
      completionMs: Math.round((time / RUNS) * 10) / 10
    }
    return row
  }).pipe(Random.withSeed(`jitter-${strategy}-${clients}`))

// ---------------------------------------------------------------------------------------------------------
// chart
// ---------------------------------------------------------------------------------------------------------

const COLORS: Record<Strategy, string> = { none: "#d62728", full: "#1f77b4", equal: "#2ca02c", decorrelated: "#9467bd" }

const panel = (
  rows: ReadonlyArray<Row>,
  field: "calls" | "completionMs",
  title: string,
  x0: number,
  log: boolean
): string => {
  const w = 420
  const h = 300
  const left = 60
  const top = 40
  const pw = w - left - 20
  const ph = h - top - 50
  const maxY = Math.max(...rows.map((r) => r[field]))
  const niceMax = 10 ** Math.floor(Math.log10(maxY)) * Math.ceil(maxY / 10 ** Math.floor(Math.log10(maxY)))
  const minY = Math.min(...rows.map((r) => r[field]))
  const logLo = Math.floor(Math.log10(minY))
  const logHi = Math.ceil(Math.log10(maxY))
  const sx = (n: number) => Math.round(x0 + left + ((n - 10) / 90) * pw)
  const sy = (v: number) =>
    log ? top + ph - ((Math.log10(v) - logLo) / (logHi - logLo)) * ph : top + ph - (v / niceMax) * ph
  const ticks = log
    ? Array.from({ length: logHi - logLo + 1 }, (_, i) => 10 ** (logLo + i))
    : Array.from({ length: 6 }, (_, i) => (niceMax / 5) * i)
  const out: Array<string> = []
  out.push(
    `<text x="${x0 + left + pw / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${title}</text>`
  )
  for (const v of ticks) {
    const y = Math.round(sy(v))
    out.push(`<line x1="${x0 + left}" y1="${y}" x2="${x0 + left + pw}" y2="${y}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${x0 + left - 6}" y="${y + 4}" text-anchor="end" font-size="11">${Math.round(v)}</text>`)
  }
  for (const n of CLIENTS) {
    out.push(`<text x="${sx(n)}" y="${top + ph + 16}" text-anchor="middle" font-size="11">${n}</text>`)
  }
  out.push(`<text x="${x0 + left + pw / 2}" y="${top + ph + 36}" text-anchor="middle" font-size="12">clients</text>`)
  out.push(
    `<line x1="${x0 + left}" y1="${top + ph}" x2="${x0 + left + pw}" y2="${top + ph}" stroke="#333"/>`,
    `<line x1="${x0 + left}" y1="${top}" x2="${x0 + left}" y2="${top + ph}" stroke="#333"/>`
  )
  for (const s of STRATEGIES) {
    const pts = rows
      .filter((r) => r.strategy === s)
      .sort((a, b) => a.clients - b.clients)
      .map((r) => `${sx(r.clients).toFixed(1)},${sy(r[field]).toFixed(1)}`)
      .join(" ")
    out.push(`<polyline fill="none" stroke="${COLORS[s]}" stroke-width="2" points="${pts}"/>`)
  }
  return out.join("\n")
}

const chart = (rows: ReadonlyArray<Row>): string => {
  const legend = STRATEGIES.map(
    (s, i) =>
      `<rect x="${80 + i * 140}" y="312" width="14" height="4" fill="${COLORS[s]}"/>` +
      `<text x="${100 + i * 140}" y="318" font-size="12">${s === "none" ? "no jitter" : `${s} jitter`}</text>`
  ).join("\n")
  return `<svg xmlns="http://www.w3.org/2000/svg" width="860" height="330" font-family="sans-serif">
<rect width="860" height="330" fill="white"/>
${panel(rows, "calls", "Calls at the server (mean of 100 runs)", 0, false)}
${panel(rows, "completionMs", "Completion time, ms, log scale (mean of 100 runs)", 430, true)}
${legend}
</svg>
`
}

// ---------------------------------------------------------------------------------------------------------
// main
// ---------------------------------------------------------------------------------------------------------

const root = new URL("..", import.meta.url).pathname
const suffix = awsIndexing ? "-aws-indexing" : ""
const resultsPath = `${root}bench/results/jitter${suffix}.json`
const chartPath = `${root}docs/benchmarks/jitter${suffix}.svg`

const writeChart = (rows: ReadonlyArray<Row>) => {
  mkdirSync(`${root}docs/benchmarks`, { recursive: true })
  writeFileSync(chartPath, chart(rows))
}

if (process.argv.includes("--chart-only")) {
  writeChart((JSON.parse(readFileSync(resultsPath, "utf8")) as { results: Array<Row> }).results)
} else {
  const started = performance.now()
  const results: Array<Row> = []
  for (const clients of CLIENTS) {
    for (const strategy of STRATEGIES) {
      results.push(Effect.runSync(runConfig(clients, strategy)))
    }
  }
  const output = { results }
  mkdirSync(`${root}bench/results`, { recursive: true })
  writeFileSync(resultsPath, `${JSON.stringify(output, null, 2)}\n`)
  writeChart(results)
  process.stdout.write(`${JSON.stringify(output)}\n`)
  process.stderr.write(
    `jitter: ${results.length} configurations x ${RUNS} runs in ${Math.round(performance.now() - started)} ms\n`
  )
}

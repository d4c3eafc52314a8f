/**
 * What the slowest requests of an open loop waited for: the gateway benchmark's account of its tail. The wait
 * of each request at or above the phase's p99 (from its due time to its last byte) is split into the time
 * that overlapped a GC pause of the gateway, of the chaos server (recorded by `probe.ts`), the generator's
 * own lateness in sending it, and the rest (the servers' work, queueing behind other requests, and the
 * machine's other processes). Requests due within 50 ms of each other are grouped into episodes, each with the
 * connections the generator opened meanwhile (a request that finds every connection busy opens another, so a
 * stall shows as a burst of new connections, each a cost to the servers as well).
 */
import type { OpenLoopPhase } from "./load.ts"
import type { Pause } from "./probe.ts"

/** The GC pauses of a process over a phase: how many, their total and the longest (ms). */
export interface Pauses {
  readonly count: number
  readonly totalMs: number
  readonly maxMs: number
  /** Mark-compacts among them. */
  readonly markCompacts: number
}

/** A run of slow requests due within 50 ms of each other. */
export interface Episode {
  /** When the first was due, from the start of the measured phase (ms). */
  readonly atMs: number
  readonly requests: number
  readonly maxLatencyMs: number
  /** The GC pauses overlapping the episode, in total (ms). */
  readonly gatewayGcMs: number
  readonly chaosGcMs: number
  /** The generator's longest delay in sending one of them (ms). */
  readonly maxLagMs: number
  /** Connections the generator opened to this target during it. */
  readonly connectionsOpened: number
}

/** What the slowest requests of a phase waited for. */
export interface Tail {
  /** Requests at or above the p99 (from the due time). */
  readonly slowest: number
  /**
   * Shares of their waits (summed) that overlapped a GC pause of the gateway, of the chaos server, and that
   * the generator was late in sending them; `rest` is what remains (the pauses of the two servers can
   * overlap, so the shares can add up to more than 1, and `rest` is then 0).
   */
  readonly share: {
    readonly gatewayGc: number
    readonly chaosGc: number
    readonly generatorLate: number
    readonly rest: number
  }
  readonly gc: { readonly gateway: Pauses; readonly chaos: Pauses }
  /** The three episodes with the most slow requests. */
  readonly episodes: ReadonlyArray<Episode>
}

const round = (x: number) => Math.round(x * 10) / 10

const overlapping = (pauses: ReadonlyArray<Pause>, from: number, to: number) =>
  pauses.filter((p) => p.start <= to && p.start + p.durationMs >= from)

/** How long `pauses` overlapped the interval `from`..`to` (ms). */
const overlapMs = (pauses: ReadonlyArray<Pause>, from: number, to: number) =>
  pauses.reduce((sum, p) => sum + Math.max(0, Math.min(to, p.start + p.durationMs) - Math.max(from, p.start)), 0)

const total = (pauses: ReadonlyArray<Pause>) => round(pauses.reduce((sum, p) => sum + p.durationMs, 0))

const summary = (pauses: ReadonlyArray<Pause>): Pauses => ({
  count: pauses.length,
  totalMs: total(pauses),
  maxMs: round(pauses.reduce((max, p) => Math.max(max, p.durationMs), 0)),
  markCompacts: pauses.filter((p) => p.kind === 4).length
})

/** The tail of `phase`, given the pauses the gateway and the chaos server recorded. */
export const tailOf = (
  phase: OpenLoopPhase,
  pauses: { readonly gateway: ReadonlyArray<Pause>; readonly chaos: ReadonlyArray<Pause> }
): Tail => {
  const { slowest, window } = phase
  const during = (list: ReadonlyArray<Pause>) => overlapping(list, window.from, window.to + 1_000)
  const gateway = during(pauses.gateway)
  const chaos = during(pauses.chaos)
  let waited = 0
  let gatewayGc = 0
  let chaosGc = 0
  let late = 0
  for (const s of slowest) {
    const end = s.dueAt + s.latencyFromDueMs
    waited += s.latencyFromDueMs
    gatewayGc += overlapMs(gateway, s.dueAt, end)
    chaosGc += overlapMs(chaos, s.dueAt, end)
    late += Math.min(s.lagMs, s.latencyFromDueMs)
  }
  const groups: Array<Array<(typeof slowest)[number]>> = []
  for (const s of slowest) {
    const last = groups.at(-1)
    if (last !== undefined && s.dueAt - last[last.length - 1].dueAt < 50) last.push(s)
    else groups.push([s])
  }
  const episodes = groups
    .sort((a, b) => b.length - a.length)
    .slice(0, 3)
    .map((group): Episode => {
      const from = group[0].dueAt
      const to = Math.max(...group.map((s) => s.dueAt + s.latencyFromDueMs))
      return {
        atMs: Math.round(from - window.from),
        requests: group.length,
        maxLatencyMs: round(Math.max(...group.map((s) => s.latencyFromDueMs))),
        gatewayGcMs: total(overlapping(gateway, from, to)),
        chaosGcMs: total(overlapping(chaos, from, to)),
        maxLagMs: round(Math.max(...group.map((s) => s.lagMs))),
        connectionsOpened: phase.connectionsOpenedAt.filter((t) => t >= from && t <= to).length
      }
    })
  const share = (ms: number) => Math.round((ms / Math.max(1e-9, waited)) * 100) / 100
  return {
    slowest: slowest.length,
    share: {
      gatewayGc: share(gatewayGc),
      chaosGc: share(chaosGc),
      generatorLate: share(late),
      rest: share(Math.max(0, waited - gatewayGc - chaosGc - late))
    },
    gc: { gateway: summary(gateway), chaos: summary(chaos) },
    episodes
  }
}

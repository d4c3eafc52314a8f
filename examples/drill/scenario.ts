/**
 * The drill's day of trouble, as data: the providers, the traffic and the events, all in virtual time.
 *
 * Two hours of virtual time stand for the day (compressed so that the drill runs in seconds), followed by 15
 * minutes in which no new traffic arrives and queued or in-flight requests finish:
 *
 * | when (virtual) | event |
 * | --- | --- |
 * | 00:00 - 02:00 | steady traffic: 50 interactive streams and 50 background completions per minute |
 * | 20:00 | rate-limit storm: a batch job dumps 300 background requests at once on a 120 RPM model (path `batch`: what cannot start within a minute is accepted for later) |
 * | 45:00 - 50:00 | outage of the primary: every call hangs (no answer, no error) |
 * | 70:00 - 72:00 | stalled streams: the primary's streams never send their first token |
 * | 90:00 - 02:00 | a runaway agent loop: one conversation calls again 2 s after every answer |
 */
import type { LlmRequest } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

export const minute = 60_000
export const dayMs = 120 * minute
/** After the day, virtual time runs on this long for what is still queued or in flight. */
export const drainMs = 15 * minute
/** The whole simulated span: the day and the drain. */
export const simulatedMs = dayMs + drainMs

export const storm = { at: 20 * minute, requests: 300 }
export const outage = { from: 45 * minute, to: 50 * minute }
export const stalledStreams = { from: 70 * minute, to: 72 * minute }
export const agentLoop = { from: 90 * minute, thinkMs: 2_000 }

/** The primary provider's limits: what it really accepts before answering 429. */
export const primaryLimits = { requestsPerMinute: 120, tokensPerMinute: 60_000 }
export const secondaryLimits = { requestsPerMinute: 200, tokensPerMinute: 100_000 }

/** The primary: fast and cheap, with a real capacity, and the day's faults scripted on it. */
export const primaryScenario: FakeProvider.Scenario = {
  name: "primary",
  models: {
    main: {
      latency: "800 millis",
      text: "Here is the answer you asked for, from the primary model.",
      outputTokens: 120,
      stream: { chunks: 6, interval: "150 millis" },
      capacity: primaryLimits,
      windows: [
        { from: outage.from, to: outage.to, behavior: FakeProvider.stall },
        { from: stalledStreams.from, to: stalledStreams.to, calls: "streamed", behavior: FakeProvider.stall }
      ]
    }
  }
}

/** The secondary: another provider, slower and dearer, healthy all day. */
export const secondaryScenario: FakeProvider.Scenario = {
  name: "secondary",
  models: {
    backup: {
      latency: "1200 millis",
      text: "Here is the answer you asked for, from the backup model.",
      outputTokens: 120,
      stream: { chunks: 6, interval: "200 millis" },
      capacity: secondaryLimits
    }
  }
}

/** Dollars per million tokens (the drill's own prices, not a provider's). */
export const prices = {
  main: { inputPerMillion: 2.5, outputPerMillion: 10 },
  backup: { inputPerMillion: 3, outputPerMillion: 15 }
}

export type Kind = "interactive" | "background" | "storm" | "agent"

/** One caller request of the day. */
export interface Planned {
  readonly id: number
  readonly at: number
  readonly kind: Kind
  readonly request: LlmRequest.LlmRequest
}

const prompt = (i: number) =>
  `Request ${i}: summarise the customer's last three messages and propose a reply. `.repeat(6)

const interactive = (id: number, at: number): Planned => ({
  id,
  at,
  kind: "interactive",
  request: {
    model: "main",
    messages: [{ role: "user", content: prompt(id) }],
    maxOutputTokens: 200,
    metadata: { path: "interactive", priority: "interactive" }
  }
})

const background = (id: number, at: number, kind: "background" | "storm"): Planned => ({
  id,
  at,
  kind,
  request: {
    model: "main",
    messages: [{ role: "user", content: prompt(id) }],
    maxOutputTokens: 200,
    metadata: { path: kind === "storm" ? "batch" : "background", priority: "background", idempotencyKey: `req-${id}` }
  }
})

/** The scheduled traffic (the agent loop is driven by its own answers, see `agentTurn`). */
export const traffic = (): ReadonlyArray<Planned> => {
  const planned: Array<Planned> = []
  let id = 0
  for (let t = 0; t < dayMs; t += 1_200) {
    planned.push(interactive(id++, t))
    planned.push(background(id++, t + 600, "background"))
  }
  for (let i = 0; i < storm.requests; i++) planned.push(background(id++, storm.at, "storm"))
  return planned.sort((a, b) => a.at - b.at || a.id - b.id)
}

/** The n-th turn of the runaway agent: the same conversation, a growing transcript. */
export const agentTurn = (n: number): LlmRequest.LlmRequest => ({
  model: "main",
  messages: [
    { role: "system", content: "You are an autonomous agent. Keep working until the task is done." },
    { role: "user", content: `Tool output for step ${n}: the task is not done yet; try again.` }
  ],
  maxOutputTokens: 200,
  metadata: { path: "background", priority: "background", conversationId: "agent-runaway" }
})

/**
 * The quality drill's traffic and outputs, as data: 100 requests per minute to one model, each a short
 * question with a checkable answer, and what the model answers when healthy or under each of the three
 * bugs of the postmortem:
 *
 * | bug | what the model does | share of answers |
 * | --- | --- | --- |
 * | `context` | answers as if the context window were smaller: the question's document is gone | 16% |
 * | `script` | a token in another writing system slips into the answer | 1% |
 * | `wrong` | a plausible answer with a wrong figure (same words, same length) | 10% |
 *
 * Healthy outputs have their own background noise, which the monitor must not alarm on: 0.5% refusals,
 * 0.3% answers quoting a term in another script, 1% of requests capped short (cut by length), and a judge
 * that fails 1% of correct answers. Everything is drawn from a seeded generator, so each run is the same.
 */
import type { LlmRequest } from "@llm-resilience/core"

export const minute = 60_000
export const hour = 60 * minute
export const week = 7 * 24 * hour
export const requestsPerMinute = 100
export const gapMs = minute / requestsPerMinute

export type Bug = "context" | "script" | "wrong"
export const bugs: ReadonlyArray<Bug> = ["context", "script", "wrong"]
export const bugShare: Readonly<Record<Bug, number>> = { context: 0.16, script: 0.01, wrong: 0.1 }
export const bugLabel: Readonly<Record<Bug, string>> = {
  context: "16% answered as if the context window were smaller",
  script: "1% of answers with a token in another script",
  wrong: "10% plausible but wrong answers (judge on a 5% sample)"
}

/** Healthy traffic before each bug starts: the monitor's reference fills up. */
export const warmupMs = 2 * hour
/** How long each bug runs: the detection goal is 60 minutes. */
export const bugMs = 90 * minute
/** The judge: the share of answers it scores, and its errors. */
export const judge = { sampleRate: 0.05, failsCorrect: 0.01, catchesWrong: 0.9 }

/** A small seeded generator (mulberry32): the drill's traffic is the same on every run. */
export const generator = (seed: number) => {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const topics = [
  ["invoice", "The invoice lists each line item with its unit price.", "Taxes are applied after the discount."],
  ["shipment", "The shipment was split across two warehouses.", "Both parcels left on the same day."],
  ["budget", "The quarterly budget covers salaries and hosting.", "Travel was cut in the last revision."],
  ["inventory", "Stock levels are counted at the end of each week.", "Returns go back on the shelf after inspection."],
  ["survey", "The survey asked customers to rate the new checkout.", "Most answers came in on the first day."],
  ["schedule", "The on-call schedule rotates every Monday.", "Holidays are swapped between teams in advance."],
  [
    "recipe",
    "The recipe scales linearly with the number of guests.",
    "Baking time does not change with the batch size."
  ],
  ["fleet", "Each truck reports its mileage at the depot.", "Maintenance is due every ten thousand kilometres."]
] as const
const openers = [
  "Sure.",
  "Here is the breakdown.",
  "Based on the document you shared:",
  "Let me work through it.",
  "Good question."
]
const closers = [
  "Let me know if you need the details.",
  "I can break it down further.",
  "Happy to check other figures.",
  ""
]
const foreignTerms = ["(in Japanese: 合計)", "(in Greek: σύνολο)", "(Russian: итого)"]
const foreignTokens = ["ส่วน", "然后", "также", "مجموع", "그리고", "δηλαδή"]
const lostContext = [
  "I don't see a document in our conversation. Could you paste it again?",
  "Could you share the full text? I can only see the end of our conversation.",
  "I'm missing the earlier part of this thread, so I can't tell which figures you mean.",
  "There is no attachment I can read here; please send the numbers again."
]

/** One request of the drill and the facts its answers are built from. */
export interface Item {
  readonly request: LlmRequest.LlmRequest
  readonly a: number
  readonly b: number
  /** A uniform draw deciding whether a bug hits this request. */
  readonly hit: number
  readonly healthy: string
}

/** The `n`-th request of the drill (deterministic in `n`). */
export const item = (n: number): Item => {
  const r = generator(n * 7919 + 17)
  const topic = topics[Math.floor(r() * topics.length)]
  const a = 10 + Math.floor(r() * 900)
  const b = 10 + Math.floor(r() * 900)
  const capped = r() < 0.01
  const request: LlmRequest.LlmRequest = {
    model: "main",
    messages: [
      { role: "system", content: `Document about the ${topic[0]}: ${topic[1]} ${topic[2]}` },
      { role: "user", content: `In the ${topic[0]}, what is ${a} + ${b}?` }
    ],
    ...(capped ? { maxOutputTokens: 12 } : {})
  }
  const noise = r()
  let healthy: string
  if (noise < 0.005) healthy = "I'm sorry, but I can't help with that request."
  else {
    const extra = topic[1 + Math.floor(r() * 2)]
    const term = noise < 0.008 ? ` ${foreignTerms[Math.floor(r() * foreignTerms.length)]}` : ""
    healthy =
      `${openers[Math.floor(r() * openers.length)]} In the ${topic[0]}, ${a} + ${b} makes a total of ${a + b}${term}. ` +
      `${r() < 0.5 ? extra : ""} ${closers[Math.floor(r() * closers.length)]}`.trim()
  }
  return { request, a, b, hit: r(), healthy }
}

/** What the model answers to item `n` under `bug` (`undefined`: healthy). */
export const answer = (it: Item, bug: Bug | undefined): string => {
  if (bug === undefined || it.hit >= bugShare[bug]) return it.healthy
  const pick = Math.floor((it.hit / bugShare[bug]) * 997)
  switch (bug) {
    case "context":
      return lostContext[pick % lostContext.length]
    case "script": {
      const words = it.healthy.split(" ")
      const at = 1 + (pick % Math.max(1, words.length - 1))
      words.splice(at, 0, foreignTokens[pick % foreignTokens.length])
      return words.join(" ")
    }
    case "wrong":
      return it.healthy.replace(`total of ${it.a + it.b}`, `total of ${it.a + it.b + 1 + (pick % 9)}`)
  }
}

/** Whether an answer gives the right total for its request (what the drill's judge checks). */
export const correct = (request: LlmRequest.LlmRequest, text: string): boolean => {
  const q = /what is (\d+) \+ (\d+)\?/.exec(request.messages[request.messages.length - 1]?.content ?? "")
  const t = /total of (\d+)/.exec(text)
  return q !== null && t !== null && Number(t[1]) === Number(q[1]) + Number(q[2])
}

/**
 * The sixteen kinds of provider fault, each sent as a streamed request by the official `openai` SDK through
 * the OpenAI-compatible front (examples/front/openai.ts) over `Resilience` with the baseline configuration
 * (two retries within 30 s, 30 s attempts, one fallback model, streams carried on mid-stream), to chaos servers standing in for the primary and the
 * fallback provider. Every kind must end in the complete answer, but a content-filter rejection, which must
 * end in a clean error after exactly one upstream attempt.
 *
 * Real sockets, real waits, but short ones: the front runs on a clock `SCALE` times faster than real time,
 * and the chaos servers' delays are divided by the same factor, so a 30 s stall lasts 3 s and the 60 s
 * outage 6 s. The policies themselves keep their real-world settings.
 */
import * as Http from "node:http"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { assert, describe, it } from "@effect/vitest"
import { LlmProvider, Resilience } from "@llm-resilience/core"
import { OpenAiProvider } from "@llm-resilience/providers"
import { ChaosServer } from "@llm-resilience/testing"
import { Clock, Context, Duration, Effect, Fiber, Layer, Redacted } from "effect"
import { HttpRouter, HttpServer } from "effect/http"
import OpenAI from "openai"
import * as Front from "../front/openai.ts"
import * as ScaledClock from "./support/scaledClock.ts"

/** How much faster than real time the front's clock runs. */
const SCALE = 10
/** A real-world duration in milliseconds, as the chaos server must wait it in real time. */
const real = (ms: number) => Math.round(ms / SCALE)

const apiKey = Redacted.make("sk-front-test-0123456789")
/** The answer: 60 words, one chunk each. */
const text = Array.from({ length: 60 }, (_, i) => `w${i + 1}`).join(" ")
const primaryModel = "primary-model"
const fallbackModel = "fallback-model"
/** The fallback reports prompt-cache hits, so that its usage differs from the primary's. */
const fallbackCached = 3

/** What the caller got from a streamed (or whole) request. */
type Outcome =
  | {
      readonly ok: true
      readonly text: string
      readonly model: string | undefined
      readonly usage: OpenAI.CompletionUsage | undefined
    }
  | { readonly ok: false; readonly status: number | undefined; readonly type: string | undefined }

const describeOutcome = (o: Outcome): string =>
  o.ok
    ? `${o.text === text ? "complete" : "partial"} answer from ${o.model}`
    : `error ${o.type} (HTTP ${o.status ?? "200, in-stream"})`

const messages = [{ role: "user" as const, content: "Count to sixty." }]

const callStream = (client: OpenAI): Promise<Outcome> =>
  (async (): Promise<Outcome> => {
    let answer = ""
    let model: string | undefined
    let usage: OpenAI.CompletionUsage | undefined
    try {
      const stream = await client.chat.completions.create({
        model: "front",
        messages,
        stream: true,
        stream_options: { include_usage: true }
      })
      for await (const chunk of stream) {
        answer += chunk.choices[0]?.delta.content ?? ""
        model = chunk.model
        usage = chunk.usage ?? usage
      }
      return { ok: true, text: answer, model, usage }
    } catch (e) {
      if (e instanceof OpenAI.APIError) return { ok: false, status: e.status, type: e.type }
      throw e
    }
  })()

const callWhole = (client: OpenAI): Promise<Outcome> =>
  client.chat.completions.create({ model: "front", messages }).then(
    (r): Outcome => ({ ok: true, text: r.choices[0].message.content ?? "", model: r.model, usage: r.usage }),
    (e: unknown): Outcome => {
      if (e instanceof OpenAI.APIError) return { ok: false, status: e.status, type: e.type }
      throw e
    }
  )

/** A chaos server standing in for one provider: a fault on every request, or a scenario of steps. */
interface Upstream {
  readonly fault?: ChaosServer.Fault
  readonly scenario?: ReadonlyArray<ChaosServer.Step>
  readonly options?: typeof ChaosServer.Options.Encoded
}

/**
 * Starts both providers' chaos servers and the front over `Resilience` (on the scaled clock), and returns an
 * SDK client of the front with the two servers.
 */
const setUp = (primary: Upstream, fallback: Upstream = {}, models?: Resilience.Config["models"]) =>
  Effect.gen(function* () {
    const upstream = (name: string, u: Upstream, extra: typeof ChaosServer.Options.Encoded) =>
      Effect.gen(function* () {
        const chaos = yield* ChaosServer.make({
          text,
          stallMs: real(120_000),
          keepAliveIntervalMs: real(1_000),
          ...extra,
          ...u.options,
          scenario: u.scenario
        })
        const provider = yield* OpenAiProvider.make({ name, apiKey, baseUrl: chaos.openAiBaseUrl(u.fault) })
        return { chaos, provider }
      })
    const p = yield* upstream("primary", primary, {})
    const f = yield* upstream("fallback", fallback, { cachedInputTokens: fallbackCached })
    const baseUrl = yield* Effect.gen(function* () {
      const resilient = yield* Resilience.make(Front.baseline(primaryModel, fallbackModel, models), [
        p.provider,
        f.provider
      ])
      const served = HttpRouter.serve(Front.routes, { disableLogger: true, disableListenLog: true }).pipe(
        Layer.provide(Layer.succeed(LlmProvider.LlmProvider, resilient.provider)),
        Layer.provideMerge(
          NodeHttpServer.layer(Http.createServer, {
            port: 0,
            host: "127.0.0.1",
            gracefulShutdownTimeout: Duration.millis(100)
          })
        )
      )
      const server = Context.get(yield* Layer.build(served), HttpServer.HttpServer)
      return `${HttpServer.formatAddress(server.address)}/v1`
    }).pipe(Effect.provideService(Clock.Clock, ScaledClock.make(SCALE)))
    // no SDK retries: every retry is the toolkit's; the timeout only bounds a broken test
    const client = new OpenAI({ apiKey: "sk-caller", baseURL: baseUrl, maxRetries: 0, timeout: 20_000 })
    return { client, primary: p.chaos, fallback: f.chaos }
  })

const ask = (client: OpenAI, whole = false) => Effect.promise(() => (whole ? callWhole(client) : callStream(client)))

// ---------------------------------------------------------------------------------------------------------
// the kinds
// ---------------------------------------------------------------------------------------------------------

interface Kind {
  readonly primary: Upstream
  readonly fallback?: Upstream
  /** Facts of the models, when the kind needs them. */
  readonly models?: Resilience.Config["models"]
  /** How many requests each provider must have served, when it matters. */
  readonly served?: { readonly primary?: number; readonly fallback?: number }
  /** The model whose answer the caller must get, when it matters. */
  readonly answeredBy?: string
}

const kinds = {
  // not a fault: the first test also warms the process up, so that later timings are the faults' own
  "no fault": { primary: {}, served: { primary: 1, fallback: 0 }, answeredBy: primaryModel },
  "429 with Retry-After, once": { primary: { scenario: ["rate-limit"] }, answeredBy: primaryModel },
  "429 without Retry-After, persistently": {
    primary: { fault: "rate-limit-no-retry-after" },
    answeredBy: fallbackModel
  },
  "500 once": { primary: { scenario: ["server-error"] }, answeredBy: primaryModel },
  "503 persistently": { primary: { fault: "service-unavailable" }, answeredBy: fallbackModel },
  "TCP reset before headers": { primary: { scenario: ["connection-reset"] }, answeredBy: primaryModel },
  // the route never answers: the fallback must, without first retrying the silent route
  "no response at all": {
    primary: { fault: "no-response" },
    served: { primary: 1, fallback: 1 },
    answeredBy: fallbackModel
  },
  // a first-token timeout of at most 15 s moves on to the fallback, without retrying the silent route
  "first token after 20 s": {
    primary: { fault: "slow-first-token", options: { slowHeadersMs: real(20_000) } },
    served: { primary: 1, fallback: 1 },
    answeredBy: fallbackModel
  },
  "stream cut after 40 of 60 tokens": { primary: { scenario: ["truncated-stream"], options: { partialChunks: 40 } } },
  "30 s stall mid-stream": {
    primary: { scenario: ["stall-mid-stream"], options: { partialChunks: 20, stallMs: real(30_000) } }
  },
  "one malformed chunk": { primary: { scenario: ["malformed-json"] }, answeredBy: primaryModel },
  "no [DONE]": { primary: { scenario: ["no-end-marker"] }, answeredBy: primaryModel },
  // no context windows configured: the fallback's is unknown, so it is tried
  "context length exceeded": { primary: { fault: "context-length" }, answeredBy: fallbackModel },
  // the primary is cut at 40 words on its attempt and both retries; the fallback is declared to take prefill
  // but refuses it: asked again without, its answer is matched against the 40 words delivered and only the
  // rest passed on
  "cut stream where the fallback rejects prefill": {
    primary: { fault: "truncated-stream", options: { partialChunks: 40 } },
    fallback: { fault: "prefill-rejected" },
    models: { [`fallback/${fallbackModel}`]: { prefill: true } },
    served: { primary: 3, fallback: 2 },
    answeredBy: fallbackModel
  }
} satisfies Record<string, Kind>

type KindName = keyof typeof kinds

const expectAnswer = (name: string, o: Outcome, answeredBy: string | undefined) => {
  if (!o.ok) return assert.fail(`${name}: ${describeOutcome(o)}`)
  assert.strictEqual(o.text, text, name)
  if (answeredBy !== undefined) assert.strictEqual(o.model, answeredBy, name)
  assert.strictEqual(o.usage?.completion_tokens, 60, name)
}

describe("the sixteen faults through the OpenAI-compatible front", () => {
  for (const [name, kind] of Object.entries(kinds) as Array<[KindName, Kind]>) {
    it.live(name, () =>
      Effect.gen(function* () {
        const { client, primary, fallback } = yield* setUp(kind.primary, kind.fallback, kind.models)
        const outcome = yield* ask(client)
        expectAnswer(name, outcome, kind.answeredBy)
        if (kind.served !== undefined) {
          const served = { primary: (yield* primary.requests).length, fallback: (yield* fallback.requests).length }
          for (const [server, count] of Object.entries(kind.served)) {
            assert.strictEqual(served[server as keyof typeof served], count, `${name}: requests ${server} served`)
          }
        }
      }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici))
    )
  }

  it.live("a body the front cannot read is a 400 naming the field, and reaches no provider", () =>
    Effect.gen(function* () {
      const { client, primary } = yield* setUp({})
      const response = yield* Effect.promise(() =>
        fetch(`${client.baseURL}/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "front", messages: [{ role: "user" }] })
        }).then(async (r) => ({ status: r.status, body: (await r.json()) as { error: { message: string } } }))
      )
      assert.strictEqual(response.status, 400)
      assert.match(response.body.error.message, /content/)
      assert.strictEqual((yield* primary.requests).length, 0)
    }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici))
  )

  it.live("content filter: a clean error after exactly one upstream attempt", () =>
    Effect.gen(function* () {
      const { client, primary, fallback } = yield* setUp({ fault: "content-filter" })
      const outcome = yield* ask(client)
      assert.deepStrictEqual(outcome, { ok: false, status: 400, type: "ContentFiltered" })
      assert.strictEqual((yield* primary.requests).length, 1)
      assert.strictEqual((yield* fallback.requests).length, 0)
    }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici))
  )

  it.live("503 with the fallback answering: the caller sees the fallback's model and usage", () =>
    Effect.gen(function* () {
      const { client } = yield* setUp({ fault: "overloaded" })
      for (const whole of [false, true]) {
        const outcome = yield* ask(client, whole)
        expectAnswer(whole ? "whole" : "streamed", outcome, fallbackModel)
        if (outcome.ok) assert.strictEqual(outcome.usage?.prompt_tokens_details?.cached_tokens, fallbackCached)
      }
    }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici))
  )

  it.live(
    "primary down for 60 s then healthy, a request every 4 s: every answer complete, the primary back within 30 s",
    () =>
      Effect.gen(function* () {
        const { client, primary } = yield* setUp({})
        yield* primary.setScenario(["overloaded"], { loop: true })
        const every = 4_000
        const fibers: Array<Fiber.Fiber<Outcome>> = []
        for (let at = 0; at < 120_000; at += every) {
          if (at === 60_000) yield* primary.setScenario([])
          fibers.push(yield* Effect.forkChild(ask(client)))
          yield* Effect.sleep(real(every))
        }
        const outcomes = yield* Fiber.joinAll(fibers)
        const name = "primary down for 60 s then healthy"
        outcomes.forEach((o, i) => expectAnswer(`${name}: request at ${(i * every) / 1000} s`, o, undefined))
        // recovered at 60 s: every request from 94 s on (30 s of open breaker and one period) uses it again
        const late = outcomes.slice(Math.ceil(94_000 / every)).map((o) => (o.ok ? o.model : undefined))
        assert.deepStrictEqual(
          late,
          late.map(() => primaryModel),
          name
        )
        // the breaker keeps the outage's calls off the primary: at most one attempt per request of the outage
        // (15 requests with 3 attempts each would be 45 without it; 7 or 8 are seen)
        const failed = (yield* primary.requests).filter((r) => r.step === "overloaded").length
        assert.isAtMost(failed, 60_000 / every)
      }).pipe(Effect.scoped, Effect.provide(NodeHttpClient.layerUndici))
  )
})

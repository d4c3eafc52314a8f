import { spawnSync } from "node:child_process"
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Random, Stream, Tracer } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { TestClock } from "effect/testing"
import { type LlmRequest, Resilience, Telemetry } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"

// ---------------------------------------------------------------------------------------------------------
// the day: successes, a retry, a breaker opening, fallback activations, an admission wait and a stream
// ---------------------------------------------------------------------------------------------------------

const HalfRandom: Random.Random = { nextDoubleUnsafe: () => 0.5, nextIntUnsafe: () => 0 }

/** Content and a key-like string that must never reach a span or a metric. */
const SECRET_CONTENT = "my-private-prompt-4711"
const SECRET_KEY = "sk-test-DO-NOT-LEAK-0123456789"

const ask = (path: string, model: string): LlmRequest.LlmRequest => ({
  model,
  messages: [
    { role: "system", content: `api key is ${SECRET_KEY}` },
    { role: "user", content: SECRET_CONTENT }
  ],
  maxOutputTokens: 50,
  metadata: { path, tenant: "acme" }
})

/** Runs `self` to completion, moving the TestClock in 250 ms steps (bounded). */
const settle = <A, E>(self: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(Effect.exit(self))
    for (let i = 0; i < 2_000 && fiber.pollUnsafe() === undefined; i++) yield* TestClock.adjust("250 millis")
    return yield* Fiber.join(fiber)
  })

interface Day {
  readonly spans: ReadonlyArray<Tracer.NativeSpan>
  readonly snapshot: ReadonlyArray<Metric.Metric.Snapshot>
  readonly exposition: string
  readonly exits: ReadonlyArray<Exit.Exit<unknown, unknown>>
}

/** A tracer that keeps every span it creates. */
const capturingTracer = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span(options) {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { spans, tracer }
}

const day = (): Effect.Effect<Day> =>
  Effect.gen(function* () {
    const { spans, tracer } = capturingTracer()
    const run = Effect.gen(function* () {
      const primary = yield* FakeProvider.make({
        name: "primary",
        models: {
          m1: {
            latency: "100 millis",
            text: "from primary",
            // call 0 succeeds; call 1 is overloaded and its retry (call 2) succeeds; then a 503 outage
            script: [FakeProvider.succeed(), FakeProvider.fail(FakeProvider.overloaded()), FakeProvider.succeed()],
            behavior: FakeProvider.fail(FakeProvider.serverError(503), { after: "50 millis" })
          },
          s1: { latency: "120 millis", text: "streamed answer", stream: { chunks: 3, interval: "20 millis" } }
        }
      })
      const secondary = yield* FakeProvider.make({
        name: "secondary",
        default: { latency: "200 millis", text: "from secondary" }
      })
      const { provider } = yield* Resilience.make(
        {
          models: { "secondary/m2": { requestsPerMinute: 1 } },
          paths: {
            chat: {
              retry: "interactive",
              maxWaitMs: 120_000,
              fallback: [
                { provider: "primary", model: "m1" },
                { provider: "secondary", model: "m2" }
              ]
            }
          },
          breaker: { consecutiveFailures: 3, openDurationMs: 600_000 },
          // a generous retry budget, so that the outage's attempts reach the breaker
          retryBudget: { ratio: 1, minRetries: 100 },
          admission: { maxWaitMs: 120_000 },
          prices: {
            m1: { inputPerMillion: 1, outputPerMillion: 2 },
            m2: { inputPerMillion: 3, outputPerMillion: 6 },
            s1: { inputPerMillion: 1, outputPerMillion: 2 }
          }
        },
        [primary.provider, secondary.provider]
      ).pipe(Effect.orDie)

      const exits: Array<Exit.Exit<unknown, unknown>> = []
      // 1. plain success on the primary
      exits.push(yield* settle(provider.complete(ask("chat", "m1"))))
      // 2. overloaded once, retried, success
      exits.push(yield* settle(provider.complete(ask("chat", "m1"))))
      // 3. the primary is down: 3 failed attempts open its breaker, the plan falls back to the secondary
      exits.push(yield* settle(provider.complete(ask("chat", "m1"))))
      // 4. the breaker is open: fail fast to the secondary, which admits 1 request/min: an admission wait
      exits.push(yield* settle(provider.complete(ask("chat", "m1"))))
      // 5. a stream on the default path (the first provider, the request's own model)
      exits.push(yield* settle(Stream.runCollect(provider.stream(ask("default", "s1")))))
      return exits
    })
    const exits = yield* Effect.scoped(run).pipe(
      Effect.orDie,
      Effect.provideService(Random.Random, HalfRandom),
      Effect.provideService(Tracer.Tracer, tracer)
    )
    const snapshot = yield* Metric.snapshot
    const exposition = yield* PrometheusMetrics.format()
    return { spans, snapshot, exposition, exits }
  }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))

// ---------------------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------------------

const calls = (d: Day) => d.spans.filter((s) => s.name === "llm.call")

const retryEvents = (span: Tracer.NativeSpan) =>
  span.events.filter(([name]) => name === "llm.retry").map(([, , attributes]) => attributes)

const samples = (d: Day, id: string) => d.snapshot.filter((m) => m.id === id)

const counterValue = (m: Metric.Metric.Snapshot): number =>
  m.type === "Counter" ? Number(m.state.count) : m.type === "Histogram" ? m.state.count : Number.NaN

/** Sum of a counter family over the samples whose attributes include `match`. */
const total = (d: Day, id: string, match: Record<string, string> = {}) =>
  samples(d, id)
    .filter((m) => Object.entries(match).every(([k, v]) => m.attributes?.[k] === v))
    .reduce((sum, m) => sum + counterValue(m), 0)

const attributeKeys = (d: Day, id: string) => new Set(samples(d, id).flatMap((m) => Object.keys(m.attributes ?? {})))

// ---------------------------------------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------------------------------------

describe("Telemetry through Resilience", () => {
  it.effect("the day itself goes as scripted (every call answered)", () =>
    Effect.gen(function* () {
      const d = yield* day()
      assert.strictEqual(d.exits.length, 5)
      for (const exit of d.exits) assert.isTrue(Exit.isSuccess(exit), String(exit))
    })
  )

  it.effect("one llm.call span per call, with path, models, provider, outcome and usage", () =>
    Effect.gen(function* () {
      const d = yield* day()
      const spans = calls(d)
      assert.strictEqual(spans.length, 5)
      for (const span of spans) {
        assert.strictEqual(span.status._tag, "Ended")
        assert.strictEqual(span.kind, "client")
      }
      const attrs = spans.map((s) => Object.fromEntries(s.attributes))
      expect(attrs.map((a) => [a["llm.path"], a["llm.model"], a["llm.provider"], a["llm.response.model"]])).toEqual([
        ["chat", "m1", "primary", "m1"],
        ["chat", "m1", "primary", "m1"],
        ["chat", "m1", "secondary", "m2"],
        ["chat", "m1", "secondary", "m2"],
        ["default", "s1", "primary", "s1"]
      ])
      for (const a of attrs) {
        assert.strictEqual(a["llm.outcome"], "success")
        assert.isNumber(a["llm.duration_ms"])
        assert.isAbove(a["llm.usage.input_tokens"] as number, 0)
        assert.isAbove(a["llm.usage.output_tokens"] as number, 0)
      }
      // the stream's span carries its time to first token (latency 120 ms)
      assert.strictEqual(attrs[4]["llm.ttft_ms"], 120)
      // the call that waited for admission shows it in its duration (about a minute)
      assert.isAbove(attrs[3]["llm.duration_ms"] as number, 30_000)
    })
  )

  it.effect("retried attempts are llm.retry events on their call's span", () =>
    Effect.gen(function* () {
      const d = yield* day()
      const [first, retried, outage, failFast, streamed] = calls(d)
      assert.deepStrictEqual(retryEvents(first), [])
      expect(retryEvents(retried)).toEqual([
        expect.objectContaining({
          "llm.retry.attempt": 1,
          "llm.retry.error": "Overloaded",
          "llm.retry.decision": "retry",
          "llm.retry.key": "primary/m1"
        })
      ])
      // the outage: two retries, then the third failure gives up and the plan moves on
      expect(retryEvents(outage).map((e) => [e["llm.retry.attempt"], e["llm.retry.decision"]])).toEqual([
        [1, "retry"],
        [2, "retry"],
        [3, "give-up"]
      ])
      // an open breaker is not retried: the plan skips the step
      expect(retryEvents(failFast).filter((e) => e["llm.retry.decision"] === "retry")).toEqual([])
      assert.deepStrictEqual(retryEvents(streamed), [])
    })
  )

  it.effect("API keys and message content never appear in spans or in the exposition", () =>
    Effect.gen(function* () {
      const d = yield* day()
      assert.isAbove(d.spans.length, 5)
      const dump = JSON.stringify(
        d.spans.map((s) => ({
          name: s.name,
          attributes: [...s.attributes],
          events: s.events.map(([name, , attributes]) => [name, attributes])
        }))
      )
      assert.include(dump, "llm.call")
      assert.notInclude(dump, SECRET_CONTENT)
      assert.notInclude(dump, SECRET_KEY)
      assert.notInclude(dump, "sk-test")
      assert.notInclude(d.exposition, SECRET_CONTENT)
      assert.notInclude(d.exposition, "sk-test")
    })
  )

  it.effect("every metric family has samples with the documented attributes", () =>
    Effect.gen(function* () {
      const d = yield* day()
      // requests by provider, model, path, outcome
      expect([...attributeKeys(d, "llm_requests")].sort()).toEqual(["model", "outcome", "path", "provider"])
      assert.strictEqual(total(d, "llm_requests"), 5)
      assert.strictEqual(total(d, "llm_requests", { provider: "primary", model: "m1", outcome: "success" }), 2)
      assert.strictEqual(total(d, "llm_requests", { provider: "secondary", model: "m2", path: "chat" }), 2)
      assert.strictEqual(total(d, "llm_requests", { provider: "primary", model: "s1", path: "default" }), 1)
      // latency and time to first token histograms
      assert.strictEqual(total(d, "llm_request_duration_ms"), 5)
      expect([...attributeKeys(d, "llm_request_duration_ms")].sort()).toEqual(["model", "path", "provider"])
      const ttft = samples(d, "llm_time_to_first_token_ms")
      assert.strictEqual(ttft.length, 1)
      expect(ttft[0].attributes).toEqual({ provider: "primary", model: "s1", path: "default" })
      assert.strictEqual(ttft[0].type === "Histogram" && ttft[0].state.sum, 120)
      // tokens by direction
      assert.isAbove(total(d, "llm_tokens", { direction: "input", provider: "secondary" }), 0)
      assert.isAbove(total(d, "llm_tokens", { direction: "output", provider: "primary" }), 0)
      // cost: charged per provider/model key, from the price table
      assert.isAbove(total(d, "llm_cost_usd", { key: "primary/m1" }), 0)
      assert.isAbove(total(d, "llm_cost_usd", { key: "secondary/m2" }), 0)
      // retries: one Overloaded, two ServerErrors; one give-up at max-retries
      assert.strictEqual(total(d, "llm_retries", { key: "primary/m1", reason: "Overloaded" }), 1)
      assert.strictEqual(total(d, "llm_retries", { key: "primary/m1", reason: "ServerError" }), 2)
      assert.strictEqual(total(d, "llm_retry_give_ups", { key: "primary/m1", reason: "max-retries" }), 1)
      // fallbacks: two moves from the primary to the secondary (the outage, then the open breaker)
      expect([...attributeKeys(d, "fallback_activations")].sort()).toEqual(["from", "reason", "to"])
      assert.strictEqual(total(d, "fallback_activations"), 2)
      // breaker: the primary's circuit is open (1), after one closed -> open transition
      const state = samples(d, "llm_breaker_state").find((m) => m.attributes?.key === "primary/m1")
      assert.isDefined(state)
      assert.strictEqual(state?.type === "Gauge" && Number(state.state.value), 1)
      assert.strictEqual(total(d, "llm_breaker_transitions", { key: "primary/m1", from: "Closed", to: "Open" }), 1)
      // admission (on the rate-limited key): both calls admitted, one after a wait of about a minute on the 1 rpm secondary
      assert.strictEqual(total(d, "llm_admission_admitted", { key: "secondary/m2" }), 2)
      const wait = samples(d, "llm_admission_wait_ms").find((m) => m.attributes?.key === "secondary/m2")
      assert.strictEqual(wait?.type, "Histogram")
      if (wait?.type === "Histogram") {
        assert.strictEqual(wait.state.count, 2)
        assert.isAbove(wait.state.max, 30_000)
      }
    })
  )

  it.effect("the Prometheus exposition passes promtool's parser", () =>
    Effect.gen(function* () {
      const d = yield* day()
      const text = d.exposition
      for (const family of [
        "llm_requests",
        "llm_request_duration_ms",
        "llm_time_to_first_token_ms",
        "llm_tokens",
        "llm_cost_usd",
        "llm_retries",
        "fallback_activations",
        "llm_breaker_state",
        "llm_admission_wait_ms"
      ]) {
        assert.include(text, `# TYPE ${family} `)
      }
      assert.include(text, 'llm_requests{provider="secondary",model="m2",path="chat",outcome="success"} 2')
      const check = promtool(text)
      // exit 0: clean; exit 3: parsed, with lint remarks only (e.g. counters without `_total`);
      // exit 1: the text did not parse
      assert.include([0, 3], check.status, check.stderr)
      assert.notInclude(check.stderr, "error while linting")
      // the only lint remarks are the two known naming conventions (docs/telemetry.md): Effect's exposition adds
      // no `_total` to counters, and durations are in milliseconds
      const remarks = check.stderr.split("\n").filter((line) => line.trim() !== "")
      assert.isAbove(remarks.length, 0)
      for (const remark of remarks) {
        assert.match(
          remark,
          /counter metrics should have "_total" suffix|metric names should not contain abbreviated units/
        )
      }
      // a broken exposition is rejected, so the check above is a real one
      const broken = promtool(`${text}llm_requests{provider="x" 1\n`)
      assert.strictEqual(broken.status, 1)
    })
  )
})

/** Runs `promtool check metrics` (Debian package `prometheus`) on an exposition. */
const promtool = (text: string) => {
  const result = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" })
  if (result.error !== undefined) {
    throw new Error(`promtool is needed to validate the exposition (apt-get install prometheus): ${result.error}`)
  }
  return { status: result.status, stderr: result.stderr }
}

// ---------------------------------------------------------------------------------------------------------
// when the span is created
// ---------------------------------------------------------------------------------------------------------

describe("the llm.call span is created only where it can be seen", () => {
  const request: LlmRequest.LlmRequest = { model: "m", messages: [{ role: "user", content: "Hi" }] }
  /** A raw provider that answers with the name of the span it runs under (`none` without one). */
  const probe = {
    name: "probe",
    complete: () =>
      Effect.map(Effect.option(Effect.currentSpan), (span) => ({
        text: span._tag === "Some" ? span.value.name : "none",
        finishReason: "stop" as const,
        usage: { inputTokens: 1, outputTokens: 1 },
        provider: "probe",
        model: "m"
      })),
    stream: () => Stream.empty
  }

  it.effect("no span under the default tracer without a parent; a span under a parent or another tracer", () =>
    Effect.gen(function* () {
      const { provider } = yield* Resilience.make({}, [probe]).pipe(Effect.orDie)
      const quiet = yield* provider.complete(request)
      assert.strictEqual(quiet.text, "none")
      const nested = yield* provider.complete(request).pipe(Effect.withSpan("parent"))
      assert.strictEqual(nested.text, "llm.call")
      const { spans, tracer } = capturingTracer()
      const traced = yield* provider.complete(request).pipe(Effect.provideService(Tracer.Tracer, tracer))
      assert.strictEqual(traced.text, "llm.call")
      assert.deepStrictEqual(
        spans.map((s) => s.name),
        ["llm.call"]
      )
      // the metrics are recorded either way
      const served = yield* Metric.value(
        Metric.withAttributes(Telemetry.requests, {
          provider: "probe",
          model: Telemetry.otherModel, // "m" is not named in the configuration
          path: "default",
          outcome: "success"
        })
      )
      assert.strictEqual(served.count, 3)
    }).pipe(Effect.scoped, Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

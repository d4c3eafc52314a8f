/**
 * Metrics server: runs a short, scripted day of traffic through `Resilience` over two FakeProviders (a
 * rate-limit storm, an outage that opens the primary's breaker, fallbacks, admission waits, streams, a looping
 * agent), then serves every metric it left at `/metrics` in the Prometheus text format, with
 * `effect/observability`'s `PrometheusMetrics` on `@effect/platform-node`'s HTTP server.
 *
 * The traffic runs in virtual time (TestClock): ten simulated minutes take well under a second, and every
 * run gives the same numbers. No API key, no network beyond the local port.
 *
 * Run:
 * - `npx node examples/metrics-server.ts` serves `http://localhost:9464/metrics` (`--port N` to change it);
 * - `npx node examples/metrics-server.ts --once` prints the exposition text and exits.
 *
 * Validate it: `npx node examples/metrics-server.ts --once | promtool check metrics` (Debian's `prometheus`).
 */
import { createServer } from "node:http"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { type LlmRequest, Resilience } from "@llm-resilience/core"
import { FakeProvider } from "@llm-resilience/testing"
import { Console, Effect, type Fiber, Layer, References, Stream } from "effect"
import { HttpRouter } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { TestClock } from "effect/testing"

const args = process.argv.slice(2)
const once = args.includes("--once")
const portArg = args.indexOf("--port")
const port = portArg >= 0 ? Number(args[portArg + 1]) : Number(process.env.PORT ?? 9464)

const config: Resilience.Config = {
  models: {
    "primary/chat-large": { requestsPerMinute: 120, tokensPerMinute: 120_000 },
    "secondary/chat-small": { requestsPerMinute: 60 }
  },
  paths: {
    chat: { retry: "interactive", maxWaitMs: 5_000, timeouts: { totalMs: 8_000, firstTokenMs: 3_000, idleMs: 2_000 } },
    batch: { retry: "background", maxWaitMs: 120_000 }
  },
  fallback: [
    { provider: "primary", model: "chat-large" },
    { provider: "secondary", model: "chat-small" },
    { staticAnswer: "The assistant is busy; please try again shortly." }
  ],
  breaker: { failureRateThreshold: 0.5, minimumCalls: 5, windowMs: 30_000, openDurationMs: 30_000 },
  prices: {
    "chat-large": { inputPerMillion: 2.5, outputPerMillion: 10 },
    "chat-small": { inputPerMillion: 0.15, outputPerMillion: 0.6 }
  },
  agent: { loopRepeats: 3 }
}

const request = (i: number, path: string): LlmRequest.LlmRequest => ({
  model: "chat-large",
  messages: [{ role: "user", content: `question ${i}` }],
  maxOutputTokens: 200,
  metadata: { path, tenant: i % 2 === 0 ? "acme" : "globex" }
})

/** Ten virtual minutes: about 90 requests a minute on two paths, a quarter of the chat ones streamed. */
const traffic = Effect.gen(function* () {
  const primary = yield* FakeProvider.make({
    name: "primary",
    default: {
      latency: "300 millis",
      text: "An answer from the primary.",
      stream: { chunks: 4, interval: "50 millis" }
    },
    windows: [
      // minute 2 to 3: a rate-limit storm
      {
        from: "2 minutes",
        to: "3 minutes",
        behavior: FakeProvider.fail(FakeProvider.rateLimited({ retryAfter: "2 seconds" }))
      },
      // minute 5 to 7: an outage (503s)
      {
        from: "5 minutes",
        to: "7 minutes",
        behavior: FakeProvider.fail(FakeProvider.serverError(503), { after: "1 second" })
      }
    ]
  })
  const secondary = yield* FakeProvider.make({
    name: "secondary",
    default: { latency: "150 millis", text: "A shorter answer.", stream: { chunks: 2, interval: "30 millis" } }
  })
  const { provider } = yield* Resilience.make(config, [primary.provider, secondary.provider])

  const fibers: Array<Fiber.Fiber<unknown, unknown>> = []
  for (let i = 0; i < 900; i++) {
    const path = i % 3 === 0 ? "batch" : "chat"
    const call =
      path === "chat" && i % 4 === 1
        ? Stream.runDrain(provider.stream(request(i, path)))
        : provider.complete(request(i, path))
    fibers.push(yield* Effect.forkChild(Effect.exit(call)))
    // a runaway agent repeating itself every minute: the loop guard stops its third identical turn
    if (i % 90 === 0 && i < 360) {
      const loop = provider.complete({
        model: "chat-large",
        messages: [{ role: "user", content: "call the search tool again" }],
        metadata: { path: "chat", conversationId: "agent-7" }
      })
      fibers.push(yield* Effect.forkChild(Effect.exit(loop)))
    }
    yield* TestClock.adjust("666 millis")
    if (i % 90 === 0) yield* Console.error(`  simulated minute ${i / 90} ...`)
  }
  for (let i = 0; i < 600 && fibers.some((f) => f.pollUnsafe() === undefined); i++) yield* TestClock.adjust("1 second")
  const calls = (yield* primary.calls).length + (yield* secondary.calls).length
  yield* Console.error(`traffic done: ${fibers.length} requests, ${calls} provider calls`)
}).pipe(
  Effect.scoped,
  Effect.provide(TestClock.layer()),
  // the fallback plan logs a warning per activation: the metrics say it here
  Effect.provideService(References.MinimumLogLevel, "Error")
)

const server = HttpRouter.serve(PrometheusMetrics.layerHttp({ path: "/metrics" }), {
  disableLogger: true,
  disableListenLog: true
}).pipe(Layer.provide(NodeHttpServer.layer(createServer, { port })))

const serve = Effect.scoped(
  Effect.gen(function* () {
    yield* Layer.build(server)
    yield* Console.log(`serving Prometheus metrics at http://localhost:${port}/metrics (Ctrl-C to stop)`)
    return yield* Effect.never
  })
)

const main = traffic.pipe(
  Effect.andThen(
    once ? Effect.flatMap(PrometheusMetrics.format(), (text) => Effect.sync(() => process.stdout.write(text))) : serve
  )
)

NodeRuntime.runMain(main)

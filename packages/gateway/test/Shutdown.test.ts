import * as Http from "node:http"
import { assert, describe, it } from "@effect/vitest"
import { ChaosServer } from "@llm-resilience/testing"
import { Effect } from "effect"
import { bundleCli, startCli, tempDir } from "./support/process.ts"
import { text, upstreamKey } from "./support/gateway.ts"

/** A GET on a new connection: its status, or the connection error's code. */
const fresh = (url: string, path = "/healthz"): Promise<number | string> =>
  new Promise((resolve) => {
    const req = Http.get(`${url}${path}`, { agent: false, timeout: 5_000 }, (res) => {
      res.resume()
      resolve(res.statusCode ?? -1)
    })
    req.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message))
    req.on("timeout", () => req.destroy(new Error("timeout")))
  })

/** A streamed chat completion read to its end: the text and whether `[DONE]` arrived. */
const streamed = (url: string) =>
  fetch(`${url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "slow", stream: true, messages: [{ role: "user", content: "hi" }] }),
    signal: AbortSignal.timeout(20_000)
  }).then(async (res) => {
    const body = await res.text()
    const deltas = body
      .split("\n")
      .filter((line) => line.startsWith("data: {"))
      .map((line) => JSON.parse(line.slice(6)).choices?.[0]?.delta?.content ?? "")
    return { status: res.status, text: deltas.join(""), done: body.includes("data: [DONE]") }
  })

/** The same, sent with `expect: 100-continue` (the body goes once the gateway says to continue). */
const streamedAfterContinue = (url: string) =>
  new Promise<{ status: number; text: string; done: boolean }>((resolve, reject) => {
    const body = JSON.stringify({ model: "slow", stream: true, messages: [{ role: "user", content: "hi" }] })
    const req = Http.request(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", expect: "100-continue" },
      timeout: 20_000
    })
    req.on("continue", () => req.end(body))
    req.on("response", (res) => {
      let text = ""
      res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk))
      res.on("end", () => {
        const deltas = text
          .split("\n")
          .filter((line) => line.startsWith("data: {"))
          .map((line) => JSON.parse(line.slice(6)).choices?.[0]?.delta?.content ?? "")
        resolve({ status: res.statusCode ?? -1, text: deltas.join(""), done: text.includes("data: [DONE]") })
      })
    })
    req.on("error", reject)
    req.on("timeout", () => req.destroy(new Error("timeout")))
  })

describe("Gateway shutdown", () => {
  it.live(
    "on SIGTERM it drains (readyz 503, healthz 200, new requests refused), lets the in-flight stream finish, and exits 0",
    () =>
      Effect.gen(function* () {
        const chaos = yield* ChaosServer.make({ slowHeadersMs: 1_500 })
        const { dir, remove } = tempDir()
        yield* Effect.addFinalizer(() => Effect.sync(remove))
        const bundle = yield* Effect.promise(() => bundleCli(dir))
        const gateway = yield* Effect.acquireRelease(
          Effect.promise(() =>
            startCli(
              bundle,
              {
                // a grace far longer than the test: the drain must end when the stream does, not at the deadline
                server: { port: 0, shutdownGraceMs: 600_000 },
                providers: { slow: { kind: "openai", baseUrl: chaos.openAiBaseUrl("slow-headers"), apiKeyEnv: "K" } },
                models: { "slow/slow": {} }
              },
              { K: upstreamKey },
              dir
            )
          ),
          (g) => Effect.sync(() => g.child.kill("SIGKILL"))
        )
        assert.strictEqual(yield* Effect.promise(() => fresh(gateway.url)), 200)
        assert.strictEqual(yield* Effect.promise(() => fresh(gateway.url, "/readyz")), 200)
        const inFlight = streamed(gateway.url)
        const continued = streamedAfterContinue(gateway.url)
        // the streams' requests are in flight (the provider answers after 1.5 s) when the signal arrives
        for (let i = 0; (yield* chaos.requests).length < 2; i++) {
          assert.isBelow(i, 250, "the request did not reach the provider")
          yield* Effect.sleep("20 millis")
        }
        gateway.child.kill("SIGTERM")
        const readiness = yield* Effect.promise(async () => {
          for (let i = 0; i < 100; i++) {
            const answer = await fresh(gateway.url, "/readyz")
            if (answer !== 200) return answer
            await new Promise((r) => setTimeout(r, 10))
          }
          return "still ready"
        })
        // draining: not ready (a load balancer stops sending), still alive, new work refused to go elsewhere
        assert.strictEqual(readiness, 503)
        assert.strictEqual(yield* Effect.promise(() => fresh(gateway.url)), 200)
        const refused = yield* Effect.promise(() =>
          fetch(`${gateway.url}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ model: "slow", messages: [{ role: "user", content: "hi" }] }),
            signal: AbortSignal.timeout(5_000)
          }).then(async (res) => ({
            status: res.status,
            retryAfter: res.headers.get("retry-after"),
            body: (await res.json()) as { readonly error: { readonly type: string } }
          }))
        )
        assert.deepStrictEqual([refused.status, refused.retryAfter], [503, "1"])
        assert.strictEqual(refused.body.error.type, "server_error")
        const result = yield* Effect.promise(() => inFlight)
        assert.deepStrictEqual(result, { status: 200, text, done: true })
        assert.deepStrictEqual(yield* Effect.promise(() => continued), { status: 200, text, done: true })
        const exited = yield* Effect.promise(() => gateway.exited).pipe(
          Effect.timeoutOrElse({ duration: "20 seconds", orElse: () => Effect.succeed("still draining") })
        )
        assert.strictEqual(exited, 0, gateway.stderr())
        assert.include(["ECONNREFUSED", "ECONNRESET"], yield* Effect.promise(() => fresh(gateway.url)))
      }),
    60_000
  )
})

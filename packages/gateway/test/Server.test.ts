import * as Http from "node:http"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import { Gateway } from "../src/index.ts"
import { baseConfig, startGateway, upstreamKey } from "./support/gateway.ts"

/** A request to the gateway: its status and body. */
const call = (url: string, method: string, path: string) =>
  Effect.promise(() =>
    fetch(`${url}${path}`, { method, signal: AbortSignal.timeout(5_000) }).then(async (r) => [r.status, await r.text()])
  )

describe("Gateway server", () => {
  it.live("serves its paths by method and exact path: the query aside, HEAD by GET, 404 otherwise", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway(baseConfig)
      assert.deepStrictEqual(yield* call(url, "GET", "/healthz?probe=1"), [200, "ok"])
      assert.deepStrictEqual(yield* call(url, "HEAD", "/readyz"), [200, ""])
      assert.deepStrictEqual(yield* call(url, "GET", "/v1/chat/completions"), [404, ""])
      assert.deepStrictEqual(yield* call(url, "POST", "/healthz"), [404, ""])
      assert.deepStrictEqual(yield* call(url, "GET", "/v1/chat"), [404, ""])
    })
  )

  it.live("a client that goes away interrupts its call: the provider's connection is closed", () =>
    Effect.gen(function* () {
      // a provider that never answers, and tells when the gateway's request to it is closed
      const arrived = yield* Deferred.make<void>()
      const closed = yield* Deferred.make<void>()
      const upstream = Http.createServer((req) => {
        Deferred.doneUnsafe(arrived, Effect.void)
        req.socket.once("close", () => Deferred.doneUnsafe(closed, Effect.void))
      })
      yield* Effect.acquireRelease(
        Effect.callback<void>((resume) => void upstream.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () =>
          Effect.sync(() => upstream.close()).pipe(Effect.andThen(Effect.sync(() => upstream.closeAllConnections())))
      )
      const { port } = upstream.address() as { readonly port: number }
      const context = yield* Layer.build(
        Gateway.layer(
          {
            server: { port: 0 },
            providers: { up: { kind: "openai", baseUrl: `http://127.0.0.1:${port}/v1`, apiKeyEnv: "K" } },
            models: { "up/m": {} }
          },
          { env: { K: upstreamKey } }
        )
      )
      const url = HttpServer.formatAddress(Context.get(context, HttpServer.HttpServer).address)
      const client = new AbortController()
      const answered = fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] }),
        signal: client.signal
      }).catch(() => "aborted")
      yield* Deferred.await(arrived).pipe(Effect.timeout("5 seconds"))
      client.abort()
      assert.strictEqual(yield* Effect.promise(() => answered), "aborted")
      const interrupted = yield* Deferred.await(closed).pipe(
        Effect.as("closed"),
        Effect.timeoutOrElse({ duration: "5 seconds", orElse: () => Effect.succeed("still open") })
      )
      assert.strictEqual(interrupted, "closed")
    })
  )
})

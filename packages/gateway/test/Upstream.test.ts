import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import * as Net from "node:net"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Stream } from "effect"
import { constTrue } from "effect/Function"
import { Headers, HttpClient, HttpClientError, HttpClientRequest, type HttpClientResponse } from "effect/http"
import * as Upstream from "../src/internal/upstream.ts"

/** What the test server saw of a request. */
interface Seen {
  readonly method: string
  readonly url: string
  readonly contentType: string | undefined
  readonly body: string
}

/** A real HTTP server on a free loopback port for the test's scope; `handle` answers each request. */
const serve = (handle: (req: IncomingMessage, res: ServerResponse, body: string) => void) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly url: string; readonly connections: () => Promise<number> }>((resume) => {
      const server = createServer((req, res) => {
        const parts: Array<Buffer> = []
        req.on("data", (chunk: Buffer) => parts.push(chunk))
        req.on("end", () => handle(req, res, Buffer.concat(parts).toString()))
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as Net.AddressInfo
        resume(
          Effect.succeed({
            url: `http://127.0.0.1:${port}`,
            server,
            connections: () =>
              new Promise<number>((done, fail) => server.getConnections((e, n) => (e ? fail(e) : done(n))))
          })
        )
      })
    }),
    (s) =>
      Effect.callback<void>((resume) => {
        const server = (s as unknown as { server: ReturnType<typeof createServer> }).server
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

/** A server that answers `head` and `first`, then ends with `rest` once `release` ran. */
const inTwoParts = (head: Record<string, string>, first: string, rest: string) =>
  Effect.gen(function* () {
    const more = yield* Deferred.make<void>()
    const { url } = yield* serve((_req, res) => {
      res.writeHead(200, head)
      res.write(first)
      Effect.runFork(
        Effect.andThen(
          Deferred.await(more),
          Effect.sync(() => res.end(rest))
        )
      )
    })
    return { url, release: Deferred.succeed(more, undefined) }
  })

/** A raw TCP server that answers every connection with `reply` (for malformed responses). */
const serveRaw = (reply: string) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly url: string; readonly server: Net.Server }>((resume) => {
      const server = Net.createServer((socket) => {
        socket.once("data", () => socket.end(reply))
        socket.on("error", () => {})
      })
      server.listen(0, "127.0.0.1", () =>
        resume(Effect.succeed({ url: `http://127.0.0.1:${(server.address() as Net.AddressInfo).port}`, server }))
      )
    }),
    ({ server }) => Effect.callback<void>((resume) => void server.close(() => resume(Effect.void)))
  )

/** Every wait on the other side is bounded. */
const bounded = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.timeout(effect, "5 seconds")

/** Waits (bounded) until `done` holds, looking every 5 ms. */
const eventually = (done: () => boolean | Promise<boolean>) =>
  bounded(
    Effect.promise(async () => {
      while (!(await done())) await new Promise((r) => setTimeout(r, 5))
    })
  )

/** Completes `closed` when the server's response closes: with whether it was sent whole. */
const reportClose = (res: ServerResponse, closed: Deferred.Deferred<boolean>) =>
  res.on("close", () => Deferred.doneUnsafe(closed, Exit.succeed(res.writableFinished)))

const reasonOf = (exit: Exit.Exit<unknown, unknown>) => {
  assert.isTrue(Exit.isFailure(exit))
  const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  assert.instanceOf(error?._tag === "Fail" ? error.error : undefined, HttpClientError.HttpClientError)
  return (error as { error: HttpClientError.HttpClientError }).error.reason._tag
}

/** The client's two ways: untraced (sent directly, as the providers call it) and traced (through `HttpClient.make`). */
const modes = [
  [
    "untraced",
    <A, E, R>(e: Effect.Effect<A, E, R>) => Effect.provideService(e, HttpClient.TracerDisabledWhen, constTrue)
  ],
  ["traced", <A, E, R>(e: Effect.Effect<A, E, R>) => e]
] as const

const execute = (request: HttpClientRequest.HttpClientRequest) =>
  Effect.flatMap(HttpClient.HttpClient, (client) => client.execute(request))

for (const [mode, run] of modes) {
  const test = <A, E>(
    name: string,
    body: () => Effect.Effect<A, E, HttpClient.HttpClient | import("effect").Scope.Scope>
  ) => it.live(`${name} (${mode})`, () => Effect.scoped(run(body())).pipe(Effect.provide(Upstream.layer)))

  describe(`the upstream client (${mode})`, () => {
    test("gives the status, every header (a repeated one's values joined), cookies, and the body", () =>
      Effect.gen(function* () {
        const { url } = yield* serve((_req, res) => {
          res.setHeader("x-multi", ["a", "b"])
          res.setHeader("set-cookie", ["one=1", "two=2"])
          res.writeHead(201, { "content-type": "application/json" })
          res.end(`{"ok":true}`)
        })
        const response = yield* execute(HttpClientRequest.get(`${url}/v1/x`))
        assert.strictEqual(response.status, 201)
        assert.isTrue(Headers.isHeaders(response.headers))
        assert.strictEqual(response.headers["x-multi"], "a, b")
        assert.strictEqual(response.headers["content-type"], "application/json")
        assert.deepStrictEqual(
          Object.values(response.cookies.cookies).map((c) => `${c.name}=${c.value}`),
          ["one=1", "two=2"]
        )
        assert.deepStrictEqual(yield* response.json, { ok: true })
        assert.strictEqual(yield* response.text, `{"ok":true}`)
      }))

    test("sends the method, the path with its query, and text, byte and stream bodies", () =>
      Effect.gen(function* () {
        const { url } = yield* serve((req, res, body) => {
          const seen: Seen = { method: req.method!, url: req.url!, contentType: req.headers["content-type"], body }
          res.end(JSON.stringify(seen))
        })
        const base = HttpClientRequest.post(`${url}/v1/chat`, { urlParams: { q: "a b" } })
        const sent = (request: HttpClientRequest.HttpClientRequest) =>
          Effect.flatMap(execute(request), (response) => response.json)
        assert.deepStrictEqual(yield* sent(HttpClientRequest.bodyText(base, `{"a":1}`, "application/json")), {
          method: "POST",
          url: "/v1/chat?q=a+b",
          contentType: "application/json",
          body: `{"a":1}`
        })
        const bytes = HttpClientRequest.bodyUint8Array(base, new TextEncoder().encode("bytes"), "application/x-bytes")
        assert.strictEqual(((yield* sent(bytes)) as unknown as Seen).body, "bytes")
        const stream = HttpClientRequest.bodyStream(
          HttpClientRequest.put(`${url}/s`),
          Stream.make("ab", "cd").pipe(Stream.encodeText)
        )
        assert.deepInclude(yield* sent(stream), { method: "PUT", url: "/s", body: "abcd" })
      }))

    test("reads a streamed body as it arrives", () =>
      Effect.gen(function* () {
        const { release, url } = yield* inTwoParts(
          { "content-type": "text/event-stream" },
          "data: 1\n\n",
          "data: 2\n\n"
        )
        const response = yield* execute(HttpClientRequest.post(url))
        const pull = yield* Stream.toPull(Stream.decodeText(response.stream))
        // the second event is sent only once the first was read
        assert.deepStrictEqual(yield* bounded(pull), ["data: 1\n\n"])
        yield* release
        assert.deepStrictEqual(yield* bounded(pull), ["data: 2\n\n"])
      }))

    test("a stream being read pauses the connection while its reader waits, and reads the rest after", () =>
      Effect.gen(function* () {
        const size = 4 * 1024 * 1024
        const { url } = yield* serve((_req, res) => res.end(Buffer.alloc(size, 7)))
        const response = yield* execute(HttpClientRequest.post(url))
        const pull = yield* Stream.toPull(response.stream)
        let read = (yield* bounded(pull)).reduce((n, chunk) => n + chunk.length, 0)
        // undici's side of the exchange, through the wrapper of `HttpClient.make` when traced
        const exchange = (("original" in response ? response.original : response) as { exchange: object }).exchange
        const paused = () => (exchange as { controller?: { paused: boolean } }).controller?.paused === true
        yield* eventually(paused)
        while (read < size) read += (yield* bounded(pull)).reduce((n, chunk) => n + chunk.length, 0)
        assert.strictEqual(read, size)
      }))

    test("ending a stream before the body's end aborts the request and closes its connection", () =>
      Effect.gen(function* () {
        const closed = yield* Deferred.make<boolean>()
        const { connections, url } = yield* serve((_req, res) => {
          res.writeHead(200, { "content-type": "text/event-stream" })
          res.write("data: 1\n\n")
          reportClose(res, closed)
        })
        const response = yield* execute(HttpClientRequest.post(url))
        const first = yield* bounded(Stream.runCollect(Stream.take(Stream.decodeText(response.stream), 1)))
        assert.deepStrictEqual(first, ["data: 1\n\n"])
        assert.isFalse(yield* bounded(Deferred.await(closed)), "the server's response was cut, not finished")
        yield* eventually(async () => (await connections()) === 0)
      }))

    test("interrupting a call before the response aborts the request at the server", () =>
      Effect.gen(function* () {
        const received = yield* Deferred.make<void>()
        const closed = yield* Deferred.make<boolean>()
        const { connections, url } = yield* serve((_req, res) => {
          reportClose(res, closed)
          Deferred.doneUnsafe(received, Exit.void)
        })
        const fiber = yield* Effect.forkChild(execute(HttpClientRequest.post(url)))
        yield* bounded(Deferred.await(received))
        yield* Fiber.interrupt(fiber)
        assert.isFalse(yield* bounded(Deferred.await(closed)))
        yield* eventually(async () => (await connections()) === 0)
      }))

    test("interrupting a read of the whole body aborts the request", () =>
      Effect.gen(function* () {
        const closed = yield* Deferred.make<boolean>()
        const { url } = yield* serve((_req, res) => {
          res.writeHead(200, { "content-length": "100" })
          res.write("0123456789")
          reportClose(res, closed)
        })
        const response = yield* execute(HttpClientRequest.post(url))
        const fiber = yield* Effect.forkChild(response.arrayBuffer)
        yield* Effect.yieldNow
        yield* Fiber.interrupt(fiber)
        assert.isFalse(yield* bounded(Deferred.await(closed)))
      }))

    test("a body has one reader at a time: a second one waiting beside it dies instead of hanging", () =>
      Effect.gen(function* () {
        const { release, url } = yield* inTwoParts({ "content-length": "4" }, "ab", "cd")
        const response = yield* execute(HttpClientRequest.post(url))
        const first = yield* Effect.forkChild(response.text)
        yield* Effect.yieldNow
        const second = yield* bounded(Effect.exit(response.text))
        assert.isTrue(Exit.hasDies(second))
        yield* release
        assert.strictEqual(yield* bounded(Fiber.join(first)), "abcd")
        assert.strictEqual(yield* response.text, "abcd")
      }))

    test("a connection reset mid-body fails the body with a DecodeError, read whole or streamed", () =>
      Effect.gen(function* () {
        const { url } = yield* serve((_req, res) => {
          res.writeHead(200, { "content-length": "100" })
          res.write("0123456789", () => res.socket?.destroy())
        })
        const whole = yield* execute(HttpClientRequest.post(url))
        assert.strictEqual(reasonOf(yield* bounded(Effect.exit(whole.arrayBuffer))), "DecodeError")
        const streamed = yield* execute(HttpClientRequest.post(url))
        assert.strictEqual(reasonOf(yield* bounded(Effect.exit(Stream.runDrain(streamed.stream)))), "DecodeError")
      }))

    test("a refused connection and a malformed response fail with a TransportError", () =>
      Effect.gen(function* () {
        const { url } = yield* serveRaw("NOT HTTP AT ALL\r\n\r\n")
        assert.strictEqual(reasonOf(yield* bounded(Effect.exit(execute(HttpClientRequest.get(url))))), "TransportError")
        const refused = yield* Effect.scoped(Effect.map(serveRaw(""), (s) => s.url))
        assert.strictEqual(
          reasonOf(yield* bounded(Effect.exit(execute(HttpClientRequest.get(refused))))),
          "TransportError"
        )
      }))
  })
}

describe("the upstream client's per-request objects", () => {
  setFlagsFromString("--expose-gc")
  const gc = runInNewContext("gc") as () => void

  it.live("are not kept once the call is over, whether the body was read or not", () =>
    Effect.gen(function* () {
      const { url } = yield* serve((_req, res) => res.end("{}"))
      const collected = new Set<string>()
      const registry = new FinalizationRegistry((call: string) => collected.add(call))
      const call = (name: string, read: boolean) =>
        Effect.gen(function* () {
          const response = yield* execute(HttpClientRequest.post(url))
          if (read) yield* response.json
          // undici has ended the body by the time a second call on the one connection is answered
          registry.register((response as HttpClientResponse.HttpClientResponse & { exchange: object }).exchange, name)
        })
      yield* call("read", true)
      yield* call("unread", false)
      yield* call("last", true)
      yield* eventually(() => {
        gc()
        return collected.has("read") && collected.has("unread")
      })
    }).pipe(
      Effect.scoped,
      Effect.provideService(HttpClient.TracerDisabledWhen, constTrue),
      Effect.provide(Upstream.layer)
    )
  )
})

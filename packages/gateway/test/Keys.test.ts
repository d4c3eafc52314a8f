import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger, References, Tracer } from "effect"
import OpenAI from "openai"
import { capturingTracer } from "../../providers/test/support/tracer.ts"
import { Gateway } from "../src/index.ts"
import { baseConfig, clientKey, startGateway, upstreamKey } from "./support/gateway.ts"

/** Every string reachable from a value (maps, sets, arrays, objects, errors). */
const strings = (root: unknown): Array<string> => {
  const out: Array<string> = []
  const seen = new Set<unknown>()
  const stack: Array<unknown> = [root]
  while (stack.length > 0) {
    const value = stack.pop()
    if (typeof value === "string") out.push(value)
    else if (value !== null && typeof value === "object" && !seen.has(value)) {
      seen.add(value)
      if (value instanceof Map) stack.push(...value.keys(), ...value.values())
      else if (value instanceof Set || Array.isArray(value)) stack.push(...value)
      else {
        if (value instanceof Error) stack.push(value.message, value.stack, value.cause)
        stack.push(...Object.values(value))
      }
    }
  }
  return out
}

const post = (url: string, path: string, body: unknown, headers: Record<string, string>) =>
  fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body)
  }).then(async (r) => ({ status: r.status, headers: [...r.headers], body: await r.text() }))

describe("Gateway keys", () => {
  it("keys are stored hashed", () => {
    assert.match(Gateway.hashKey(clientKey), /^[0-9a-f]{64}$/)
    assert.notInclude(Gateway.hashKey(clientKey), clientKey)
    assert.notStrictEqual(Gateway.hashKey("a"), Gateway.hashKey("b"))
  })

  it.live("a tenant's request limit is enforced per key; other tenants are not affected", () =>
    Effect.gen(function* () {
      const { url } = yield* startGateway((chaos) => ({
        ...baseConfig(chaos),
        keys: [
          { sha256: Gateway.hashKey("gw-small"), tenant: "small", requestsPerMinute: 2 },
          { sha256: Gateway.hashKey("gw-big"), tenant: "big", requestsPerMinute: 100 }
        ]
      }))
      const ask = (key: string) =>
        new OpenAI({ apiKey: key, baseURL: `${url}/v1`, maxRetries: 0 }).chat.completions
          .create({ model: "gpt-small", messages: [{ role: "user", content: "hi" }] })
          .then(
            () => 200,
            (e: InstanceType<typeof OpenAI.APIError>) => [e.status, e.code, e.headers?.get("retry-after")]
          )
      const small = yield* Effect.promise(async () => [
        await ask("gw-small"),
        await ask("gw-small"),
        await ask("gw-small")
      ])
      assert.deepStrictEqual(small.slice(0, 2), [200, 200])
      const [status, code, retryAfter] = small[2] as [number, string, string]
      assert.deepStrictEqual([status, code], [429, "tenant_rate_limited"])
      assert.isAbove(Number(retryAfter), 0)
      assert.strictEqual(yield* Effect.promise(() => ask("gw-big")), 200)
    })
  )

  it.live(
    "the key is a bearer token or x-api-key; a key that matched lets no other in; each answer has its own id",
    () =>
      Effect.gen(function* () {
        const { url } = yield* startGateway(baseConfig)
        const answers: Array<{ readonly status: number; readonly headers: Array<[string, string]> }> = []
        for (const headers of [
          { authorization: `Bearer ${clientKey}` },
          { authorization: `bearer \t ${clientKey}` },
          { "x-api-key": clientKey },
          { authorization: `Bearer ${clientKey}x` },
          { authorization: `Bearer ${clientKey.slice(0, -1)}` },
          { authorization: `Basic ${clientKey}` },
          // a bearer token is the credential, even beside a right x-api-key
          { authorization: `Bearer ${clientKey}x`, "x-api-key": clientKey },
          {}
        ]) {
          const body = { model: "gpt-small", messages: [{ role: "user", content: "hi" }] }
          answers.push(yield* Effect.promise(() => post(url, "/v1/chat/completions", body, headers)))
        }
        assert.deepStrictEqual(
          answers.map((a) => a.status),
          [200, 200, 200, 401, 401, 401, 401, 401]
        )
        const ids = answers.map((a) => new Map(a.headers).get("x-request-id") ?? "")
        for (const id of ids) assert.match(id, /^[0-9a-f]{32}$/)
        assert.strictEqual(new Set(ids).size, ids.length)
      })
  )

  it.live("no span, log, response or header holds an upstream key or a gateway key", () =>
    Effect.gen(function* () {
      const { spans, tracer } = capturingTracer()
      const logs: Array<unknown> = []
      const capture = Logger.make((o) => {
        logs.push({ message: o.message, cause: o.cause, annotations: o.fiber.getRef(References.CurrentLogAnnotations) })
      })
      // the chaos server refuses the upstream key (401) on the broken provider
      const { url } = yield* startGateway((chaos) => baseConfig(chaos, "authentication")).pipe(
        Effect.provideService(Tracer.Tracer, tracer),
        Effect.provideService(Logger.CurrentLoggers, new Set([capture]))
      )
      const answers = yield* Effect.promise(() =>
        Promise.all(
          ["chat", "solo", "gpt-small"].flatMap((model) => [
            post(
              url,
              "/v1/chat/completions",
              { model, messages: [{ role: "user", content: "hi" }] },
              {
                authorization: `Bearer ${clientKey}`
              }
            ),
            post(
              url,
              "/v1/chat/completions",
              { model, stream: true, messages: [{ role: "user", content: "hi" }] },
              { authorization: `Bearer ${clientKey}` }
            ),
            post(
              url,
              "/v1/messages",
              { model, max_tokens: 10, stream: true, messages: [{ role: "user", content: "hi" }] },
              { "x-api-key": clientKey }
            ),
            post(
              url,
              "/v1/messages",
              { model, max_tokens: 10, messages: [{ role: "user", content: "hi" }] },
              {
                "x-api-key": "gw-wrong-key"
              }
            )
          ])
        )
      )
      // the upstream refused the gateway's key: the client sees a gateway error, not the provider's body
      assert.includeMembers(
        answers.map((a) => a.status),
        [200, 502, 401]
      )
      assert.isTrue(spans.some((s) => s.name === "OpenAiProvider.complete"))
      const found: Array<string> = []
      const secrets = [upstreamKey, "SECRET-4242", clientKey, "gw-wrong-key"]
      const check = (what: string, root: unknown) => {
        for (const s of strings(root)) {
          for (const secret of secrets) if (s.includes(secret)) found.push(`${what}: ${s.slice(0, 120)}`)
        }
      }
      for (const span of spans) check(`span ${span.name}`, { attributes: span.attributes, events: span.events })
      check("the log", logs)
      check("the answers", answers)
      assert.deepStrictEqual(found.slice(0, 5), [])
    })
  )
})

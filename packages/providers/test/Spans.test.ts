/**
 * A provider call makes its spans (its own and the HTTP client's, with trace headers) only where a span could
 * be seen: under a tracer other than effect's default, or under a parent span. Elsewhere it makes none and
 * sends no trace headers; the credential headers stay redacted either way.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Tracer } from "effect"
import { azure, call, ok, sse, streamed } from "./support/replay.ts"
import { capturingTracer } from "./support/tracer.ts"

const reply = {
  body: JSON.stringify({
    model: "m-1",
    choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }]
  })
}
const chunk = { model: "m-1", choices: [{ index: 0, delta: { content: "hi" }, finish_reason: "stop" }] }
const streamReply = { body: sse([chunk, "[DONE]"]) }
const traceHeaders = (headers: Readonly<Record<string, string>>) =>
  Object.keys(headers).filter((name) => name === "traceparent" || name === "b3")

describe("provider spans", () => {
  it.effect("with effect's default tracer and no parent span: no span, no trace headers", () =>
    Effect.gen(function* () {
      const { exit, seen } = yield* call(azure(), reply)
      assert.strictEqual(ok(exit).text, "hi")
      assert.deepStrictEqual(traceHeaders(seen[0].headers), [])
      assert.include(seen[0].redacted, "api-key")
    })
  )

  it.effect("under a parent span: the client's span joins the trace and its headers are sent", () =>
    Effect.gen(function* () {
      const { seen } = yield* call(azure(), reply).pipe(Effect.withSpan("caller"))
      assert.deepStrictEqual(traceHeaders(seen[0].headers).sort(), ["b3", "traceparent"])
      assert.include(seen[0].redacted, "api-key")
    })
  )

  it.effect("under a tracer: the provider's span with its attributes, the client's span inside it", () =>
    Effect.gen(function* () {
      const { spans, tracer } = capturingTracer()
      const { seen } = yield* call(azure(), reply).pipe(Effect.provideService(Tracer.Tracer, tracer))
      const provider = spans.find((s) => s.name === "AzureOpenAiProvider.complete")
      const client = spans.find((s) => s.name === "POST")
      assert.isDefined(provider)
      assert.isDefined(client)
      assert.strictEqual(provider!.attributes.get("llm.provider"), "azure-openai")
      assert.strictEqual(provider!.attributes.get("llm.model"), "m-1")
      assert.strictEqual(provider!.attributes.get("http.response.status_code"), 200)
      assert.strictEqual(client!.parent._tag === "Some" ? client!.parent.value : undefined, provider)
      assert.strictEqual(seen[0].headers.traceparent?.split("-")[2], client!.spanId)
    })
  )

  it.effect("a stream likewise: no span and no trace headers unseen, its span around the client's under a tracer", () =>
    Effect.gen(function* () {
      const unseen = yield* streamed(azure(), streamReply)
      assert.strictEqual(ok(unseen.exit).length, 2)
      assert.deepStrictEqual(traceHeaders(unseen.seen[0].headers), [])
      const { spans, tracer } = capturingTracer()
      const { exit, seen } = yield* streamed(azure(), streamReply).pipe(Effect.provideService(Tracer.Tracer, tracer))
      assert.strictEqual(ok(exit).length, 2)
      const provider = spans.find((s) => s.name === "AzureOpenAiProvider.stream")
      const client = spans.find((s) => s.name === "POST")
      assert.strictEqual(provider?.attributes.get("llm.model"), "m-1")
      assert.strictEqual(client!.parent._tag === "Some" ? client!.parent.value : undefined, provider)
      assert.strictEqual(seen[0].headers.traceparent?.split("-")[2], client!.spanId)
    })
  )
})

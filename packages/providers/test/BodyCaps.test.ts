/**
 * The read cap on whole response bodies, whichever way a body is read: at once when its declared length is
 * within the cap (and it is not compressed), else streamed up to the cap.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { azure, call, failure, ok } from "./support/replay.ts"

const answer = (text: string) =>
  JSON.stringify({
    model: "m-1",
    choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" }],
    usage: { prompt_tokens: 3, completion_tokens: 1 }
  })
const cap = 200
const capped = azure({ maxResponseBytes: cap })
const length = (body: string) => String(new TextEncoder().encode(body).length)

describe("response body cap", () => {
  it.effect("a body with its declared length within the cap is read whole, multi-byte text intact", () =>
    Effect.gen(function* () {
      const body = answer("héllo ✓")
      const r = ok((yield* call(capped, { body, headers: { "content-length": length(body) } })).exit)
      assert.strictEqual(r.text, "héllo ✓")
    })
  )

  it.effect("a declared length over the cap fails naming the cap, like an undeclared one", () =>
    Effect.gen(function* () {
      const body = answer("x".repeat(cap))
      for (const headers of [{ "content-length": length(body) }, {}]) {
        const e = failure((yield* call(capped, { body, headers })).exit)
        assert.strictEqual(e._tag, "ServerError")
        assert.include(e.message, `exceeds ${cap} bytes`)
      }
    })
  )

  it.effect("a compressed body is capped on what it decodes to, not on its declared length", () =>
    Effect.gen(function* () {
      // the client decodes gzip itself (fetch does): the declared length is that of the compressed bytes
      const body = answer("x".repeat(cap))
      const e = failure(
        (yield* call(capped, { body, headers: { "content-length": "40", "content-encoding": "gzip" } })).exit
      )
      assert.include(e.message, `exceeds ${cap} bytes`)
    })
  )
})

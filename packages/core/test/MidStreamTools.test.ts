/**
 * Mid-stream recovery of answers that make tool calls: a tool call cannot be continued by prefilling
 * text, so `continue` asks again and passes on only what goes beyond the delivered text and calls, or ends
 * with `StreamDiverged` when the new answer is another one.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Metric, Stream } from "effect"
import { TestClock } from "effect/testing"
import { LlmError, type LlmRequest, type LlmResponse, Resilience } from "@llm-resilience/core"

type Chunk = LlmResponse.StreamChunk

const text = (t: string): Chunk => ({ _tag: "TextDelta", text: t })
const call = (index: number, args: string, id?: string, name?: string): Chunk => ({
  _tag: "ToolCallDelta",
  index,
  ...(id === undefined ? {} : { id }),
  ...(name === undefined ? {} : { name }),
  arguments: args
})
const finish: Chunk = {
  _tag: "Finish",
  finishReason: "tool_calls",
  usage: { inputTokens: 5, outputTokens: 9 },
  provider: "p",
  model: "m1"
}

/** A provider whose n-th stream is `attempts[n]`, cut with `StreamTruncated` when it has no `Finish`. */
const scripted = (name: string, attempts: ReadonlyArray<ReadonlyArray<Chunk>>) => {
  const requests: Array<LlmRequest.LlmRequest> = []
  return {
    requests,
    provider: {
      name,
      complete: () => Effect.die("not used"),
      stream: (request: LlmRequest.LlmRequest) =>
        Stream.suspend(() => {
          const chunks = attempts[requests.length] ?? []
          requests.push(request)
          return chunks.at(-1)?._tag === "Finish"
            ? Stream.fromIterable(chunks)
            : Stream.concat(
                Stream.fromIterable(chunks),
                Stream.fail(new LlmError.StreamTruncated({ message: "cut", receivedChunks: chunks.length }))
              )
        })
    }
  }
}

const ask = { model: "m1", messages: [{ role: "user" as const, content: "weather?" }], metadata: { path: "chat" } }

const collect = (self: Stream.Stream<Chunk, LlmError.LlmError>) =>
  Effect.gen(function* () {
    const seen: Array<Chunk> = []
    const fiber = yield* Effect.forkChild(Effect.exit(Stream.runForEach(self, (c) => Effect.sync(() => seen.push(c)))))
    yield* TestClock.adjust(60_000)
    return { seen, exit: yield* Fiber.join(fiber) }
  })

/** What a client assembles from the chunks: the text, and each call's ids, names and arguments. */
const assemble = (chunks: ReadonlyArray<Chunk>) => {
  let t = ""
  const calls: Array<{ ids: Array<string>; names: Array<string>; args: string }> = []
  for (const c of chunks) {
    if (c._tag === "TextDelta") t += c.text
    if (c._tag === "ToolCallDelta") {
      const entry = (calls[c.index] ??= { ids: [], names: [], args: "" })
      if (c.id !== undefined) entry.ids.push(c.id)
      if (c.name !== undefined) entry.names.push(c.name)
      entry.args += c.arguments
    }
  }
  return { text: t, calls, finishes: chunks.filter((c) => c._tag === "Finish").length }
}

/** One answer with text and two calls, in pieces; `cut` of them delivered before the stream breaks. */
const answer = (ids: string, cut?: number): ReadonlyArray<Chunk> => {
  const whole = [
    text("Checking "),
    text("both."),
    call(0, "", `${ids}-0`, "weather"),
    call(0, '{"city":'),
    call(0, '"Paris"}'),
    call(1, '{"city"', `${ids}-1`, "weather"),
    call(1, ':"Rome"}'),
    finish
  ]
  return cut === undefined ? whole : whole.slice(0, cut)
}

const run = (attempts: ReadonlyArray<ReadonlyArray<Chunk>>, second?: ReadonlyArray<ReadonlyArray<Chunk>>) =>
  Effect.gen(function* () {
    const p = scripted("primary", attempts)
    const s = scripted("secondary", second ?? [])
    const { provider } = yield* Resilience.make(
      {
        // both declared to take a prefill: a delivered tool call must still never be prefilled
        models: { "primary/m1": { prefill: true }, "secondary/m2": { prefill: true } },
        paths: {
          chat: {
            midStream: "continue",
            retry: second === undefined ? { extends: "interactive", jitter: "none" } : "none"
          }
        },
        fallback: [
          { provider: "primary", model: "m1" },
          { provider: "secondary", model: "m2" }
        ]
      },
      [p.provider, s.provider]
    )
    const out = yield* collect(provider.stream(ask))
    return { ...out, first: [...p.requests, ...s.requests] }
  }).pipe(Effect.provideService(Metric.MetricRegistry, new Map()), Effect.orDie, Effect.scoped)

describe("mid-stream recovery of tool calls", () => {
  for (const cut of [3, 4, 6]) {
    it.effect(`continue (retry): a cut after ${cut} pieces is asked again, and each piece arrives once`, () =>
      Effect.gen(function* () {
        const { seen, exit, first } = yield* run([answer("a", cut), answer("b")])
        assert.isTrue(Exit.isSuccess(exit))
        const got = assemble(seen)
        assert.strictEqual(got.text, "Checking both.")
        assert.deepStrictEqual(got.calls, [
          { ids: ["a-0"], names: ["weather"], args: '{"city":"Paris"}' },
          { ids: cut === 6 ? ["a-1"] : ["b-1"], names: ["weather"], args: '{"city":"Rome"}' }
        ])
        assert.strictEqual(got.finishes, 1)
        // asked again as it was: no prefill of the delivered text
        assert.deepStrictEqual(
          first.map((r) => r.messages.length),
          [1, 1]
        )
      })
    )
  }

  it.effect("continue (fallback): the next step repeats the delivered call, and only the rest passes", () =>
    Effect.gen(function* () {
      const { seen, exit, first } = yield* run([answer("a", 4)], [answer("b")])
      assert.isTrue(Exit.isSuccess(exit))
      assert.deepStrictEqual(assemble(seen).calls, [
        { ids: ["a-0"], names: ["weather"], args: '{"city":"Paris"}' },
        { ids: ["b-1"], names: ["weather"], args: '{"city":"Rome"}' }
      ])
      assert.deepStrictEqual(
        first.map((r) => r.messages.length),
        [1, 1]
      )
    })
  )

  const diverging: ReadonlyArray<[string, ReadonlyArray<Chunk>, number?]> = [
    [
      "more arguments for a call that was complete",
      [
        text("Checking both."),
        call(0, '{"city":"Paris"} ', "b-0", "weather"),
        call(1, '{"city":"Rome"}', "b-1", "weather"),
        finish
      ],
      6
    ],
    ["another tool", [text("Checking both."), call(0, '{"city":"Paris"}', "b-0", "forecast"), finish]],
    ["other arguments", [text("Checking both."), call(0, '{"town":"Paris"}', "b-0", "weather"), finish]],
    ["text instead of the call", [text("Checking both. It is sunny."), finish]],
    ["a call instead of the text", [call(0, '{"city":"Paris"}', "b-0", "weather"), finish]],
    ["fewer arguments, then the end", [text("Checking both."), call(0, '{"city"', "b-0", "weather"), finish]]
  ]
  for (const [name, restart, cut = 4] of diverging) {
    it.effect(`continue: a restart with ${name} ends with StreamDiverged, nothing spliced`, () =>
      Effect.gen(function* () {
        const { seen, exit } = yield* run([answer("a", cut)], [restart])
        assert.deepStrictEqual(assemble(seen), assemble(answer("a", cut)))
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
        assert.strictEqual((error as { error: LlmError.LlmError } | undefined)?.error._tag, "StreamDiverged")
      })
    )
  }
})

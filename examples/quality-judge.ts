/**
 * Quality hook: a provider that answers 200 with garbage is a failing provider. A simple heuristic judge
 * scores every response; poor scores count as circuit-breaker failures, so a model that starts returning
 * empty answers or refusals opens its circuit like one that returns 503s.
 *
 * The provider here degrades after its 5th answer (empty text, then canned refusals). No API key, no network.
 *
 * Run: `npx node examples/quality-judge.ts`
 */
import { CircuitBreaker, type LlmRequest, type LlmResponse, QualityJudge } from "@llm-resilience/core"
import { Console, Effect } from "effect"

/**
 * A heuristic judge, in [0, 1]: empty or cut-off answers, refusals and answers that just echo the
 * prompt score low. Replace it with whatever fits your product (an embedding similarity, a cheaper
 * model grading the answer, a JSON schema check ...).
 */
const heuristicJudge: QualityJudge.Judge = (request, response) =>
  Effect.sync(() => {
    const text = response.text.trim()
    if (text.length === 0) return 0
    let score = 1
    if (response.finishReason === "length") score -= 0.4
    if (/\b(I'm sorry|I cannot|I can't|as an AI)\b/i.test(text)) score -= 0.7
    const prompt = request.messages[request.messages.length - 1]?.content ?? ""
    if (prompt.length > 0 && text === prompt) score -= 0.8
    if (text.length < 20) score -= 0.3
    return Math.max(0, score)
  })

const KEY = "example/degrading-model"

/** A provider that is fine for 5 answers, then returns empty texts and refusals, still with HTTP 200. */
const makeProvider = () => {
  let n = 0
  return (request: LlmRequest.LlmRequest) =>
    Effect.sync((): LlmResponse.LlmResponse => {
      n++
      const text =
        n <= 5
          ? `Here is a careful answer to: ${request.messages[0]?.content}`
          : n % 2 === 0
            ? ""
            : "I'm sorry, I cannot help."
      return {
        text,
        finishReason: "stop",
        usage: { inputTokens: 20, outputTokens: 12 },
        provider: "example",
        model: "m"
      }
    })
}

const program = Effect.gen(function* () {
  const breaker = yield* CircuitBreaker.make({ consecutiveFailures: 3, openDuration: "30 seconds" })
  const quality = yield* QualityJudge.make({ judge: heuristicJudge, threshold: 0.5, sampleRate: 1, breaker })
  const complete = makeProvider()

  for (let i = 1; i <= 12; i++) {
    const request: LlmRequest.LlmRequest = { model: "m", messages: [{ role: "user", content: `question ${i}` }] }
    const result = yield* complete(request).pipe(quality.protect(KEY, request), breaker.protect(KEY), Effect.result)
    const status = yield* breaker.status(KEY)
    if (result._tag === "Success") {
      const response = result.success
      const score = yield* heuristicJudge(request, response).pipe(Effect.orElseSucceed(() => -1))
      yield* Console.log(
        `#${i} answered ${JSON.stringify(response.text).padEnd(52)} score ${score.toFixed(2)}  circuit ${status._tag}`
      )
    } else {
      yield* Console.log(`#${i} rejected: ${result.failure._tag} (${result.failure.message})  circuit ${status._tag}`)
    }
  }
})

Effect.runPromise(program)

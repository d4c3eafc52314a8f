// Generated from docs/validated-output.md (block 1) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { Effect, Schema } from "effect"
import { FallbackPlan, LlmProvider, ValidatedOutput } from "@llm-resilience/core"

declare const small: LlmProvider.LlmProvider["Service"] // e.g. OpenAI with gpt-5.4-mini
declare const large: LlmProvider.LlmProvider["Service"] // e.g. OpenAI with gpt-5.4

export const request = {
  model: "gpt-5.4-mini",
  messages: [{ role: "user" as const, content: "Classify: 'WIN A PRIZE'. Answer {label, confidence} JSON." }]
}

export const Verdict = Schema.Struct({ label: Schema.Literals(["spam", "ham"]), confidence: Schema.Number })

// one provider: get the decoded value
export const classify = Effect.gen(function* () {
  const llm = yield* LlmProvider.LlmProvider
  const { value, repaired } = yield* ValidatedOutput.generate(Verdict)(llm.complete)(request)
  if (repaired) yield* Effect.logWarning("the first answer needed a repair")
  return value
})

// a plan: each step validates (and repairs) its own answers, an invalid one moves on
export const policy = ValidatedOutput.policy(Verdict, { repair: true })
export const plan = FallbackPlan.make([
  FallbackPlan.step(small, { model: "gpt-5.4-mini", policy }),
  FallbackPlan.step(large, { model: "gpt-5.4", policy })
])
export const verdict = Effect.flatMap(
  Effect.flatMap(plan, (p) => p.complete(request)),
  (r) => ValidatedOutput.decode(Verdict)(r.text)
)

// Generated from docs/admission.md (block 2) by scripts/docs-examples.ts: do not edit.
// Edit the guide and run `npx node scripts/docs-examples.ts`.
import { countTokens } from "gpt-tokenizer"
import { TokenEstimator } from "@llm-resilience/core"

export const Exact = TokenEstimator.layer(TokenEstimator.fromCounter(countTokens)) // ~0.4-0.8 ms per 10 KB
export const JsonHeavy = TokenEstimator.layer({ charsPerToken: 3, defaultMaxOutputTokens: 512 })

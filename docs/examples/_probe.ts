import type { Effect } from "effect"
import { answer, Live } from "./configuration/2.ts"
import { program } from "./configuration/1.ts"
export const a: Effect.Effect<unknown, unknown, never> = answer
export const p: Effect.Effect<unknown, unknown, never> = program
export type L = typeof Live

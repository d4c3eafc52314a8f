/**
 * Token estimators compared: cost per 10 KB prompt and error against real BPE counts.
 *
 * Corpus: real text already on disk (no network): English prose (README / docs markdown), TypeScript source,
 * JSON. For each kind, 10 KB slices are counted exactly by js-tiktoken and gpt-tokenizer (o200k_base, the
 * GPT-4o family encoding; cl100k_base for reference) and estimated by the character heuristics.
 *
 * Run: `npx node bench/tokenizers.ts` (prints one JSON object, writes bench/results/tokenizers.json).
 */
import { readFileSync, writeFileSync } from "node:fs"
import { countTokens as gptCountO200k } from "gpt-tokenizer"
import { countTokens as gptCountCl100k } from "gpt-tokenizer/encoding/cl100k_base"
import { Tiktoken } from "js-tiktoken/lite"
import o200k from "js-tiktoken/ranks/o200k_base"

const nm = new URL("../node_modules/", import.meta.url)
const read = (p: string) => readFileSync(new URL(p, nm), "utf8")

const corpora: Record<string, string> = {
  prose: [
    read("undici/docs/docs/index.md"),
    read("cockatiel/readme.md"),
    read("fast-check/README.md"),
    read("typescript/README.md")
  ].join("\n\n"),
  code: [read("effect/src/Schedule.ts"), read("effect/src/Semaphore.ts")].join("\n"),
  json: readFileSync(new URL("../package-lock.json", import.meta.url), "utf8")
}

const SLICE = 10 * 1024
const slices = (text: string, n: number): Array<string> => {
  const out: Array<string> = []
  for (let i = 0; i < n; i++) {
    const start = (i * 7919) % Math.max(1, text.length - SLICE)
    out.push(text.slice(start, start + SLICE))
  }
  return out
}

const t0 = performance.now()
const tiktoken = new Tiktoken(o200k)
const tiktokenInitMs = performance.now() - t0
const t1 = performance.now()
gptCountO200k("warm up")
const gptInitMs = performance.now() - t1

const heuristics = {
  "chars/4": (s: string) => Math.ceil(s.length / 4),
  "chars/3.5": (s: string) => Math.ceil(s.length / 3.5),
  "chars/3": (s: string) => Math.ceil(s.length / 3)
}
const heuristic = heuristics["chars/4"]

const timeIt = (f: (s: string) => number, inputs: Array<string>, rounds: number): number => {
  let sink = 0
  for (const s of inputs) sink += f(s) // warm
  const start = process.hrtime.bigint()
  for (let r = 0; r < rounds; r++) for (const s of inputs) sink += f(s)
  const ns = Number(process.hrtime.bigint() - start)
  if (sink === -1) console.log(sink)
  return ns / (rounds * inputs.length) / 1000 // us per 10 KB
}

const results: Record<string, unknown> = {}
for (const [kind, text] of Object.entries(corpora)) {
  const inputs = slices(text, 8)
  const exact = inputs.map((s) => tiktoken.encode(s).length)
  const exactGpt = inputs.map((s) => gptCountO200k(s))
  const exactCl100k = inputs.map((s) => gptCountCl100k(s))
  const errors: Record<string, number> = {}
  for (const [name, h] of Object.entries(heuristics)) {
    // mean relative error, signed: positive = over-estimate (safe side for admission)
    errors[name] = inputs.reduce((acc, s, i) => acc + (h(s) - exact[i]) / exact[i], 0) / inputs.length
  }
  results[kind] = {
    tokensPer10KB_o200k: Math.round(exact.reduce((a, b) => a + b, 0) / inputs.length),
    tokensPer10KB_cl100k: Math.round(exactCl100k.reduce((a, b) => a + b, 0) / inputs.length),
    jsTiktokenAgreesWithGptTokenizer: exact.every((n, i) => n === exactGpt[i]),
    meanSignedErrorVsO200k: errors,
    usPer10KB: {
      "js-tiktoken": timeIt((s) => tiktoken.encode(s).length, inputs, 5),
      "gpt-tokenizer": timeIt((s) => gptCountO200k(s), inputs, 5),
      "chars/4": timeIt(heuristic, inputs, 2000)
    }
  }
}

const out = { sliceBytes: SLICE, initMs: { "js-tiktoken": tiktokenInitMs, "gpt-tokenizer": gptInitMs }, results }
console.log(JSON.stringify(out, null, 2))
writeFileSync(new URL("results/tokenizers.json", import.meta.url), `${JSON.stringify(out, null, 2)}\n`)

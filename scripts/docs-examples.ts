/**
 * Extracts the TypeScript examples of the guides so that `tsc` checks them.
 *
 * Every ```ts block of `docs/*.md` becomes `docs/examples/<guide>/<n>.ts`, where `<n>` is the block's
 * position among the guide's ```ts blocks (1-based). Each file is a module: top-level declarations are
 * exported, so an example may define a value it does not use without tripping `noUnusedLocals`. A block
 * preceded by `<!-- not-checked: reason -->` (a fragment that cannot stand alone) is skipped; use sparingly.
 *
 * `npx node scripts/docs-examples.ts` writes the files (and removes stale ones);
 * `npx node scripts/docs-examples.ts --check` only reports whether the committed files are up to date.
 * `packages/core/test/DocsExamples.test.ts` runs the same check in `npm test`, and `npm test`'s typecheck step
 * compiles the generated files (`docs` is in tsconfig.json's `include`).
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** One extracted example. */
export interface Example {
  /** Path relative to the repository root, e.g. `docs/examples/retries/2.ts`. */
  readonly file: string
  /** The generated module text. */
  readonly content: string
}

/** A skipped block, with the reason given in its marker. */
export interface Skipped {
  readonly guide: string
  readonly block: number
  readonly reason: string
}

const fence = /^```(\S*)\s*$/
const notChecked = /^<!--\s*not-checked:\s*(.+?)\s*-->\s*$/
const topLevelDeclaration = /^(const|let|function\*?|async function\*?|class|abstract class|type|interface) /

/** Exports each top-level declaration (lines starting at column 0), so that unused examples still compile. */
export const exportDeclarations = (code: string): string =>
  code
    .split("\n")
    .map((line) => (topLevelDeclaration.test(line) ? `export ${line}` : line))
    .join("\n")

/** The ```ts blocks of one guide, in order, with the marker that precedes each (if any). */
export const blocksOf = (
  markdown: string
): Array<{ readonly code: string; readonly notChecked: string | undefined; readonly line: number }> => {
  const lines = markdown.split("\n")
  const blocks: Array<{ code: string; notChecked: string | undefined; line: number }> = []
  let i = 0
  while (i < lines.length) {
    const open = fence.exec(lines[i])
    if (open === null) {
      i++
      continue
    }
    const lang = open[1]
    const start = i
    const body: Array<string> = []
    i++
    while (i < lines.length && !/^```\s*$/.test(lines[i])) body.push(lines[i++])
    i++
    if (lang !== "ts" && lang !== "typescript") continue
    let before = start - 1
    while (before >= 0 && lines[before].trim() === "") before--
    const marker = before >= 0 ? notChecked.exec(lines[before].trim()) : null
    blocks.push({ code: body.join("\n"), notChecked: marker === null ? undefined : marker[1], line: start + 1 })
  }
  return blocks
}

/** Extracts every checked example of `docs/*.md` under `root` (the repository root). */
export const extract = (root: string): { readonly examples: Array<Example>; readonly skipped: Array<Skipped> } => {
  const docs = path.join(root, "docs")
  const examples: Array<Example> = []
  const skipped: Array<Skipped> = []
  const guides = fs
    .readdirSync(docs)
    .filter((f) => f.endsWith(".md"))
    .sort()
  for (const file of guides) {
    const guide = file.slice(0, -".md".length)
    const blocks = blocksOf(fs.readFileSync(path.join(docs, file), "utf8"))
    blocks.forEach((block, index) => {
      const n = index + 1
      if (block.notChecked !== undefined) {
        skipped.push({ guide, block: n, reason: block.notChecked })
        return
      }
      const header =
        `// Generated from docs/${file} (block ${n}) by scripts/docs-examples.ts: do not edit.\n` +
        "// Edit the guide and run `npx node scripts/docs-examples.ts`.\n"
      examples.push({
        file: `docs/examples/${guide}/${n}.ts`,
        content: `${header}${exportDeclarations(block.code)}\n`
      })
    })
  }
  return { examples, skipped }
}

/** The generated files currently under `docs/examples`, relative to `root`. */
export const existing = (root: string): Array<string> => {
  const dir = path.join(root, "docs", "examples")
  if (!fs.existsSync(dir)) return []
  const out: Array<string> = []
  for (const guide of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!guide.isDirectory()) continue
    for (const f of fs.readdirSync(path.join(dir, guide.name))) {
      if (f.endsWith(".ts")) out.push(`docs/examples/${guide.name}/${f}`)
    }
  }
  return out.sort()
}

/** Differences between the guides and the committed files: missing, stale (different content) and extra. */
export const diff = (
  root: string
): { readonly missing: Array<string>; readonly stale: Array<string>; readonly extra: Array<string> } => {
  const { examples } = extract(root)
  const wanted = new Set(examples.map((e) => e.file))
  const missing: Array<string> = []
  const stale: Array<string> = []
  for (const e of examples) {
    const at = path.join(root, e.file)
    if (!fs.existsSync(at)) missing.push(e.file)
    else if (fs.readFileSync(at, "utf8") !== e.content) stale.push(e.file)
  }
  const extra = existing(root).filter((f) => !wanted.has(f))
  return { missing, stale, extra }
}

const main = () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
  if (process.argv.includes("--check")) {
    const { missing, stale, extra } = diff(root)
    const problems = [...missing.map((f) => `missing ${f}`), ...stale.map((f) => `stale ${f}`)]
    problems.push(...extra.map((f) => `extra ${f}`))
    for (const p of problems) console.log(p)
    if (problems.length > 0) {
      console.log("run `npx node scripts/docs-examples.ts` to regenerate docs/examples")
      process.exitCode = 1
    }
    return
  }
  const { examples, skipped } = extract(root)
  const wanted = new Set(examples.map((e) => e.file))
  for (const f of existing(root)) if (!wanted.has(f)) fs.rmSync(path.join(root, f))
  const dir = path.join(root, "docs", "examples")
  if (fs.existsSync(dir)) {
    for (const guide of fs.readdirSync(dir, { withFileTypes: true })) {
      const at = path.join(dir, guide.name)
      if (guide.isDirectory() && fs.readdirSync(at).length === 0) fs.rmdirSync(at)
    }
  }
  let written = 0
  for (const e of examples) {
    const at = path.join(root, e.file)
    fs.mkdirSync(path.dirname(at), { recursive: true })
    if (!fs.existsSync(at) || fs.readFileSync(at, "utf8") !== e.content) {
      fs.writeFileSync(at, e.content)
      written++
    }
  }
  console.log(`${examples.length} examples (${written} written), ${skipped.length} not checked`)
  for (const s of skipped) console.log(`  not checked: docs/${s.guide}.md block ${s.block}: ${s.reason}`)
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main()

import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { assert, describe, it } from "@effect/vitest"
import { blocksOf, diff, exportDeclarations, extract } from "../../../scripts/docs-examples.ts"

const root = fileURLToPath(new URL("../../..", import.meta.url))

describe("DocsExamples", () => {
  it("the committed docs/examples match the guides' ```ts blocks (run `npx node scripts/docs-examples.ts`)", () => {
    const { missing, stale, extra } = diff(root)
    assert.deepStrictEqual(
      { missing, stale, extra },
      { missing: [], stale: [], extra: [] },
      "run `npx node scripts/docs-examples.ts` and commit docs/examples"
    )
  })

  it("each concern has a guide with checked examples", () => {
    const { examples } = extract(root)
    const concerns = [
      "retries",
      "admission",
      "breakers",
      "fallbacks",
      "timeouts",
      "validated-output",
      "telemetry",
      "testing",
      "configuration"
    ]
    const guides = new Set(examples.map((e) => e.file.split("/")[2]))
    assert.deepStrictEqual(
      concerns.filter((c) => !guides.has(c)),
      []
    )
  })

  it("every guide with code has at least one checked example, and skipped blocks give a reason", () => {
    const { examples, skipped } = extract(root)
    assert.isAbove(examples.length, 0)
    for (const s of skipped) assert.isAbove(s.reason.length, 0, `docs/${s.guide}.md block ${s.block}`)
  })

  it("extracts ts blocks only, numbers them in order, honours not-checked and exports top-level declarations", () => {
    const markdown = [
      "# Guide",
      "```sh",
      "npm start",
      "```",
      "```ts",
      'import { Effect } from "effect"',
      "const program = Effect.succeed(1)",
      "```",
      "<!-- not-checked: a fragment -->",
      "",
      "```ts",
      "yield* program",
      "```",
      "```typescript",
      "function helper() {",
      "  const inner = 1",
      "  return inner",
      "}",
      "```"
    ].join("\n")
    const blocks = blocksOf(markdown)
    assert.deepStrictEqual(
      blocks.map((b) => [b.line, b.notChecked]),
      [
        [5, undefined],
        [11, "a fragment"],
        [14, undefined]
      ]
    )
    assert.strictEqual(blocks[0].code, 'import { Effect } from "effect"\nconst program = Effect.succeed(1)')
  })

  it("exports top-level declarations only, so unused examples still pass noUnusedLocals", () => {
    const code = ["const a = 1", "function f() {", "  const b = 2", "  return b", "}", "type T = number", "f()"]
    assert.deepStrictEqual(exportDeclarations(code.join("\n")).split("\n"), [
      "export const a = 1",
      "export function f() {",
      "  const b = 2",
      "  return b",
      "}",
      "export type T = number",
      "f()"
    ])
  })

  it("reports missing, stale and extra generated files", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "docs-examples-"))
    try {
      fs.mkdirSync(path.join(dir, "docs", "examples", "guide"), { recursive: true })
      fs.writeFileSync(path.join(dir, "docs", "guide.md"), "```ts\nconst a = 1\n```\n```ts\nconst b = 2\n```\n")
      const [first] = extract(dir).examples
      fs.writeFileSync(path.join(dir, first.file), first.content)
      assert.deepStrictEqual(diff(dir), { missing: ["docs/examples/guide/2.ts"], stale: [], extra: [] })
      fs.writeFileSync(path.join(dir, first.file), `${first.content}// edited by hand\n`)
      fs.writeFileSync(path.join(dir, "docs", "examples", "guide", "3.ts"), "export {}\n")
      assert.deepStrictEqual(diff(dir), {
        missing: ["docs/examples/guide/2.ts"],
        stale: ["docs/examples/guide/1.ts"],
        extra: ["docs/examples/guide/3.ts"]
      })
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })
})

/**
 * Mutation testing of the core policies: `npm run mutation [-- <module>... --concurrency=<n>]`.
 *
 * Runs Stryker (its vitest runner, over the core package's tests) once per module so each run stays short
 * and a module's score can be measured alone, then prints one line per source file. Reports go to
 * `reports/mutation/` (git-ignored), the sandbox to `.stryker-tmp/` (removed after each run).
 *
 * Two scores are printed:
 * - `score`: Stryker's own, where a mutant that times out counts as detected;
 * - `strict`: a timeout counts as undetected. A mutant whose only effect is to make the tests slow, or that
 *   hangs for a reason the tests do not assert, is not a detected one.
 * Static mutants (code that only runs when a module loads: constants, default tables) are not run at all
 * (`ignoreStatic`): testing one means reloading the whole suite, and a reload that "times out" would count
 * as detected by Stryker. They are listed as `static`, outside both scores.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Stryker } from "@stryker-mutator/core"

const root = fileURLToPath(new URL("../..", import.meta.url))
const src = "packages/core/src"

/** The core policy modules, by name. */
const modules: Record<string, ReadonlyArray<string>> = {
  breaker: [`${src}/internal/circuit.ts`],
  "breaker-stage": [`${src}/CircuitBreaker.ts`],
  classification: [`${src}/Classification.ts`],
  headers: [`${src}/internal/headers.ts`, `${src}/RateLimitSnapshot.ts`],
  backoff: [`${src}/Backoff.ts`, `${src}/internal/backoff.ts`],
  budget: [`${src}/RetryBudget.ts`],
  retry: [`${src}/Retry.ts`, `${src}/internal/retry.ts`],
  admission: [
    `${src}/Admission.ts`,
    `${src}/internal/admission.ts`,
    `${src}/internal/admissionQueue.ts`,
    `${src}/internal/admissionKeys.ts`
  ],
  "admission-store": [`${src}/AdmissionStore.ts`],
  timeouts: [`${src}/Timeouts.ts`, `${src}/internal/deadline.ts`],
  fallback: [`${src}/FallbackPlan.ts`, `${src}/internal/fallbackWalk.ts`, `${src}/internal/degraded.ts`]
}

const args = process.argv.slice(2)
const concurrency = Number(args.find((a) => a.startsWith("--concurrency="))?.slice("--concurrency=".length) ?? 1)
const names = args.filter((a) => !a.startsWith("--"))
const unknown = names.filter((n) => !(n in modules))
if (unknown.length > 0 || !Number.isInteger(concurrency) || concurrency < 1) {
  console.error(`usage: npm run mutation -- [${Object.keys(modules).join("|")}]... [--concurrency=<n>]`)
  process.exit(2)
}

interface Row {
  readonly file: string
  readonly killed: number
  readonly timeout: number
  readonly survived: number
  readonly noCoverage: number
  readonly static: number
}

const percent = (detected: number, valid: number) => (valid === 0 ? "-" : ((100 * detected) / valid).toFixed(1))
const line = (r: Row) => {
  const valid = r.killed + r.timeout + r.survived + r.noCoverage
  return `| ${r.file} | ${percent(r.killed + r.timeout, valid)} | ${percent(r.killed, valid)} | ${r.killed} | ${r.timeout} | ${r.survived} | ${r.noCoverage} | ${r.static} |`
}

const rows: Array<Row> = []
for (const name of names.length > 0 ? names : Object.keys(modules)) {
  const mutate = modules[name].filter((file) => fs.existsSync(path.join(root, file)))
  if (mutate.length === 0) continue
  const dir = `reports/mutation/${name}`
  const results = await new Stryker({
    configFile: "scripts/mutation/stryker.config.json",
    mutate: [...mutate],
    concurrency,
    jsonReporter: { fileName: `${dir}/mutation.json` },
    htmlReporter: { fileName: `${dir}/index.html` }
  }).runMutationTest()
  for (const file of mutate) {
    const of = results.filter((r) => path.relative(root, path.resolve(root, r.fileName)) === file)
    const count = (status: string) => of.filter((r) => r.status === status).length
    rows.push({
      file: file.slice(src.length + 1),
      killed: count("Killed"),
      timeout: count("Timeout"),
      survived: count("Survived"),
      noCoverage: count("NoCoverage"),
      static: count("Ignored")
    })
  }
}

const table = [
  "| module | score % | strict % | killed | timeout | survived | no coverage | static (not run) |",
  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ...rows.map(line)
].join("\n")
fs.mkdirSync(path.join(root, "reports/mutation"), { recursive: true })
fs.writeFileSync(path.join(root, "reports/mutation/scores.md"), `${table}\n`)
console.log(table)

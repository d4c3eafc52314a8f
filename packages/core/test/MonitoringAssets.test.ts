/**
 * The shipped monitoring assets (monitoring/alerts.yml, monitoring/dashboard.json) only name metrics the
 * toolkit exports, and the alert rules pass promtool (syntax and their unit tests). The list of exported
 * metrics is read from the code: every `Metric.counter|gauge|histogram|...("name"` in the packages' sources.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"

const root = join(import.meta.dirname, "../../..")
const monitoring = join(root, "monitoring")

const sources = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : []
  )

/** Every series name the toolkit's metrics expose in the Prometheus format, from the source code. */
const exportedNames = (): Set<string> => {
  const names = new Set<string>()
  for (const pkg of readdirSync(join(root, "packages"))) {
    const src = join(root, "packages", pkg, "src")
    if (!existsSync(src)) continue
    for (const file of sources(src)) {
      for (const m of readFileSync(file, "utf8").matchAll(
        /Metric\.(counter|gauge|histogram|timer|summary|frequency)\(\s*"([a-zA-Z_:][\w:]*)"/g
      )) {
        const [, kind, name] = m
        names.add(name)
        if (kind === "histogram" || kind === "timer") for (const s of ["_bucket", "_sum", "_count"]) names.add(name + s)
        if (kind === "summary") for (const s of ["_sum", "_count"]) names.add(name + s)
      }
    }
  }
  return names
}

const promqlWords = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "inf",
  "nan"
])

/** The metric names a PromQL expression reads. */
const metricsIn = (expr: string): Array<string> => {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, "")
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "")
  const names: Array<string> = []
  for (const m of stripped.matchAll(/([a-zA-Z_:][\w:]*)(\s*\()?/g)) {
    if (m[2] !== undefined || promqlWords.has(m[1])) continue
    names.push(m[1])
  }
  return names
}

const promtool = (...args: Array<string>) => {
  const r = spawnSync("promtool", args, { encoding: "utf8", cwd: monitoring })
  if (r.error !== undefined) throw new Error(`promtool is needed (apt-get install prometheus): ${r.error}`)
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

/** The `expr` of every rule in a rules file (single-line or `|` block). */
const ruleExpressions = (yaml: string): Array<string> => {
  const out: Array<string> = []
  const lines = yaml.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)expr:\s*(.*)$/.exec(lines[i])
    if (m === null) continue
    if (m[2].trim() !== "|") {
      out.push(m[2])
      continue
    }
    const block: Array<string> = []
    while (i + 1 < lines.length && (lines[i + 1].trim() === "" || lines[i + 1].search(/\S/) > m[1].length))
      block.push(lines[++i])
    out.push(block.join("\n"))
  }
  return out
}

describe("monitoring assets", () => {
  const exported = exportedNames()

  it("the list of exported metrics is read from the code", () => {
    for (const name of [
      "llm_requests",
      "llm_rate_limit_headroom",
      "llm_output_drift",
      "llm_breaker_state",
      "llm_request_duration_ms_bucket"
    ]) {
      assert.isTrue(exported.has(name), name)
    }
    assert.deepStrictEqual(
      metricsIn('sum by (le) (rate(llm_request_duration_ms_bucket{path="a{b}"}[5m])) / on(x) llm_requests'),
      ["llm_request_duration_ms_bucket", "llm_requests"]
    )
  })

  it("every dashboard panel queries only exported metrics", () => {
    const dashboard = JSON.parse(readFileSync(join(monitoring, "dashboard.json"), "utf8")) as {
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>
    }
    assert.isAbove(dashboard.panels.length, 10)
    const covered = new Set<string>()
    for (const panel of dashboard.panels) {
      const names = panel.targets.flatMap((t) => metricsIn(t.expr))
      assert.isAbove(names.length, 0, panel.title)
      for (const name of names) {
        assert.isTrue(exported.has(name), `${panel.title}: ${name} is not a metric the toolkit exports`)
        covered.add(name)
      }
    }
    // the signals of the alert rules are all on the dashboard
    for (const name of [
      "llm_rate_limit_headroom",
      "llm_requests",
      "fallback_activations",
      "llm_breaker_state",
      "llm_retries",
      "llm_output_drift"
    ]) {
      assert.isTrue(covered.has(name), name)
    }
    // a misspelt metric would be caught
    assert.isFalse(metricsIn("rate(llm_request[5m])").every((n) => exported.has(n)))
  })

  it("the alert rules pass promtool, name only exported metrics, and fire as their unit tests expect", () => {
    const rules = readFileSync(join(monitoring, "alerts.yml"), "utf8")
    const exprs = ruleExpressions(rules)
    assert.strictEqual(exprs.length, 6)
    for (const expr of exprs) {
      const names = metricsIn(expr)
      assert.isAbove(names.length, 0, expr)
      for (const name of names) assert.isTrue(exported.has(name), `${expr}: ${name}`)
    }
    const check = promtool("check", "rules", "alerts.yml")
    assert.strictEqual(check.status, 0, check.output)
    assert.include(check.output, "SUCCESS: 6 rules found")
    const unit = promtool("test", "rules", "alerts.test.yml")
    assert.strictEqual(unit.status, 0, unit.output)
    // a broken rule is rejected, so the check above is a real one
    const dir = mkdtempSync(join(tmpdir(), "rules-"))
    writeFileSync(
      join(dir, "broken.yml"),
      rules.replace("max_over_time(llm_rate_limit_headroom[10m])", "max_over_time(llm_rate_limit_headroom[10m]")
    )
    assert.notStrictEqual(promtool("check", "rules", join(dir, "broken.yml")).status, 0)
  })
})

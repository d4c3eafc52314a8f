/**
 * Runs every benchmark in turn (`npm run bench`); each prints its JSON result and writes
 * `bench/results/<name>.json`. Run them one at a time on a quiet machine: they compete for the same cores.
 */
import { spawnSync } from "node:child_process"

const benches: ReadonlyArray<{ readonly file: string; readonly flags?: ReadonlyArray<string> }> = [
  { file: "bench/pipeline.ts", flags: ["--expose-gc"] },
  { file: "bench/keys.ts", flags: ["--expose-gc"] },
  { file: "bench/breaker.ts" },
  { file: "bench/admission.ts" },
  { file: "bench/timeouts.ts" },
  { file: "bench/jitter.ts" },
  { file: "bench/tokenizers.ts" },
  { file: "bench/provider.ts" },
  { file: "bench/gateway/run.ts" },
  { file: "bench/redis.ts", flags: ["--conditions=@llm-resilience/source"] }
]

let failed = 0
for (const { file, flags = [] } of benches) {
  console.error(`\n== ${file}`)
  const run = spawnSync(process.execPath, [...flags, file], { stdio: "inherit" })
  if (run.status !== 0) failed++
}
process.exitCode = failed === 0 ? 0 : 1

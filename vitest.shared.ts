/**
 * Vitest settings every project of the repository shares: the workspace packages resolve to their TypeScript
 * sources (the `@llm-resilience/source` export condition), so the tests never need a build. Tests run on virtual
 * time; the wall-clock limit per test only guards against a hang, so it is generous enough for a loaded 2-core
 * machine (a test that waits on real processes bounds its own waits).
 *
 * Every test file runs in a fresh worker (`isolate: true`, Vitest's default, set here on purpose): the tests
 * share process-wide state they do not reset between files (Effect's global metric registry, module-level
 * caches, environment variables), so reusing workers would let one file's counters leak into another's
 * assertions. Setting it explicitly also tells Vitest it was chosen, so it no longer prints its
 * "faster with `isolate: false`" hint after every run.
 */
import { defaultServerConditions } from "vite"
import type { ViteUserConfig } from "vitest/config"

const conditions = ["@llm-resilience/source", ...defaultServerConditions]

export const shared: ViteUserConfig = {
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: { testTimeout: 30_000, hookTimeout: 30_000, isolate: true }
}

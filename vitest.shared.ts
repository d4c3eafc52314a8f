/**
 * Vitest settings every project of the repository shares: the workspace packages resolve to their TypeScript
 * sources (the `@llm-resilience/source` export condition), so the tests never need a build. Tests run on virtual
 * time; the wall-clock limit per test only guards against a hang, so it is generous enough for a loaded 2-core
 * machine (a test that waits on real processes bounds its own waits).
 */
import { defaultServerConditions } from "vite"
import type { ViteUserConfig } from "vitest/config"

const conditions = ["@llm-resilience/source", ...defaultServerConditions]

export const shared: ViteUserConfig = {
  resolve: { conditions },
  ssr: { resolve: { conditions } },
  test: { testTimeout: 30_000, hookTimeout: 30_000 }
}

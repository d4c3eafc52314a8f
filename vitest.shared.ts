/**
 * Vitest settings every project of the repository shares: the workspace packages resolve to their TypeScript
 * sources (the `@llm-resilience/source` export condition), so the tests never need a build.
 */
import { defaultServerConditions } from "vite"
import type { ViteUserConfig } from "vitest/config"

const conditions = ["@llm-resilience/source", ...defaultServerConditions]

export const shared: ViteUserConfig = {
  resolve: { conditions },
  ssr: { resolve: { conditions } }
}

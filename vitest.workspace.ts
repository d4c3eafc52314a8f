import { defineConfig } from "vitest/config"

// One Vitest project per package, plus the examples (the outage drill's acceptance): `npm test` runs them all
// with `--config vitest.workspace.ts`.
export default defineConfig({
  test: {
    projects: ["packages/*", "examples"],
    // a passing test's console output (the toolkit's warnings, an SDK's notices) is not shown; a failing
    // test's is, next to its failure
    silent: "passed-only"
  }
})

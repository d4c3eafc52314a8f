import { defineConfig } from "vitest/config"

// One Vitest project per package, plus the examples (the outage drill's acceptance): `npm test` runs them all
// with `--config vitest.workspace.ts`.
export default defineConfig({
  test: {
    projects: ["packages/*", "examples"]
  }
})

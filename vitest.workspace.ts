import { defineConfig } from "vitest/config"

// One Vitest project per package: `npm test` runs them all with `--config vitest.workspace.ts`.
export default defineConfig({
  test: {
    projects: ["packages/*"]
  }
})

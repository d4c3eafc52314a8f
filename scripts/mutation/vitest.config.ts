// The core package's tests as Stryker runs them. Stryker copies the repository into a sandbox, but the
// workspace packages (`@llm-resilience/*`) are symlinks into the original checkout: without these aliases the
// tests would import the unmutated sources and no mutant could be detected through the public API.
import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const source = (pkg: string) => fileURLToPath(new URL(`../../packages/${pkg}/src/index.ts`, import.meta.url))

export default defineConfig({
  resolve: {
    alias: {
      "@llm-resilience/core": source("core"),
      "@llm-resilience/testing": source("testing"),
      "@llm-resilience/providers": source("providers")
    }
  },
  test: {
    root: fileURLToPath(new URL("../../packages/core", import.meta.url)),
    // `MUTATION_TESTS=test/A.test.ts,test/B.test.ts` narrows a run to some files while writing tests (the
    // scores recorded are always those of the whole suite)
    include: process.env.MUTATION_TESTS?.split(",") ?? ["test/**/*.test.ts"],
    // the guides' examples are checked by `npm test`; they exercise no policy. The monitoring assets' test
    // reads the sources as text, which Stryker has instrumented (a mutated string is no longer a literal)
    exclude: ["test/DocsExamples.test.ts", "test/MonitoringAssets.test.ts"]
  }
})

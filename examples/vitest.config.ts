import { defineProject, mergeConfig } from "vitest/config"
import { shared } from "../vitest.shared.ts"

export default mergeConfig(
  shared,
  defineProject({
    test: {
      name: "examples",
      include: ["test/**/*.test.ts"],
      testTimeout: 180_000
    }
  })
)

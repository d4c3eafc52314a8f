// Lint rules for the whole repository (`npm run lint` runs ESLint, then Prettier's format check).
import js from "@eslint/js"
import tseslint from "typescript-eslint"

export default tseslint.config(
  {
    ignores: [
      "**/node_modules/**",
      "**/dist/**",
      "bench/results/**",
      "docs/examples/**",
      "drill-report.html",
      // mutation testing: the sandbox of a run and its reports
      ".stryker-tmp/**",
      "reports/**"
    ]
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { console: "readonly", process: "readonly", URL: "readonly", AbortController: "readonly" }
    },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-empty-object-type": "off",
      "@typescript-eslint/no-namespace": "off",
      "require-yield": "off",
      "no-constant-condition": ["error", { checkLoops: false }],
      // a skipped or focused test proves nothing
      "no-restricted-properties": [
        "error",
        ...["it", "describe", "test"].flatMap((object) =>
          ["only", "skip", "todo"].map((property) => ({
            object,
            property,
            message: "no focused, skipped or todo tests: a skipped test proves nothing"
          }))
        )
      ]
    }
  },
  {
    // Unless the code runs optimized, V8 allocates a function literal assigned to a property in the old
    // generation (it takes it for a method). Made per call, each dead closure keeps what it captures through
    // every scavenge until the next mark-compact, the whole request at times (packages/gateway/src/internal/
    // upstream.ts). A `const` first, a class field or an object literal's property allocates it young.
    files: ["packages/*/src/**/*.ts"],
    rules: {
      "no-restricted-syntax": [
        "error",
        {
          selector:
            "AssignmentExpression[left.type='MemberExpression'] > :matches(ArrowFunctionExpression, FunctionExpression).right",
          message:
            "a function literal assigned to a property is allocated in the old generation by unoptimized code: assign a const"
        }
      ]
    }
  }
)

/**
 * Bundles a command line (a `bin/*.ts` entry) into an ESM program with rolldown: the gateway's published
 * `llm-resilience-gateway` (its `prepack` runs `node ../../scripts/bundle-bin.ts bin/llm-resilience-gateway.ts
 * dist/bin/llm-resilience-gateway.js`), and the programs the tests and the benchmarks start, so that they
 * measure what users run.
 *
 * - the sources are bundled (the `@llm-resilience/source` condition), with every dependency: a command carries
 *   its own copy of `effect` and the rest, and starts as a few files instead of hundreds of modules;
 * - a dynamic `import()` stays lazy: what only it reaches (the Redis client, the YAML parser) is a chunk of its
 *   own beside the program (`<name>-<chunk>-<hash>.<ext>`), read when first imported;
 * - the entry's `#!` line, and the Node flags it gives, are kept;
 * - the output is ASCII-only (comments other than licences dropped, a non-ASCII character in a licence
 *   comment written as `\u{...}`): V8 keeps a source with one non-ASCII character as a two-byte string, twice
 *   its size, for the life of the process.
 *
 * @since 0.1.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "rolldown"

/**
 * Bundles the program `input` into `file` (its chunks beside it); resolves with `file`.
 *
 * @example
 * ```ts
 * import { bundleBin } from "./scripts/bundle-bin.ts"
 * await bundleBin("packages/gateway/bin/llm-resilience-gateway.ts", "/tmp/gateway.mjs")
 * ```
 */
export const bundleBin = async (input: string, file: string): Promise<string> => {
  const [dir, ext] = [path.dirname(file), path.extname(file)]
  const stem = path.basename(file, ext)
  // what an earlier build left (chunks of other hashes, declarations, maps) would be published beside it
  if (fs.existsSync(dir))
    for (const old of fs.readdirSync(dir))
      if (old.startsWith(`${stem}.`) || old.startsWith(`${stem}-`)) fs.rmSync(path.join(dir, old), { force: true })
  const { output } = await build({
    input,
    platform: "node",
    resolve: { conditionNames: ["@llm-resilience/source", "import", "node", "default"] },
    output: {
      dir,
      format: "esm",
      entryFileNames: `${stem}${ext}`,
      chunkFileNames: `${stem}-[name]-[hash]${ext}`,
      codeSplitting: {
        // undici (CommonJS) in one chunk with the platform's module that re-exports it: apart, the re-export
        // lost undici's named exports (rolldown 1.2), and the gateway failed at start
        groups: [
          { name: "undici", test: /[\\/]node_modules[\\/](undici|@effect[\\/]platform-node[\\/]dist[\\/]Undici\.js)/ }
        ]
      },
      charset: "ascii",
      comments: { legal: true, annotation: false, jsdoc: false }
    },
    logLevel: "silent"
  })
  for (const chunk of output) asciiOnly(path.join(dir, chunk.fileName))
  return file
}

/** Rewrites a non-ASCII character left in a licence comment (`/*! ... *\/`) as `\u{...}`; fails on any other. */
const asciiOnly = (file: string): void => {
  const code = fs.readFileSync(file, "utf8")
  // eslint-disable-next-line no-control-regex
  if (!/[^\x00-\x7f]/u.test(code)) return
  const escaped = code.replace(/\/\*![\s\S]*?\*\//g, (comment) =>
    // eslint-disable-next-line no-control-regex
    comment.replace(/[^\x00-\x7f]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`)
  )
  // eslint-disable-next-line no-control-regex
  const left = /[^\x00-\x7f]/u.exec(escaped)
  if (left !== null)
    throw new Error(
      `${file}: non-ASCII character left at ${left.index}: ${escaped.slice(left.index - 40, left.index + 40)}`
    )
  fs.writeFileSync(file, escaped)
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [input, file] = process.argv.slice(2)
  if (input === undefined || file === undefined) {
    console.error("usage: node scripts/bundle-bin.ts <entry.ts> <output.js>")
    process.exitCode = 2
  } else await bundleBin(path.resolve(input), path.resolve(file))
}

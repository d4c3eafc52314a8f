/**
 * The packaging test (`npm run test:pack`, the last step of `npm test`): installs the packages as a user
 * would and uses them without this repository.
 *
 * 1. builds every package (`tsc -b tsconfig.build.json`), packs it (`npm pack`, which runs each package's
 *    `prepack`: the gateway's bundles its command) and checks that each tarball holds only what a user needs
 *    (the build, the sources its maps point at, the manifest);
 * 2. installs the tarballs, `effect`, `@effect/platform-node` and `redis` into a fresh project in a temporary
 *    directory (no workspace, no TypeScript loader, none of this repository's npm settings);
 * 3. runs README's Install program there as a plain `.mjs` file on Node 24: one resilient call against
 *    `FakeProvider`, one over HTTP against the chaos server;
 * 4. type-checks the same program as `.ts`, and `consumer.ts`, with strict settings;
 * 5. runs the installed `llm-chaos-server --help`, `llm-resilience --help`, `llm-resilience gateway --help` and
 *    `llm-resilience-gateway --help`; checks that `llm-resilience-gateway` is one ASCII-only file importing only
 *    Node's own modules, starts it (by its `#!` line) with a JSON configuration, asks `GET /healthz` and stops it
 *    with SIGTERM (exit 0);
 * 6. asserts `npm ls` shows one copy of `effect`, `@effect/platform-node` and `@llm-resilience/core`.
 *
 * Quiet on success (one line); on failure it prints the failing step's output and exits with 1. Every step has
 * a time limit, and the temporary directory is removed in every case.
 *
 * @since 0.1.0
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")
const here = path.join(root, "scripts", "packaging")
const node = path.join(root, "node_modules", ".bin", "node")
const tsc = path.join(root, "node_modules", "typescript", "bin", "tsc")

/** The marker in README.md before the Install program's code block. */
const marker = "<!-- packaging-test: main.mjs -->"

/** The program that follows {@link marker} in a markdown text, and the output shown after it ("It prints:"). */
const installProgram = (markdown: string): { readonly program: string; readonly prints: string } => {
  const at = markdown.indexOf(marker)
  if (at < 0) throw new Error(`README.md has no "${marker}" before its Install program`)
  const found = /```js\n([\s\S]*?)\n```\s*It prints:\s*```\n([\s\S]*?)\n```/.exec(markdown.slice(at + marker.length))
  if (found === null)
    throw new Error(`README.md: expected a js code block, "It prints:" and its output after "${marker}"`)
  return { program: `${found[1]}\n`, prints: `${found[2]}\n` }
}

class StepFailed extends Error {}

/** The environment of a user's shell: no npm script variables, no NODE_OPTIONS (this repository sets one). */
const userEnv = (): NodeJS.ProcessEnv =>
  Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_") && k !== "NODE_OPTIONS")
  )

/** Runs a command to completion within `timeoutMs`; resolves with its stdout, or rejects with its output. */
const run = (
  step: string,
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd: string; readonly timeoutMs: number; readonly env?: NodeJS.ProcessEnv }
): Promise<string> =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? userEnv() })
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs)
    const fail = (why: string) =>
      reject(
        new StepFailed([`${step}: ${command} ${args.join(" ")} failed (${why})`, stdout, stderr].join("\n").trim())
      )
    child.on("error", (error) => {
      clearTimeout(timer)
      fail(error.message)
    })
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      if (code === 0) resolve(stdout)
      else fail(signal === null ? `exit ${code}` : `killed by ${signal} after ${options.timeoutMs} ms at most`)
    })
  })

const expect = (step: string, ok: boolean, detail: string): void => {
  if (!ok) throw new StepFailed(`${step}: ${detail}`)
}

/** `GET url` on a connection of its own (closed after the answer): the status, within 5 s. */
const get = (url: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 5_000 }, (res) => {
      res.resume()
      resolve(res.statusCode ?? -1)
    })
    req.on("error", reject)
    req.on("timeout", () => req.destroy(new Error("no answer within 5 s")))
  })

/**
 * Starts the installed `llm-resilience-gateway` as a shell does (by its `#!` line, this repository's Node first
 * on PATH) with a JSON configuration whose one provider cannot be reached, asks `GET /healthz` once it listens,
 * then sends SIGTERM; resolves when it exited 0, all within 20 s.
 */
const serves = (app: string): Promise<void> => {
  const step = "llm-resilience-gateway --config gateway.json"
  const config = path.join(app, "gateway.json")
  fs.writeFileSync(
    config,
    JSON.stringify({
      server: { port: 0 },
      providers: { nowhere: { kind: "openai", baseUrl: "http://127.0.0.1:9/v1", apiKeyEnv: "UPSTREAM_KEY" } },
      models: { "nowhere/model": {} }
    })
  )
  return new Promise((resolve, reject) => {
    const child = spawn(path.join(app, "node_modules", ".bin", "llm-resilience-gateway"), ["--config", config], {
      cwd: app,
      env: {
        ...userEnv(),
        UPSTREAM_KEY: "sk-unused",
        PATH: `${path.dirname(node)}${path.delimiter}${process.env.PATH}`
      }
    })
    let output = ""
    let stage: "starting" | "asking /healthz" | "stopping" = "starting"
    const fail = (why: string) => {
      child.kill("SIGKILL")
      reject(new StepFailed(`${step}: ${why}\n${output}`.trim()))
    }
    const timer = setTimeout(() => fail(`still ${stage} after 20 s`), 20_000)
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk))
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk
      const url = /listening on (http:\/\/\S+)/.exec(output)?.[1]
      if (url === undefined || stage !== "starting") return
      stage = "asking /healthz"
      get(`${url}/healthz`).then(
        (status) => {
          if (status !== 200) return fail(`GET /healthz answered ${status}`)
          stage = "stopping"
          child.kill("SIGTERM")
        },
        (error: Error) => fail(`GET /healthz failed: ${error.message}`)
      )
    })
    child.on("error", (error) => fail(error.message))
    child.on("close", (code, signal) => {
      clearTimeout(timer)
      if (stage === "stopping" && code === 0) resolve()
      else fail(`exited with ${code ?? signal} while ${stage}`)
    })
  })
}

/**
 * The installed gateway command is a bundle: ASCII-only files whose static imports are Node's own modules and
 * their own chunks (`llm-resilience-gateway-*.js` beside it), nothing installed.
 */
const bundled = (app: string): void => {
  const step = "llm-resilience-gateway is a bundle"
  const program = fs.realpathSync(path.join(app, "node_modules", ".bin", "llm-resilience-gateway"))
  const dir = path.dirname(program)
  const files = fs.readdirSync(dir).filter((f) => f.startsWith(path.basename(program, ".js")) && f.endsWith(".js"))
  expect(step, files.length > 1, `${dir} holds ${files.join(", ")}`)
  for (const file of files) {
    const code = fs.readFileSync(path.join(dir, file), "utf8")
    const imported = new Set([...code.matchAll(/^import (?:.* from )?"([^"]+)"/gm)].map((m) => m[1]))
    const foreign = [...imported].filter((s) => !s.startsWith("node:") && !files.includes(s.replace(/^\.\//, "")))
    expect(step, foreign.length === 0, `${file} imports ${foreign.join(", ")}`)
    // eslint-disable-next-line no-control-regex
    const nonAscii = /[^\x00-\x7f]/u.exec(code)
    expect(step, nonAscii === null, `${file} holds a non-ASCII character at ${nonAscii?.index}`)
  }
}

const strictConfig = {
  compilerOptions: {
    target: "ES2023",
    lib: ["ES2023"],
    module: "NodeNext",
    moduleResolution: "NodeNext",
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    noImplicitOverride: true,
    noEmit: true,
    skipLibCheck: true,
    types: ["node"],
    typeRoots: [path.join(root, "node_modules", "@types")]
  },
  files: ["main.ts", "consumer.ts"]
}

const version = (name: string): string =>
  JSON.parse(fs.readFileSync(path.join(root, "node_modules", name, "package.json"), "utf8")).version

const main = async (): Promise<void> => {
  const started = performance.now()
  const { program, prints } = installProgram(fs.readFileSync(path.join(root, "README.md"), "utf8"))
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "llm-resilience-pack-"))
  try {
    const tarballs = path.join(work, "tarballs")
    const app = path.join(work, "app")
    fs.mkdirSync(tarballs)
    fs.mkdirSync(app)

    await run("build", node, [tsc, "-b", "tsconfig.build.json"], { cwd: root, timeoutMs: 240_000, env: process.env })
    // each prepack's build finds the packages built just above; the gateway's also bundles its command
    const manifests: ReadonlyArray<{
      readonly filename: string
      readonly files: ReadonlyArray<{ readonly path: string }>
    }> = JSON.parse(
      await run("pack", "npm", ["pack", "--workspaces", "--json", "--pack-destination", tarballs], {
        cwd: root,
        timeoutMs: 60_000
      })
    )
    const packages = fs
      .readdirSync(path.join(root, "packages"))
      .filter((d) => fs.existsSync(path.join(root, "packages", d, "package.json")))
    expect(
      "pack",
      manifests.length === packages.length,
      `expected ${packages.length} tarballs, got ${manifests.length}`
    )
    for (const { filename, files } of manifests) {
      // what a user needs: the build, the sources its maps point at, the manifest
      const extra = files
        .map((f) => f.path)
        .filter((f) => !/^(dist\/.*\.(js|d\.ts)(\.map)?|(src|bin)\/.*\.ts|package\.json)$/.test(f))
      expect("pack", extra.length === 0, `${filename} ships files a user does not need: ${extra.join(", ")}`)
      expect(
        "pack",
        files.some((f) => f.path.endsWith(".d.ts")),
        `${filename} ships no type declarations`
      )
    }
    const packed = manifests.map((m) => m.filename)

    fs.writeFileSync(
      path.join(app, "package.json"),
      JSON.stringify({ name: "app", private: true, type: "module" }, null, 2)
    )
    await run(
      "install",
      "npm",
      [
        "install",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
        "--loglevel=error",
        ...packed.map((f) => path.join(tarballs, f)),
        `effect@${version("effect")}`,
        `@effect/platform-node@${version("@effect/platform-node")}`,
        `redis@${version("redis")}`
      ],
      { cwd: app, timeoutMs: 180_000 }
    )

    fs.writeFileSync(path.join(app, "main.mjs"), program)
    fs.writeFileSync(path.join(app, "main.ts"), program)
    fs.copyFileSync(path.join(here, "consumer.ts"), path.join(app, "consumer.ts"))
    fs.writeFileSync(path.join(app, "tsconfig.json"), JSON.stringify(strictConfig, null, 2))
    bundled(app)
    const [out, , , , help, gatewayHelp, subcommandHelp] = await Promise.all([
      run("run main.mjs", node, ["main.mjs"], { cwd: app, timeoutMs: 60_000 }),
      serves(app),
      run("typecheck", node, [tsc, "-p", "tsconfig.json"], { cwd: app, timeoutMs: 120_000 }),
      run("llm-chaos-server --help", node, [path.join(app, "node_modules", ".bin", "llm-chaos-server"), "--help"], {
        cwd: app,
        timeoutMs: 30_000
      }),
      run("llm-resilience --help", node, [path.join(app, "node_modules", ".bin", "llm-resilience"), "--help"], {
        cwd: app,
        timeoutMs: 30_000
      }),
      run(
        "llm-resilience-gateway --help",
        node,
        [path.join(app, "node_modules", ".bin", "llm-resilience-gateway"), "--help"],
        { cwd: app, timeoutMs: 30_000 }
      ),
      run(
        "llm-resilience gateway --help",
        node,
        [path.join(app, "node_modules", ".bin", "llm-resilience"), "gateway", "--help"],
        { cwd: app, timeoutMs: 30_000 }
      )
    ])
    expect(
      "llm-resilience gateway --help",
      subcommandHelp.includes("--config <file>"),
      `it printed:\n${subcommandHelp}`
    )
    expect("llm-resilience-gateway --help", gatewayHelp.includes("--config <file>"), `it printed:\n${gatewayHelp}`)
    expect("llm-resilience --help", help.includes("dlq replay --all"), `it printed:\n${help}`)
    expect("run main.mjs", out === prints, `it printed:\n${out}\nREADME.md says it prints:\n${prints}`)

    for (const name of ["effect", "@effect/platform-node", "@llm-resilience/core"]) {
      const listed = await run(`npm ls ${name}`, "npm", ["ls", name, "--all", "--parseable"], {
        cwd: app,
        timeoutMs: 60_000
      })
      const copies = new Set(listed.split("\n").filter((line) => line.trim().endsWith(`node_modules/${name}`)))
      expect(`npm ls ${name}`, copies.size === 1, `expected one copy, found:\n${[...copies].join("\n")}`)
    }
    console.log(
      `packaging: ${packed.length} packages installed and used outside the repository (${Math.round((performance.now() - started) / 1000)} s)`
    )
  } catch (error) {
    console.error(error instanceof StepFailed ? error.message : error)
    process.exitCode = 1
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) void main()

import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { RateLimiter } from "effect/persistence"
import { Gateway, GatewayCli, GatewayConfig } from "../src/index.ts"

const here = path.dirname(fileURLToPath(import.meta.url))

const valid = {
  providers: { up: { kind: "openai", baseUrl: "http://127.0.0.1:1/v1", apiKeyEnv: "UP_KEY" } },
  models: { "up/gpt-a": { requestsPerMinute: 10, contextWindow: 1000 } },
  routes: {
    chat: {
      retry: "interactive",
      timeouts: { totalMs: "5 seconds" },
      midStream: "fail",
      fallback: [{ provider: "up", model: "gpt-a" }, { staticAnswer: "busy" }]
    }
  }
} satisfies GatewayConfig.GatewayConfig

const Deps = Layer.merge(
  NodeHttpClient.layerUndici,
  RateLimiter.layer.pipe(Layer.provide(RateLimiter.layerStoreMemory))
)

/** The field a configuration is refused at, or "ok". */
const fieldOf = (config: unknown, env: Record<string, string> = { UP_KEY: "k" }) =>
  Gateway.make(config, { env }).pipe(
    Effect.scoped,
    Effect.provide(Deps),
    Effect.match({ onFailure: (e) => e.field, onSuccess: () => "ok" })
  )

describe("GatewayConfig", () => {
  it.effect("a valid configuration builds; errors name the field", () =>
    Effect.gen(function* () {
      assert.strictEqual(yield* fieldOf(valid), "ok")
      assert.strictEqual(
        yield* fieldOf({ ...valid, providers: { up: { ...valid.providers.up, kind: "openia" } } }),
        "providers.up.kind"
      )
      assert.strictEqual(yield* fieldOf(valid, {}), "providers.up.apiKeyEnv")
      assert.strictEqual(
        yield* fieldOf({
          ...valid,
          routes: { chat: { ...valid.routes.chat, fallback: [{ provider: "nobody", model: "m" }] } }
        }),
        "routes.chat.fallback[0].provider"
      )
      assert.strictEqual(
        yield* fieldOf({ ...valid, routes: { chat: { ...valid.routes.chat, retyr: "none" } } }),
        "routes.chat.retyr"
      )
      assert.strictEqual(
        yield* fieldOf({ ...valid, routes: { chat: { ...valid.routes.chat, midStream: "resume" } } }),
        "routes.chat.midStream"
      )
      assert.strictEqual(yield* fieldOf({ ...valid, keys: [{ sha256: "plain-text-key" }] }), "keys[0].sha256")
      assert.strictEqual(yield* fieldOf({ ...valid, budgets: { budgets: [] } }), "budgets")
      assert.strictEqual(yield* fieldOf({ ...valid, models: { "nobody/x": {} } }), "models.nobody/x")
    })
  )

  it("maps onto Resilience.Config: routes and models become paths", () => {
    const resilience = GatewayConfig.toResilience(valid)
    assert.deepStrictEqual(resilience.paths, {
      "up/gpt-a": { fallback: [{ provider: "up", model: "gpt-a" }] },
      chat: {
        retry: "interactive",
        timeouts: { totalMs: "5 seconds" },
        midStream: "fail",
        fallback: [{ provider: "up", model: "gpt-a" }, { staticAnswer: "busy" }]
      }
    })
    assert.deepStrictEqual(resilience.models, valid.models)
  })

  it.effect("YAML and JSON files: the same configuration; a syntax error names the file, line and column", () =>
    Effect.gen(function* () {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gateway-config-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
      const write = (name: string, text: string) => {
        const file = path.join(dir, name)
        fs.writeFileSync(file, text)
        return file
      }
      const yaml = [
        "# a comment",
        "providers:",
        "  up: { kind: openai, baseUrl: 'http://127.0.0.1:1/v1', apiKeyEnv: UP_KEY }",
        "models:",
        "  up/gpt-a: { requestsPerMinute: 10, contextWindow: 1000 }",
        "routes:",
        "  chat:",
        "    retry: interactive",
        "    timeouts: { totalMs: 5 seconds }",
        "    midStream: fail",
        "    fallback:",
        "      - { provider: up, model: gpt-a }",
        "      - staticAnswer: busy",
        ""
      ].join("\n")
      for (const name of ["gateway.yaml", "gateway.YML"]) {
        assert.deepStrictEqual(yield* GatewayConfig.load(write(name, yaml)), valid)
      }
      assert.deepStrictEqual(yield* GatewayConfig.load(write("gateway.json", JSON.stringify(valid))), valid)

      const broken = write("broken.yaml", yaml.replace("retry: interactive", "retry: [interactive"))
      const syntax = yield* Effect.flip(GatewayConfig.load(broken))
      assert.strictEqual(syntax._tag, "GatewayConfigError")
      assert.deepStrictEqual([syntax.field, syntax.line, syntax.column], [broken, 9, 5])
      assert.match(syntax.message, new RegExp(`at ${broken}:9:5: \\S`))
      const duplicate = yield* Effect.flip(
        GatewayConfig.load(
          write("twice.yml", yaml.replace("    midStream: fail", "    midStream: fail\n    midStream: continue"))
        )
      )
      assert.deepStrictEqual([duplicate.line, duplicate.issue], [11, "Map keys must be unique"])
      // a schema error in a YAML file names the field
      const field = yield* Effect.flip(
        GatewayConfig.load(write("field.yaml", yaml.replace("midStream: fail", "midStream: resume")))
      )
      assert.deepStrictEqual([field.field, field.line], ["routes.chat.midStream", undefined])
      const json = yield* Effect.flip(GatewayConfig.load(write("broken.json", "{ nope")))
      assert.strictEqual(json.field, path.join(dir, "broken.json"))
    })
  )

  it.effect("the example configuration of the repository is valid", () =>
    Effect.gen(function* () {
      const file = path.resolve(here, "../../../examples/gateway/gateway.yaml")
      const config = yield* GatewayConfig.load(file)
      assert.strictEqual(yield* fieldOf(config, { CHAOS_API_KEY: "x" }), "ok")
      assert.isTrue(fs.existsSync(file))
    })
  )

  it.effect("the command line refuses a missing file and a bad port with exit code 2", () =>
    Effect.gen(function* () {
      const missing = yield* Effect.flip(GatewayCli.program(["gateway", "--config", "/nonexistent/gateway.json"]))
      assert.match(missing.message, /nonexistent/)
      const port = yield* Effect.flip(GatewayCli.program(["--config", "x.json", "--port", "http"]))
      assert.match(port.message, /--port/)
      const none = yield* Effect.flip(GatewayCli.program([]))
      assert.match(none.message, /--config is required/)
    })
  )
})

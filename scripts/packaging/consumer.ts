// A strict TypeScript consumer of the packed packages: every public type it names must resolve from dist.
import { NodeHttpClient, NodeRedis } from "@effect/platform-node"
import { DurableQueue, LlmError, LlmProvider, type LlmResponse, Resilience } from "@llm-resilience/core"
import { AnthropicProvider, OpenAiProvider } from "@llm-resilience/providers"
import { RedisQueue } from "@llm-resilience/redis"
import { ChaosServer, FakeProvider } from "@llm-resilience/testing"
import { Effect, Layer, Redacted } from "effect"

const config: Resilience.Config = {}

const answer: Effect.Effect<LlmResponse.LlmResponse, LlmError.LlmError, LlmProvider.LlmProvider> = Resilience.call({
  model: "gpt-5-mini",
  messages: [{ role: "user", content: "Hi" }]
})

const scenario: FakeProvider.Scenario = {
  default: { script: [FakeProvider.fail(FakeProvider.overloaded()), FakeProvider.succeed()] }
}

const options: ChaosServer.Options = { port: 0, stallMs: 200, scenario: ["overloaded", "ok"] }

const Providers = Layer.unwrap(
  Effect.map(ChaosServer.ChaosServer, (chaos) =>
    Layer.mergeAll(
      OpenAiProvider.layer({ apiKey: Redacted.make("sk-local"), baseUrl: chaos.openAiBaseUrl() }),
      AnthropicProvider.layer({ apiKey: Redacted.make("sk-local"), baseUrl: chaos.anthropicBaseUrl() })
    )
  )
).pipe(Layer.provide([ChaosServer.layer(options), NodeHttpClient.layerUndici]))

const withFake: Effect.Effect<string, LlmError.LlmError | FakeProvider.InvalidScenario | Resilience.InvalidConfig> =
  answer.pipe(
    Effect.map((response) => response.text),
    Effect.catchIf(LlmError.isRetryable, (error) => Effect.succeed(`gave up: ${error._tag}`)),
    Effect.provide(Resilience.layer(config).pipe(Layer.provide(FakeProvider.layer(scenario))))
  )

const Later: Layer.Layer<DurableQueue.DurableQueue, unknown> = RedisQueue.layer({ name: "later", maxAttempts: 3 }).pipe(
  Layer.provide(NodeRedis.layer({ url: "redis://127.0.0.1:6379" }))
)

const Workers: Layer.Layer<never, unknown, LlmProvider.LlmProvider> = DurableQueue.layerWorkers({
  concurrency: 4
}).pipe(Layer.provide(Later))

export { Later, Providers, Workers, withFake }

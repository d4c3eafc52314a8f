/**
 * One layer that makes a `Resilience` configuration's state shared across instances: given the same
 * configuration object, it reads its `store` entry (Redis URL, key prefix, failure policy, expected
 * instances, timeout), connects to Redis and provides the Redis-backed stores that `Resilience` reads from
 * its context: admission (`AdmissionStore`), and the breaker, retry budget, spend guard and agent guard
 * (`Resilience.Stores`). Without this layer (and without `store`) every instance keeps its state in memory.
 *
 * ```ts
 * const config: Resilience.Config = { store: { url: "redis://redis:6379", expectedInstances: 4 }, models: { ... } }
 * const Live = Resilience.layer(config).pipe(Layer.provide(RedisStore.layer(config)))
 * ```
 *
 * The client is node-redis with its offline queue disabled: while Redis is unreachable a command fails at
 * once instead of waiting (and being replayed later), and the store's failure policy applies. Redis must be
 * reachable when the layer is built.
 *
 * @since 0.1.0
 */
import { NodeRedis } from "@effect/platform-node"
import { type AdmissionStore, Resilience } from "@llm-resilience/core"
import { Effect, Layer, Schema } from "effect"
import type { Redis } from "effect/persistence"
import * as RedisAdmissionStore from "./RedisAdmissionStore.ts"
import * as RedisBreakerStore from "./RedisBreakerStore.ts"
import * as RedisRetryBudgetStore from "./RedisRetryBudgetStore.ts"
import * as RedisSpendStore from "./RedisSpendStore.ts"
import * as RedisTurnStore from "./RedisTurnStore.ts"
import { fallbacks, local, type StoreOptions } from "./internal/shared.ts"

/**
 * The stores this layer provides.
 *
 * @since 0.1.0
 */
export type Stores = AdmissionStore.AdmissionStore

/**
 * What every shared store says about Redis failures, with the attribute `store` (`admission`, `breaker`,
 * `retry-budget`, `spend`, `turns`): `local` is 1 while the store answers from this instance's share
 * (policy `local`), `fallbacks` counts the answers the failure policy gave instead of Redis (with `policy`).
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { RedisStore } from "@llm-resilience/redis"
 * const admissionIsLocal = Metric.value(Metric.withAttributes(RedisStore.metrics.local, { store: "admission" }))
 * ```
 * @since 0.1.0
 */
export const metrics = { local, fallbacks } as const

const decode = (config: Resilience.Config) =>
  config.store === undefined
    ? Effect.fail(
        new Resilience.InvalidConfig({
          field: "store",
          issue: "RedisStore.layer needs a `store` entry (its Redis URL)"
        })
      )
    : Schema.decodeUnknownEffect(Resilience.StoreConfig)(config.store, { onExcessProperty: "error" }).pipe(
        Effect.mapError((e) => new Resilience.InvalidConfig({ field: "store", issue: e.message.split("\n")[0] }))
      )

/**
 * The shared stores of `config.store` over the `Redis` service in context (for an application that builds
 * its own Redis client).
 *
 * @example
 * ```ts
 * import { NodeRedis } from "@effect/platform-node"
 * import { RedisStore } from "@llm-resilience/redis"
 * import { Layer } from "effect"
 *
 * const config = { store: { url: "redis://127.0.0.1:6379", prefix: "chat:" } }
 * const Stores = RedisStore.layerFrom(config).pipe(Layer.provide(NodeRedis.layer({ url: config.store.url })))
 * ```
 * @since 0.1.0
 */
export const layerFrom = (config: Resilience.Config): Layer.Layer<Stores, Resilience.InvalidConfig, Redis.Redis> =>
  Layer.unwrap(
    Effect.map(decode(config), (store) => {
      const options: StoreOptions = {
        prefix: store.prefix,
        timeout: store.timeoutMs,
        onFailure: store.onStoreFailure,
        instances: store.expectedInstances,
        retryInterval: store.retryIntervalMs
      }
      const stages = Layer.effect(
        Resilience.Stores,
        Effect.all({
          breaker: RedisBreakerStore.make(options),
          retryBudget: RedisRetryBudgetStore.make(options),
          spend: RedisSpendStore.make(options),
          turns: RedisTurnStore.make(options)
        })
      )
      return Layer.merge(RedisAdmissionStore.layer(options), stages)
    })
  )

/**
 * The shared stores of `config.store`, with their own Redis client.
 *
 * @example
 * ```ts
 * import { LlmProvider, Resilience } from "@llm-resilience/core"
 * import { RedisStore } from "@llm-resilience/redis"
 * import { Layer } from "effect"
 *
 * const config: Resilience.Config = {
 *   store: { url: "redis://127.0.0.1:6379", onStoreFailure: "local", expectedInstances: 4 },
 *   models: { "openai/gpt-5.4-mini": { requestsPerMinute: 500, tokensPerMinute: 200_000 } }
 * }
 * const Live = Resilience.layer(config).pipe(Layer.provide(RedisStore.layer(config)))
 * ```
 * @since 0.1.0
 */
export const layer = (config: Resilience.Config): Layer.Layer<Stores, Resilience.InvalidConfig | Redis.RedisError> =>
  Layer.unwrap(
    Effect.map(decode(config), (store) =>
      layerFrom(config).pipe(Layer.provide(NodeRedis.layer({ url: store.url, disableOfflineQueue: true })))
    )
  )

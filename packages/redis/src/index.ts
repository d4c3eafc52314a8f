/**
 * Redis-backed state for `@llm-resilience/core`.
 *
 * @since 0.1.0
 */

/**
 * The durable accept-for-later queue in Redis.
 *
 * @since 0.1.0
 */
export * as RedisQueue from "./RedisQueue.ts"

/**
 * Circuit-breaker transitions shared through Redis.
 *
 * @since 0.1.0
 */
export * as RedisBreakerStore from "./RedisBreakerStore.ts"

/**
 * A retry budget shared through Redis.
 *
 * @since 0.1.0
 */
export * as RedisRetryBudgetStore from "./RedisRetryBudgetStore.ts"

/**
 * Spend budgets shared through Redis, reserved before each call and settled after.
 *
 * @since 0.1.0
 */
export * as RedisSpendStore from "./RedisSpendStore.ts"

/**
 * Agent turn counts shared through Redis.
 *
 * @since 0.1.0
 */
export * as RedisTurnStore from "./RedisTurnStore.ts"

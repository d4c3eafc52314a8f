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
 * The admission store in Redis: limits shared by every instance.
 *
 * @since 0.1.0
 */
export * as RedisAdmissionStore from "./RedisAdmissionStore.ts"

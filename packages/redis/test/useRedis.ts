import { afterAll, beforeAll } from "@effect/vitest"
import { startRedis, type RedisServer } from "./redisServer.ts"

/**
 * Starts a private `redis-server` on a free loopback port before the file's tests and stops it after them.
 * Returns a getter for the running server (valid inside tests).
 */
export const useRedisServer = (): (() => RedisServer) => {
  let server: RedisServer | undefined
  beforeAll(async () => {
    server = await startRedis()
  }, 20_000)
  afterAll(() => server?.stop())
  return () => {
    if (server === undefined) throw new Error("redis-server is not running")
    return server
  }
}

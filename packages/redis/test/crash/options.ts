/** The queue options the crash test's worker processes and its checks share. */
import type { RedisQueue } from "@llm-resilience/redis"

export const maxAttempts = 3

export const queueOptions = (prefix: string): RedisQueue.Options => ({
  prefix,
  name: "crash",
  maxAttempts,
  backoff: "50 millis",
  maxBackoff: "200 millis",
  pollInterval: "50 millis",
  lockExpiration: "2 seconds",
  lockRefreshInterval: "500 millis"
})

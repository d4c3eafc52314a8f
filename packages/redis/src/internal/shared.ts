/**
 * What every shared store does around a Redis call: a bounded wait, and the failure policy when Redis does
 * not answer in time or fails (fall back to this instance's share, or refuse), said once in a log line
 * when it starts and when it ends, and on every fallback in a metric.
 *
 * @internal
 */
import { Duration, Effect, Metric } from "effect"

/**
 * Options every shared store takes.
 *
 * @internal
 */
export interface StoreOptions {
  /** Prefix of every key the store writes. ["llm:"] */
  readonly prefix?: string | undefined
  /** How long one Redis call may take before the failure policy applies. ["250 millis"] */
  readonly timeout?: Duration.Input | undefined
  /**
   * When Redis fails or does not answer in time: `"local"` decides in this process with its share
   * (a limit divided by `instances`), `"reject"` refuses the way the stage refuses at its limit. ["local"]
   */
  readonly onFailure?: "local" | "reject" | undefined
  /** How many instances share the limits: this instance's share under `"local"` is limit / instances. [1] */
  readonly instances?: number | undefined
}

/** @internal */
export const fallbacks = Metric.counter("llm_shared_store_fallbacks", {
  description: "shared-store calls answered by the failure policy (Redis failed or did not answer in time)",
  incremental: true
})

/** @internal */
export interface Guard {
  readonly prefix: string
  readonly onFailure: "local" | "reject"
  readonly instances: number
  readonly timeoutMs: number
  /** Runs `op` within the timeout; on failure, `fallback` (the failure policy's answer). */
  readonly run: <A, E>(op: Effect.Effect<A, E>, fallback: () => A | Effect.Effect<A>) => Effect.Effect<A>
}

/** @internal */
export const makeGuard = (store: string, options: StoreOptions | undefined): Guard => {
  const onFailure = options?.onFailure ?? "local"
  const timeoutMs = Duration.toMillis(Duration.fromInputUnsafe(options?.timeout ?? "250 millis"))
  const metric = Metric.withAttributes(fallbacks, { store, policy: onFailure })
  let failing = false
  const failed = (cause: string) =>
    Effect.suspend(() => {
      const first = !failing
      failing = true
      const count = Metric.update(metric, 1)
      return first
        ? Effect.andThen(
            count,
            Effect.logWarning(`${store}: Redis unavailable (${cause}); failure policy "${onFailure}" applies`)
          )
        : count
    })
  const recovered = Effect.suspend(() => {
    if (!failing) return Effect.void
    failing = false
    return Effect.logInfo(`${store}: Redis answers again; shared state resumes`)
  })
  return {
    prefix: options?.prefix ?? "llm:",
    onFailure,
    instances: Math.max(1, options?.instances ?? 1),
    timeoutMs,
    run: (op, fallback) =>
      op.pipe(
        Effect.timeoutOrElse({ duration: timeoutMs, orElse: () => Effect.fail("timeout" as const) }),
        Effect.matchEffect({
          onFailure: (e) =>
            Effect.andThen(failed(e === "timeout" ? `no answer within ${timeoutMs} ms` : "error"), () => {
              const a = fallback()
              return Effect.isEffect(a) ? a : Effect.succeed(a)
            }),
          onSuccess: (a) => Effect.as(recovered, a)
        })
      )
  }
}

/** The current time in milliseconds, from Redis' `TIME`, as a Lua prelude. @internal */
export const luaNow = `local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

/**
 * What every shared store does around a Redis call: a bounded wait, and the failure policy when Redis does
 * not answer in time or fails (fall back to this instance's share, or refuse), said once in a log line
 * when it starts and when it ends, and on every fallback in a metric.
 *
 * @internal
 */
import { Clock, Duration, Effect, Metric } from "effect"

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
  /** While Redis fails, how often it is tried again (in between, the failure policy answers at once). ["1 second"] */
  readonly retryInterval?: Duration.Input | undefined
}

/** @internal */
export const fallbacks = Metric.counter("llm_shared_store_fallbacks", {
  description: "shared-store calls answered by the failure policy (Redis failed or did not answer in time)",
  incremental: true
})

/** @internal */
export const local = Metric.gauge("llm_shared_store_local", {
  description: "1 while a store answers from this instance's share because Redis failed (policy local)"
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
  const retryMs = Duration.toMillis(Duration.fromInputUnsafe(options?.retryInterval ?? "1 second"))
  const metric = Metric.withAttributes(fallbacks, { store, policy: onFailure })
  const gauge = Metric.withAttributes(local, { store })
  let failing = false
  // while Redis fails, the policy answers at once until the next try, so a Redis that hangs costs one
  // timeout per interval, not one per call
  let retryAt = 0
  const failed = (cause: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const first = !failing
      failing = true
      retryAt = now + retryMs
      const count = Metric.update(metric, 1)
      return first
        ? Effect.andThen(
            Effect.andThen(count, Metric.update(gauge, onFailure === "local" ? 1 : 0)),
            Effect.logWarning(`${store}: Redis unavailable (${cause}); failure policy "${onFailure}" applies`)
          )
        : count
    })
  const recovered = Effect.suspend(() => {
    if (!failing) return Effect.void
    failing = false
    return Effect.andThen(
      Metric.update(gauge, 0),
      Effect.logInfo(`${store}: Redis answers again; shared state resumes`)
    )
  })
  const answer = <A>(fallback: () => A | Effect.Effect<A>): Effect.Effect<A> => {
    const a = fallback()
    return Effect.isEffect(a) ? a : Effect.succeed(a)
  }
  return {
    prefix: options?.prefix ?? "llm:",
    onFailure,
    instances: Math.max(1, options?.instances ?? 1),
    timeoutMs,
    run: (op, fallback) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (failing && now < retryAt) return Effect.andThen(Metric.update(metric, 1), answer(fallback))
        if (failing) retryAt = now + retryMs
        return op.pipe(
          Effect.timeoutOrElse({ duration: timeoutMs, orElse: () => Effect.fail("timeout" as const) }),
          Effect.matchEffect({
            onFailure: (e) =>
              Effect.andThen(
                failed(e === "timeout" ? `no answer within ${timeoutMs} ms` : describe(e)),
                answer(fallback)
              ),
            onSuccess: (a) => Effect.as(recovered, a)
          })
        )
      })
  }
}

const describe = (error: unknown): string =>
  typeof error === "object" && error !== null && "cause" in error ? String(error.cause) : String(error)

/** The current time in milliseconds, from Redis' `TIME`, as a Lua prelude. @internal */
export const luaNow = `local t = redis.call("TIME")
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

/**
 * A `Clock` on which time runs `factor` times faster than real time: `sleep(d)` waits `d / factor` of real
 * time, and the current time moves `factor` ms per real ms from the moment the clock was made.
 *
 * It lets a test run real sockets through policies written in real-world seconds (30 s timeouts, a 60 s
 * outage) in a fraction of the time: give the fault server its delays divided by the same factor.
 */
import { Clock, Duration, Effect } from "effect"

export const make = (factor: number): Clock.Clock => {
  const real = Clock.Clock.defaultValue()
  const realStartMs = real.currentTimeMillisUnsafe()
  const monoStart = real.monotonicTimeNanosUnsafe()
  const scale = BigInt(factor)
  const millis = () => realStartMs + (real.currentTimeMillisUnsafe() - realStartMs) * factor
  const nanos = () => BigInt(realStartMs) * 1_000_000n + (real.monotonicTimeNanosUnsafe() - monoStart) * scale
  const mono = () => monoStart + (real.monotonicTimeNanosUnsafe() - monoStart) * scale
  return {
    currentTimeMillisUnsafe: millis,
    currentTimeMillis: Effect.sync(millis),
    currentTimeNanosUnsafe: nanos,
    currentTimeNanos: Effect.sync(nanos),
    monotonicTimeNanosUnsafe: mono,
    monotonicTimeNanos: Effect.sync(mono),
    sleep: (duration) => real.sleep(Duration.millis(Duration.toMillis(duration) / factor))
  }
}

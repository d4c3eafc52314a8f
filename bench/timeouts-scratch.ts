import { Effect, Fiber } from "effect"
import * as Deadline from "../packages/core/src/internal/deadline.ts"

const asyncOp = Effect.callback<number>((resume) => { queueMicrotask(() => resume(Effect.succeed(1))) })
const syncOp = Effect.succeed(1)

const N = 100_000
const run = (name: string, f: (op: Effect.Effect<number>) => Effect.Effect<number, any>, op: Effect.Effect<number>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 5000; i++) yield* f(op)
    const m0 = process.memoryUsage().heapUsed
    const t0 = performance.now()
    for (let i = 0; i < N; i++) yield* f(op)
    const t1 = performance.now()
    return { name, nsPerCall: Math.round(((t1 - t0) * 1e6) / N) }
  })

const program = Effect.scoped(Effect.gen(function*() {
  const timer = yield* Deadline.make
  const out: Array<unknown> = []
  for (const [opName, op] of [["async", asyncOp], ["sync", syncOp]] as const) {
    for (let rep = 0; rep < 2; rep++) {
      out.push({ op: opName, ...(yield* run("bare", (o) => o, op)) })
      out.push({ op: opName, ...(yield* run("Effect.timeout", (o) => Effect.timeout(o, "30 seconds"), op)) })
      out.push({ op: opName, ...(yield* run("forkJoin", (o) => Effect.flatMap(Effect.forkChild(o, { startImmediately: true }), (f) => Fiber.join(f)), op)) })
      out.push({ op: opName, ...(yield* run("DeadlineTimer.within", (o) => timer.within(o, timer.now() + 30_000, () => "timeout"), op)) })
    }
  }
  return out
}))
Effect.runPromise(program).then((r) => console.table(r))

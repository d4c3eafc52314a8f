/**
 * What the fidelity tests share: the server they run against, the rejection of an SDK call, and how many
 * requests reached the server.
 */
import { Effect } from "effect"
import { ChaosServer } from "../../src/index.ts"

/** The key the server checks. */
export const key = "sk-fidelity-key"

/** The server's answer. */
export const text = "Fidelity is the whole point here."

/** The chaos server of the fidelity tests. */
export const ChaosLive = ChaosServer.layer({ apiKey: key, text, cachedInputTokens: 2, stallMs: 200 })

/** An SDK error class (constructor arity differs between the SDKs). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- constructor parameters of foreign classes
export type ErrorClass = new (...args: Array<any>) => unknown

/** The rejection of a promise (fails the test if it resolves). */
export const rejection = (f: () => Promise<unknown>): Effect.Effect<unknown> =>
  Effect.promise(() =>
    f().then(
      () => {
        throw new Error("expected the SDK call to fail")
      },
      (error: unknown) => error
    )
  )

/** How many requests reached the server while `effect` ran. */
export const countRequests = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const chaos = yield* ChaosServer.ChaosServer
    const before = (yield* chaos.requests).length
    const value = yield* effect
    return [value, (yield* chaos.requests).length - before] as const
  })

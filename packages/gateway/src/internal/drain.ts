/**
 * The gateway's shutdown: the requests in flight (until their response is sent, a stream to its end), and
 * the drain that runs before the server closes. While draining, `GET /readyz` answers 503 (a load balancer
 * stops sending), `GET /healthz` stays 200, new model requests are refused with a 503 the clients may retry
 * elsewhere, and the drain ends when nothing is in flight or at the grace deadline.
 *
 * @internal
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import { Effect } from "effect"

/** The in-flight requests of one gateway and whether it is draining. */
export class DrainState {
  draining = false
  inFlight = 0
  private idle: Array<() => void> = []

  private done = () => {
    this.inFlight--
    if (this.inFlight === 0) for (const wake of this.idle.splice(0)) wake()
  }

  /**
   * A listener for the Node server's `request` event: counts the request in flight from its arrival until
   * its response is sent or its connection closes (`close` comes once, at either). Counted on the server
   * rather than by wrapping each route's handler: no effect per request, and every route is covered.
   */
  readonly onRequest = (_request: IncomingMessage, response: ServerResponse): void => {
    this.inFlight++
    response.on("close", this.done)
  }

  /** Starts draining; completes once nothing is in flight, or after `graceMs`. */
  drain(graceMs: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.draining = true
      if (this.inFlight === 0) return Effect.void
      return Effect.callback<void>((resume) => {
        const wake = () => resume(Effect.void)
        this.idle.push(wake)
        return Effect.sync(() => {
          this.idle = this.idle.filter((w) => w !== wake)
        })
      }).pipe(Effect.timeoutOrElse({ duration: graceMs, orElse: () => Effect.void }))
    })
  }
}

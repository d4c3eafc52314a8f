/**
 * The HTTP completion callback of a durable queue: POSTs the finished job as JSON.
 *
 * @internal
 */
import { Effect, Schedule } from "effect"
import { HttpClient, HttpClientRequest } from "effect/http"
import type { Job } from "./jobs.ts"
import { encodeJob } from "./jobs.ts"

/** POSTs `job` (the stored JSON) to `url` with an `idempotency-key` of its ticket; retried 3 times on failure. */
export const httpCallback =
  (url: string, options: { readonly headers?: Readonly<Record<string, string>> | undefined } = {}) =>
  (job: Job) =>
    Effect.gen(function* () {
      const client = HttpClient.filterStatusOk(yield* HttpClient.HttpClient)
      const body = yield* encodeJob(job)
      const request = HttpClientRequest.post(url).pipe(
        HttpClientRequest.setHeaders({ ...options.headers, "idempotency-key": job.ticket }),
        HttpClientRequest.bodyText(body, "application/json")
      )
      yield* client
        .execute(request)
        .pipe(Effect.retry({ times: 3, schedule: Schedule.exponential("200 millis") }), Effect.scoped)
    })

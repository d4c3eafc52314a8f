/**
 * How `Gateway.layer` serves the gateway's routes on Node's HTTP server: by a table of its few fixed paths
 * rather than an `HttpRouter`, on responses that Node writes in one piece.
 *
 * @internal
 */
import { ServerResponse } from "node:http"
import { Effect } from "effect"
import { type HttpRouter, HttpServerError, HttpServerRequest, type HttpServerResponse } from "effect/http"

/**
 * Serves `routes` by method and exact path (the query aside; `HEAD` by the `GET` route), and fails with the
 * router's `RouteNotFound` otherwise (a 404). Each handler runs interruptible, as the router runs it, so
 * that a client going away interrupts its call. The router matched the same paths with a radix tree and
 * put the route and the parsed query into every request's context, which cost about 1 KB per request; the
 * deeper context also made the pipeline's own context additions copy it sooner.
 */
export const dispatch = <E>(
  routes: ReadonlyArray<HttpRouter.Route<E, never>>
): Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  E | HttpServerError.HttpServerError,
  HttpServerRequest.HttpServerRequest
> => {
  const table = new Map<
    string,
    Map<string, Effect.Effect<HttpServerResponse.HttpServerResponse, E | HttpServerError.HttpServerError>>
  >()
  for (const route of routes) {
    const byPath = table.get(route.method) ?? new Map()
    table.set(route.method, byPath.set(route.path, Effect.interruptible(route.handler)))
  }
  return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
    const query = request.url.indexOf("?")
    const path = query === -1 ? request.url : request.url.slice(0, query)
    const handler =
      table.get(request.method)?.get(path) ?? (request.method === "HEAD" ? table.get("GET")?.get(path) : undefined)
    return (
      handler ??
      Effect.fail(new HttpServerError.HttpServerError({ reason: new HttpServerError.RouteNotFound({ request }) }))
    )
  })
}

/**
 * The responses of the gateway's server. The platform marks every response `strictContentLength`, and Node
 * then ends a response apart from its body: a second, empty send and a two-buffer `writev` for every
 * answer instead of one write of headers and body (on Node 24, a bare Node server answering the same
 * way: 6.6 against 6.2 KB allocated and 18.5 against 16.8 µs of CPU per request). The check it buys, that
 * a body matches its `content-length`, cannot fail here: the platform sets the length from the body the
 * gateway built, and streams go chunked.
 */
export class Response extends ServerResponse {}
Object.defineProperty(Response.prototype, "strictContentLength", { get: () => false, set: () => {} })

/**
 * The one cache of metric series with attributes, used by every stage.
 *
 * `Metric.withAttributes(metric, attributes)` builds a new metric whose every update adds the attributes to a
 * copy of the fiber's context (about a microsecond); a series built once with its attributes fixed
 * (`Metric.counter(id, { attributes })`) is the same series in the registry without that cost. The cache
 * is a tree keyed by an id (the metric's own by default) and then by each attribute value in order, so a
 * lookup builds no string: a call site must always pass the same attribute names in the same order.
 * Updating a cached series with `updateUnsafe(value, fiber.context)` needs no effect and no fiber.
 *
 * @internal
 */
import { Metric } from "effect"

/** @internal */
export type Attributes = Readonly<Record<string, string>>

interface Node {
  metric: unknown
  readonly next: Map<string, Node>
}
const cache = new Map<string, Node>()
let cached = 0
const child = (next: Map<string, Node>, key: string): Node => {
  let node = next.get(key)
  if (node === undefined) {
    node = { metric: undefined, next: new Map() }
    next.set(key, node)
  }
  return node
}

/**
 * The series of `metric` with `attributes`, built once and cached under `id`. `make` builds it: by default
 * `Metric.withAttributes`; a hot call site passes one that builds the series with its attributes fixed
 * (`Metric.counter(id, { ...options, attributes })`), so that an update copies no context.
 *
 * @internal
 */
export const tagged = <In, Out>(
  metric: Metric.Metric<In, Out>,
  attributes: Attributes,
  id: string = metric.id,
  make: (metric: Metric.Metric<In, Out>, attributes: Attributes) => Metric.Metric<In, Out> = Metric.withAttributes
): Metric.Metric<In, Out> => {
  let node = child(cache, id)
  for (const name in attributes) node = child(node.next, attributes[name])
  if (node.metric === undefined) {
    if (++cached > 10_000) {
      cache.clear()
      cached = 0
    }
    node.metric = make(metric, attributes)
  }
  return node.metric as Metric.Metric<In, Out>
}

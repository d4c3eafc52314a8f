/**
 * Metric series with attributes: the one cache of them, and the one rule for labels that name a model.
 *
 * `Metric.withAttributes(metric, attributes)` builds a new metric whose every update adds the attributes to a
 * copy of the fiber's context (about a microsecond); a series built once with its attributes fixed
 * (`Metric.counter(id, { attributes })`) is the same series in the registry without that cost.
 *
 * A {@link SeriesCache} keeps such series for one owner: a `Resilience` instance, a spend guard, a hedge. It is
 * a field of its owner, never a module-level value, so it is released with the layer that built the owner.
 * The cache is a tree keyed by an id (the metric's own by default) and then by each attribute value in order,
 * so a lookup builds no string: a call site must always pass the same attribute names in the same order.
 * Updating a cached series with `updateUnsafe(value, fiber.context)` needs no effect and no fiber.
 *
 * The caller chooses the model string, so a label that names a model would add series for good with each
 * new name: {@link modelLabel} and {@link keyLabel} keep the names of known models and turn every other one
 * into {@link otherModel}.
 *
 * @internal
 */
import { Metric } from "effect"

/** @internal */
export type Attributes = Readonly<Record<string, string>>

/** @internal */
export type Make<In, Out> = (metric: Metric.Metric<In, Out>, attributes: Attributes) => Metric.Metric<In, Out>

/**
 * The series of `metric` with `attributes`, built anew (not cached): for updates that are rare, such as
 * state transitions and refusals.
 *
 * @internal
 */
export const tagged = <In, Out>(
  metric: Metric.Metric<In, Out>,
  attributes: Attributes,
  make: Make<In, Out> = Metric.withAttributes
): Metric.Metric<In, Out> => make(metric, attributes)

interface Node {
  value: unknown
  readonly next: Map<string, Node>
}

const child = (next: Map<string, Node>, key: string): Node => {
  let node = next.get(key)
  if (node === undefined) {
    node = { value: undefined, next: new Map() }
    next.set(key, node)
  }
  return node
}

/**
 * The series (or bundles of series) one owner has built, by id and attribute values. Its labels are bounded
 * by its owner's configuration (models outside it are {@link otherModel}); `maxEntries` is a second bound,
 * past which the cache starts again empty (the series themselves stay in the metric registry).
 *
 * @internal
 */
export class SeriesCache {
  private readonly root = new Map<string, Node>()
  private entries = 0
  readonly maxEntries: number

  constructor(maxEntries: number = 10_000) {
    this.maxEntries = maxEntries
  }

  get size(): number {
    return this.entries
  }

  /** The value under `id` and `values` in order, made by `make` the first time. */
  get<A>(make: () => A, id: string, ...values: ReadonlyArray<string>): A {
    let node = child(this.root, id)
    for (const v of values) node = child(node.next, v)
    return this.settle(node, make)
  }

  /**
   * The series of `metric` with `attributes`, built once by `make` (by default `Metric.withAttributes`; a hot
   * call site passes one that builds the series with its attributes fixed) and cached under `id`.
   */
  tagged<In, Out>(
    metric: Metric.Metric<In, Out>,
    attributes: Attributes,
    id: string = metric.id,
    make: Make<In, Out> = Metric.withAttributes
  ): Metric.Metric<In, Out> {
    let node = child(this.root, id)
    for (const name in attributes) node = child(node.next, attributes[name])
    return this.settle(node, () => make(metric, attributes))
  }

  private settle<A>(node: Node, make: () => A): A {
    if (node.value !== undefined) return node.value as A
    if (++this.entries > this.maxEntries) {
      this.root.clear()
      this.entries = 1
    }
    const value = make()
    node.value = value
    return value
  }
}

/**
 * The label value of models outside the known ones.
 *
 * @internal
 */
export const otherModel = "other"

/**
 * The `model` label of a call: `model` (the one that answered) when it or `requested` is known, else
 * {@link otherModel}. Without a set of known models every name is kept.
 *
 * @internal
 */
export const modelLabel = (known: ReadonlySet<string> | undefined, model: string, requested: string = model): string =>
  known === undefined || known.has(model) || known.has(requested) ? model : otherModel

/**
 * The label of a `provider/model` key: the key when its model is known, else `provider/other`.
 *
 * @internal
 */
export const keyLabel = (known: ReadonlySet<string> | undefined, key: string): string => {
  if (known === undefined) return key
  const slash = key.indexOf("/")
  const model = key.slice(slash + 1)
  return known.has(model) ? key : `${key.slice(0, slash + 1)}${otherModel}`
}

/**
 * The one duration convention of the configuration: a number of milliseconds, or a `Duration` string such as
 * `"10 seconds"` or `"500 millis"` (anything `Duration.fromInput` reads). Options that hold a `Duration.Input`
 * (the stages' own `make` options) check it with {@link DurationInput}; the configuration's `...Ms` fields
 * decode it to milliseconds with {@link millis}.
 *
 * @internal
 */
import { Duration, Option, Schema, SchemaTransformation } from "effect"

const expected = 'expected a duration such as "10 seconds" or a number of milliseconds'

/** Any `Duration.Input` (a number is milliseconds). @internal */
export const DurationInput = Schema.Unknown.check(
  Schema.makeFilter((u) => Option.isSome(Duration.fromInput(u as Duration.Input)) || expected)
)

const DurationString = Schema.String.check(
  Schema.makeFilter((s) => Option.isSome(Duration.fromInput(s as Duration.Input)) || expected)
)

const toMillis = SchemaTransformation.transform<number, string>({
  decode: (s) => Duration.toMillis(Duration.fromInputUnsafe(s as Duration.Input)),
  encode: (ms) => `${ms} millis`
})

/**
 * A configuration duration decoded to milliseconds: a number (milliseconds) or a `Duration` string, checked by
 * `bounds` once in milliseconds.
 *
 * @internal
 */
export const millis = <S extends Schema.Codec<number, number>>(bounds: S) =>
  Schema.Union([bounds, DurationString.pipe(Schema.decodeTo(bounds, toMillis))])

/** A configuration section's fields as a stage's options: each `fooMs` becomes `foo` (milliseconds). @internal */
export type FromMillis<T> = {
  readonly [K in keyof T as K extends `${infer B}Ms` ? B : K]: T[K]
}

/**
 * Turns a decoded configuration section into its stage's options by the duration convention: a `fooMs` field
 * (milliseconds) is the stage's `foo` option (a `Duration.Input`, for which a number is milliseconds).
 *
 * @internal
 */
export const fromMillis = <T extends object>(section: T): FromMillis<T> => {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(section)) out[k.endsWith("Ms") ? k.slice(0, -2) : k] = v
  return out as FromMillis<T>
}

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

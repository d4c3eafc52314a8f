/**
 * What the output monitor reads from one output's text without a model: the writing systems its letters
 * belong to, and a hashed character n-gram vector (no download, reacts to a change of language, script or
 * format).
 *
 * @internal
 */

/** Writing systems told apart; CJK groups Han, Hiragana and Katakana (Japanese mixes them by nature). */
export const scriptNames = [
  "latin",
  "greek",
  "cyrillic",
  "armenian",
  "hebrew",
  "arabic",
  "devanagari",
  "thai",
  "hangul",
  "cjk",
  "other"
] as const

const scriptOf = (c: number): number => {
  if (c < 0x80) return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) ? 0 : -1
  if (c <= 0x24f) return c >= 0xc0 && c !== 0xd7 && c !== 0xf7 ? 0 : -1
  if (c >= 0x1e00 && c <= 0x1eff) return 0
  if (c >= 0x370 && c <= 0x3ff) return 1
  if (c >= 0x400 && c <= 0x52f) return 2
  if (c >= 0x530 && c <= 0x58f) return 3
  if (c >= 0x590 && c <= 0x5ff) return 4
  if (c >= 0x600 && c <= 0x6ff) return 5
  if (c >= 0x900 && c <= 0x97f) return 6
  if (c >= 0xe00 && c <= 0xe7f) return 7
  if ((c >= 0xac00 && c <= 0xd7af) || (c >= 0x1100 && c <= 0x11ff)) return 8
  if ((c >= 0x3040 && c <= 0x30ff) || (c >= 0x3400 && c <= 0x4dbf) || (c >= 0x4e00 && c <= 0x9fff)) return 9
  // modifiers, combining marks, punctuation, symbols and emoji (surrogate halves) belong to no script
  if (c <= 0x36f || (c >= 0x2000 && c <= 0x2bff) || (c >= 0x3000 && c <= 0x303f) || (c >= 0xd800 && c <= 0xdfff)) {
    return -1
  }
  return 10
}

/** The scripts whose letters appear in `text`, as a bit set over {@link scriptNames}. */
export const scripts = (text: string): number => {
  let mask = 0
  for (let i = 0; i < text.length; i++) {
    const s = scriptOf(text.charCodeAt(i))
    if (s >= 0) mask |= 1 << s
  }
  return mask
}

/** Whether a bit set from {@link scripts} holds more than one script. */
export const isMixed = (mask: number): boolean => (mask & (mask - 1)) !== 0

/** The names of the scripts in a bit set from {@link scripts}. */
export const namesOf = (mask: number): ReadonlyArray<string> => scriptNames.filter((_, i) => (mask & (1 << i)) !== 0)

/**
 * The hashed character n-gram vector of `text` (n = 1 to 3 over the lower-cased text padded with spaces,
 * FNV-1a into `dimensions` buckets, a power of two, with a hash-derived sign), scaled to unit length.
 * Empty text gives the zero vector.
 */
export const featurise = (text: string, dimensions: number): Float64Array => {
  const v = new Float64Array(dimensions)
  const mask = dimensions - 1
  const s = ` ${text.toLowerCase()} `
  for (let i = 0; i < s.length; i++) {
    let h = 0x811c9dc5
    for (let n = 0; n < 3 && i + n < s.length; n++) {
      h = Math.imul(h ^ s.charCodeAt(i + n), 0x01000193) >>> 0
      const mixed = Math.imul(h ^ (n + 1), 0x9e3779b1)
      v[(mixed >>> 7) & mask] += mixed < 0 ? -1 : 1
    }
  }
  let norm = 0
  for (let i = 0; i < dimensions; i++) norm += v[i] * v[i]
  if (norm > 0) {
    norm = Math.sqrt(norm)
    for (let i = 0; i < dimensions; i++) v[i] /= norm
  }
  return v
}

/** Scales a vector to unit length (an embedding model's vector, before it is summed into a window). */
export const normalise = (vector: ReadonlyArray<number>): Float64Array => {
  const v = Float64Array.from(vector)
  let norm = 0
  for (let i = 0; i < v.length; i++) norm += v[i] * v[i]
  if (norm > 0) {
    norm = Math.sqrt(norm)
    for (let i = 0; i < v.length; i++) v[i] /= norm
  }
  return v
}

/**
 * Options read from `Config` with the caller's overrides on top, where the overrides are set.
 *
 * A plain spread would let `{ servers: undefined }` (typically `process.env.X` that is unset) erase
 * the configured value, and the default would be used without a word.
 */

/** `base` with every key of `overrides` whose value is not `undefined`. */
export const withOverrides = <A extends object>(base: A, overrides: A): A => {
  const merged = { ...base }
  for (const key of Object.keys(overrides) as Array<keyof A>) {
    const value = overrides[key]
    if (value !== undefined) merged[key] = value
  }
  return merged
}

/**
 * YAML text for JSON-compatible values: block mappings and sequences, `{}` and `[]` when empty, and
 * scalars in JSON syntax, which YAML reads the same (a double-quoted YAML scalar is a JSON string).
 * Entries JSON would drop are dropped (`undefined`, functions); non-finite numbers, and anything else
 * JSON has no syntax for, are `null`.
 *
 * A string stays plain only when no YAML 1.1 or 1.2 reader can take it for anything but a string: it
 * starts with a letter or `_`, holds only word characters, `.`, `/`, `+` and `-`, and is not a word such
 * as `true`, `null`, `yes` or `off`. Everything else is quoted.
 */

const plain = /^[A-Za-z_][\w./+-]*$/
const reserved = /^(?:true|false|null|yes|no|on|off|y|n)$/i
// Characters JSON leaves raw that YAML does not allow raw, or reads as line breaks.
const unsafeRaw = /[\u007f-\u009f\u2028\u2029\ufeff]/g

const unicodeEscape = (char: string): string => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`

const scalar = (text: string): string =>
  plain.test(text) && !reserved.test(text) ? text : JSON.stringify(text).replace(unsafeRaw, unicodeEscape)

const isPresent = (value: unknown): boolean =>
  value !== undefined && typeof value !== "function" && typeof value !== "symbol"

const pad = (line: string): string => `  ${line}`

// A scalar, `{}` or `[]` as one string; a non-empty container as its lines, indented from column 0.
const render = (value: unknown): string | ReadonlyArray<string> => {
  if (typeof value === "string") return scalar(value)
  if (typeof value === "number") return Number.isFinite(value) ? JSON.stringify(value) : "null"
  if (typeof value === "boolean") return value ? "true" : "false"
  if (typeof value !== "object" || value === null) return "null"
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]"
    return value.flatMap((item: unknown) => {
      const rendered = render(isPresent(item) ? item : null)
      if (typeof rendered === "string") return [`- ${rendered}`]
      const [first = "", ...rest] = rendered
      return [`- ${first}`, ...rest.map(pad)]
    })
  }
  const entries = Object.entries(value).filter(([, entry]) => isPresent(entry))
  if (entries.length === 0) return "{}"
  return entries.flatMap(([key, entry]) => {
    const rendered = render(entry)
    return typeof rendered === "string" ? [`${scalar(key)}: ${rendered}`] : [`${scalar(key)}:`, ...rendered.map(pad)]
  })
}

/** The YAML document of a JSON-compatible value, ending with a newline. */
export const stringify = (value: unknown): string => {
  const rendered = render(value)
  return `${typeof rendered === "string" ? rendered : rendered.join("\n")}\n`
}

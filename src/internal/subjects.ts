/**
 * NATS subject syntax as nats-server reads it: which subjects and patterns are valid, whether a subject
 * matches a pattern with `*` (one token) and `>` (one or more trailing tokens), and the two relations
 * between patterns that stream and consumer configurations need: overlap (some subject matches both)
 * and subset (every subject matching one matches the other). Also the rule of stream and consumer names.
 *
 * Matching a published subject is on the hot path of the in-memory broker, so patterns are compiled
 * once into a `Matcher`. Not here: which stream or consumer a pattern belongs to.
 */

/** A compiled pattern: `true` when the subject matches it. */
export type Matcher = (subject: string) => boolean

const hasWhitespace = /\s/

/** Tokens are non-empty; `*` and `>` only as whole tokens, `>` only last; wildcards only when allowed. */
export const isValid = (subject: string, options: { readonly wildcards: boolean }): boolean => {
  if (subject.length === 0 || hasWhitespace.test(subject)) return false
  const tokens = subject.split(".")
  return tokens.every((token, index) => {
    if (token.length === 0) return false
    if (token === "*" || token === ">") return options.wildcards && (token === "*" || index === tokens.length - 1)
    return !token.includes("*") && !token.includes(">")
  })
}

/** A stream or durable consumer name: non-empty, without `.`, `*`, `>`, `/`, `\\` or whitespace. */
export const isName = (name: string): boolean => /^[^.*>\s/\\]+$/.test(name)

/** Whether a pattern has a wildcard token. */
export const hasWildcard = (pattern: string): boolean => pattern.split(".").some((t) => t === "*" || t === ">")

const tokensMatch = (pattern: ReadonlyArray<string>, subject: ReadonlyArray<string>): boolean => {
  for (let i = 0; i < pattern.length; i++) {
    const token = pattern[i]
    if (token === ">") return subject.length > i
    if (i >= subject.length || (token !== "*" && token !== subject[i])) return false
  }
  return pattern.length === subject.length
}

/** Compiles a pattern; literal patterns and `prefix.>` compare strings without splitting. */
export const matcher = (pattern: string): Matcher => {
  if (!hasWildcard(pattern)) return (subject) => subject === pattern
  if (pattern === ">") return (subject) => subject.length > 0
  const tokens = pattern.split(".")
  if (tokens.indexOf("*") === -1) {
    const prefix = pattern.slice(0, -1)
    return (subject) => subject.length > prefix.length && subject.startsWith(prefix)
  }
  return (subject) => tokensMatch(tokens, subject.split("."))
}

/** Some subject matches both patterns. */
export const overlaps = (a: string, b: string): boolean => {
  const left = a.split(".")
  const right = b.split(".")
  for (let i = 0; i < Math.max(left.length, right.length); i++) {
    const l = left[i]
    const r = right[i]
    if (l === ">" || r === ">") return l !== undefined && r !== undefined
    if (l === undefined || r === undefined) return false
    if (l !== r && l !== "*" && r !== "*") return false
  }
  return true
}

/** Every subject matching `pattern` also matches `of`. */
export const isSubsetOf = (pattern: string, of: string): boolean => {
  const inner = pattern.split(".")
  const outer = of.split(".")
  for (let i = 0; i < outer.length; i++) {
    const o = outer[i]
    if (o === ">") return inner.length > i
    const token = inner[i]
    if (token === undefined || token === ">") return false
    if (o !== "*" && (token === "*" || token !== o)) return false
  }
  return inner.length === outer.length
}

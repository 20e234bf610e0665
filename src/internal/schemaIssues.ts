/**
 * Schema failures reduced to what a `DecodeError` or `EncodeError` reports: the first failing field as
 * a wire path (`data.items[0].name`) and what was expected there.
 *
 * Not public: `Envelope` uses it.
 */
import type { Schema } from "effect"
import { SchemaIssue } from "effect"

const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1()

type IssuePath = ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined

const formatPath = (prefix: string | undefined, path: IssuePath): string | undefined => {
  let out = prefix
  for (const segment of path ?? []) {
    const key = typeof segment === "object" ? segment.key : segment
    out = typeof key === "number" ? `${out ?? ""}[${key}]` : out === undefined ? String(key) : `${out}.${String(key)}`
  }
  return out
}

/** The first problem of a schema failure: its path (under `prefix`) and what was expected there. */
export const firstIssue = (
  error: Schema.SchemaError,
  prefix?: string
): { readonly path: string | undefined; readonly detail: string } => {
  const first = formatIssue(error.issue).issues[0]
  return first === undefined
    ? { path: prefix, detail: error.message }
    : { path: formatPath(prefix, first.path), detail: first.message }
}

/** `<what>: <detail> at <path>`, the message of both codec errors. */
export const issueMessage = (what: string, path: string | undefined, detail: string): string =>
  path === undefined ? `${what}: ${detail}` : `${what}: ${detail} at ${path}`

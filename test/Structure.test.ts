/**
 * The shape of `src/`, checked so that it stays as it is documented: import cycles (type-only imports
 * included), file sizes, and `@category` values from one list.
 */
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import ts from "typescript"

const src = resolve(import.meta.dirname, "..", "src")

const sourceFiles = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  )

const files = sourceFiles(src)
const name = (file: string) => relative(src, file)

// Every relative import and re-export of a file, type-only ones included, as files of src/.
const importsOf = (file: string): ReadonlyArray<string> =>
  ts
    .preProcessFile(readFileSync(file, "utf8"), true, false)
    .importedFiles.map((imported) => imported.fileName)
    .filter((specifier) => specifier.startsWith("."))
    .map((specifier) => resolve(dirname(file), specifier.replace(/\.js$/, ".ts")))

/** The strongly connected components of more than one file (Tarjan), each sorted, sorted by first file. */
const cycles = (graph: ReadonlyMap<string, ReadonlyArray<string>>): ReadonlyArray<ReadonlyArray<string>> => {
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: Array<string> = []
  const onStack = new Set<string>()
  const found: Array<Array<string>> = []
  const visit = (node: string): void => {
    index.set(node, index.size)
    low.set(node, index.get(node) ?? 0)
    stack.push(node)
    onStack.add(node)
    for (const next of graph.get(node) ?? []) {
      if (!index.has(next)) {
        visit(next)
        low.set(node, Math.min(low.get(node) ?? 0, low.get(next) ?? 0))
      } else if (onStack.has(next)) low.set(node, Math.min(low.get(node) ?? 0, index.get(next) ?? 0))
    }
    if (low.get(node) !== index.get(node)) return
    const component: Array<string> = []
    for (let member = stack.pop(); member !== undefined; member = stack.pop()) {
      onStack.delete(member)
      component.push(member)
      if (member === node) break
    }
    if (component.length > 1) found.push(component.map(name).sort())
  }
  for (const node of graph.keys()) if (!index.has(node)) visit(node)
  return found.sort((a, b) => (a[0] ?? "").localeCompare(b[0] ?? ""))
}

const categories = new Set([
  "accessors",
  "combinators",
  "constants",
  "constructors",
  "decoding",
  "encoding",
  "errors",
  "guards",
  "layers",
  "metrics",
  "models",
  "provisioning",
  "schemas",
  "services",
  "testing",
  "tracing"
])

describe("the shape of src/", () => {
  it("has no import cycle, type-only imports included", () => {
    const graph = new Map(files.map((file) => [file, importsOf(file)] as const))
    expect(cycles(graph)).toEqual([])
  })

  it("keeps files small: none over 500 lines, the median at most 200", () => {
    const lines = files.map((file) => ({ file: name(file), lines: readFileSync(file, "utf8").split("\n").length }))
    expect(lines.filter((entry) => entry.lines > 501)).toEqual([])
    const sorted = lines.map((entry) => entry.lines).sort((a, b) => a - b)
    expect(sorted[Math.floor(sorted.length / 2)]).toBeLessThanOrEqual(200)
  })

  it("files every export under one of a fixed list of categories", () => {
    const off = files.flatMap((file) =>
      [...readFileSync(file, "utf8").matchAll(/@category (.+)$/gm)]
        .map((match) => match[1]?.trim() ?? "")
        .filter((category) => !categories.has(category))
        .map((category) => `${name(file)}: ${category}`)
    )
    expect(off).toEqual([])
  })
})

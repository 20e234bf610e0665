/**
 * Where the bench lives. It runs compiled (`npm run bench` builds it under `.tmp/bench-build/`, so that
 * the library is measured as users run it, without a loader's per-function helpers), so its files
 * find the repository by looking up for `package.json` rather than next to themselves.
 */
import { existsSync } from "node:fs"
import { dirname, join, relative } from "node:path"

const findRepository = (from: string): string => {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir
    if (dirname(dir) === dir) throw new Error(`no package.json above ${from}`)
  }
}

export const repository = findRepository(import.meta.dirname)

/** The bench's source directory: results and profiles are written there. */
export const benchDir = join(repository, "bench")

/** Where `tsconfig.bench.json` compiles to. */
export const buildDir = join(repository, ".tmp", "bench-build")

/** A compiled file's path as its source path, relative to the repository (`src/Subscriber.js`). */
export const sourcePath = (path: string): string =>
  path.startsWith(buildDir) ? relative(buildDir, path) : relative(repository, path)

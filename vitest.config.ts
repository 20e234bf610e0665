import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url))

export default defineConfig({
  resolve: {
    // Examples and tests import the package by its public name, resolved to the sources.
    alias: [
      { find: /^@glam\/messaging$/, replacement: src("index.ts") },
      { find: /^@glam\/messaging\/glam$/, replacement: src("glam/index.ts") },
      { find: /^@glam\/messaging\/testing$/, replacement: src("testing.ts") }
    ]
  },
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Every test file starts its own nats-server; two cores gain nothing from more workers.
    maxWorkers: 2,
    // Logs of passing tests are noise; a failing test still shows everything it logged.
    silent: "passed-only",
    reporters: ["default", "json"],
    outputFile: { json: ".tmp/vitest-report.json" }
  }
})

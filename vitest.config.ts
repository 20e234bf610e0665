import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Every test file starts its own nats-server; two cores do not gain from more workers.
    maxWorkers: 2,
    reporters: ["default", "json"],
    outputFile: { json: ".tmp/vitest-report.json" }
  }
})

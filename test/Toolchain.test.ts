import { existsSync, readFileSync } from "node:fs"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as NatsServer from "./support/NatsServer.js"

describe("toolchain", () => {
  it("runs on the pinned Node 24", () => {
    expect(process.versions.node.split(".")[0]).toBe("24")
  })

  it("is packaged for an app that has its own Effect: effect as a peer, a licence, dist built on pack", () => {
    const manifest = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"))
    for (const name of ["effect", "@effect/platform-node"]) {
      expect(manifest.peerDependencies?.[name], name).toMatch(/^\^4\./)
      expect(manifest.dependencies?.[name], name).toBeUndefined()
      expect(manifest.devDependencies?.[name], name).toBeDefined()
    }
    expect(manifest.scripts?.prepack).toBe("npm run build")
    expect(manifest.license).toBe("MIT")
    expect(readFileSync(new URL("../LICENSE", import.meta.url), "utf8")).toContain("MIT License")
    expect(existsSync(new URL("../tsconfig.build.json", import.meta.url))).toBe(true)
  })

  it.live("starts, restarts and releases its own nats-server", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make()
      expect(server.port).not.toBe(4222)
      expect(yield* server.isRunning).toBe(true)
      yield* server.restart
      expect(yield* server.isRunning).toBe(true)
      yield* server.kill
      expect(yield* server.isRunning).toBe(false)
      yield* server.start
      expect(yield* server.log).toContain("Server is ready")
    })
  )
})

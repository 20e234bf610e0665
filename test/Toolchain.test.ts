import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as NatsServer from "./support/NatsServer.js"

describe("toolchain", () => {
  it("runs on the pinned Node 24", () => {
    expect(process.versions.node.split(".")[0]).toBe("24")
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

/**
 * A subscriber's status as a value, as a stream of changes and in the registry: `Starting` until it
 * consumes, `Consuming` once its loop is up, `Stopping` when its scope closes, and gone from the
 * registry after.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope, Stream } from "effect"
import { Broker } from "../../src/Broker.js"
import * as Subscriber from "../../src/Subscriber.js"
import * as SubscriberStatus from "../../src/SubscriberStatus.js"
import * as Testing from "../../src/testing.js"
import { Happened, withMemory } from "../support/Subscribing.js"

describe("SubscriberStatus", () => {
  it.effect("is Consuming once the subscriber consumes, Stopping as it closes, and leaves the registry", () =>
    withMemory(
      Effect.gen(function* () {
        const registry = SubscriberStatus.makeRegistryUnsafe()
        const seen = yield* registry.changes.pipe(
          Stream.map((entry) => `${entry.durable}:${entry.status._tag}`),
          Stream.take(2),
          Stream.runCollect,
          Effect.forkChild({ startImmediately: true })
        )
        const scope = yield* Scope.make()
        const handle = yield* Subscriber.make(Happened, { durable: "status-a", handler: () => Effect.void }).pipe(
          Scope.provide(scope),
          Effect.provideService(SubscriberStatus.Registry, registry)
        )
        assert.strictEqual((yield* handle.status)._tag, "Consuming")
        const entries = yield* registry.all
        assert.deepStrictEqual(
          entries.map((entry) => [entry.durable, entry.stream, entry.status._tag]),
          [["status-a", "GLAM_EVENTS", "Consuming"]]
        )
        const own = yield* handle.changes.pipe(
          Stream.map((status) => status._tag),
          Stream.runCollect,
          Effect.forkChild({ startImmediately: true })
        )
        yield* Scope.close(scope, Exit.void)
        assert.deepStrictEqual(Array.from(yield* Fiber.join(own)), ["Consuming", "Stopping"])
        assert.deepStrictEqual(Array.from(yield* Fiber.join(seen)), ["status-a:Consuming", "status-a:Stopping"])
        assert.deepStrictEqual(yield* registry.all, [])
        assert.deepStrictEqual(
          (yield* SubscriberStatus.notConsuming.pipe(Effect.provideService(SubscriberStatus.Registry, registry)))
            .length,
          0
        )
      })
    )
  )
  it.effect("is Restarting, with the attempts and the last error, while its stream is gone", () =>
    withMemory(
      Effect.gen(function* () {
        const registry = SubscriberStatus.makeRegistryUnsafe()
        const handle = yield* Subscriber.make(Happened, { durable: "status-b", handler: () => Effect.void }).pipe(
          Effect.provideService(SubscriberStatus.Registry, registry)
        )
        const broker = yield* Broker
        yield* broker.deleteStream("GLAM_EVENTS")
        yield* broker.deleteConsumer("GLAM_EVENTS", "status-b").pipe(Effect.ignore)
        yield* Testing.advance("10 seconds")
        const status = yield* handle.status
        assert.strictEqual(status._tag, "Restarting")
        if (status._tag === "Restarting") {
          assert.isAtLeast(status.attempts, 2)
          assert.include(status.lastError, "GLAM_EVENTS")
        }
        assert.deepStrictEqual(
          (yield* SubscriberStatus.notConsuming.pipe(Effect.provideService(SubscriberStatus.Registry, registry))).map(
            (entry) => entry.durable
          ),
          ["status-b"]
        )
      })
    )
  )
})

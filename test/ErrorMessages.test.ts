/**
 * Errors that name things, on both brokers with the same words: a missing stream or consumer by name,
 * and a stream whose subjects overlap by its name and subjects and those of the streams in its way,
 * also through `Topology.provision`.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Layer, Redacted, Stream } from "effect"
import { Broker } from "../src/Broker.js"
import * as MemoryBroker from "../src/MemoryBroker.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as NatsClient from "../src/NatsClient.js"
import * as Topology from "../src/Topology.js"
import { consumerConfig, streamConfig } from "./support/configs.js"
import * as NatsServer from "./support/NatsServer.js"

const natsBroker = NatsBroker.layerFromClient.pipe(
  Layer.provideMerge(
    Layer.unwrap(Effect.map(NatsServer.NatsServerService, (server) => NatsClient.layer({ servers: server.url })))
  ),
  Layer.provideMerge(NatsServer.layer())
)

const brokers: ReadonlyArray<readonly [string, Layer.Layer<Broker, unknown>]> = [
  ["MemoryBroker", MemoryBroker.layer],
  ["NatsBroker", natsBroker]
]

const overlapText = "subjects overlap with an existing stream"

for (const [name, brokerLayer] of brokers) {
  describe(`error messages: ${name}`, () => {
    // Each test has streams and subjects of its own, so one broker serves them all.
    layer(brokerLayer)((it) => {
      it.effect("a missing stream is named by consume, addConsumer and getMessage", () =>
        Effect.gen(function* () {
          const broker = yield* Broker
          const consumed = yield* broker
            .consume("MISSING", "billing", { maxMessages: 1 })
            .pipe(Stream.runHead, Effect.flip)
          expect(consumed.reason._tag).toBe("StreamNotFound")
          expect(consumed.message).toBe("consume: stream MISSING not found")

          const added = yield* broker.addConsumer(consumerConfig("MISSING", "billing")).pipe(Effect.flip)
          expect(added.reason).toMatchObject({ _tag: "StreamNotFound", stream: "MISSING" })
          expect(added.message).toBe("addConsumer: stream MISSING not found")

          const read = yield* broker.getMessage("MISSING", 1).pipe(Effect.flip)
          expect(read.message).toBe("getMessage: stream MISSING not found")

          const updated = yield* broker.updateStream(streamConfig("MISSING", ["missing.>"])).pipe(Effect.flip)
          expect(updated.message).toBe("updateStream: stream MISSING not found")
        })
      )

      it.effect("a missing consumer is named with its stream", () =>
        Effect.gen(function* () {
          const broker = yield* Broker
          yield* broker.addStream(streamConfig("INVOICES", ["invoices.>"]))
          const consumed = yield* broker
            .consume("INVOICES", "billing", { maxMessages: 1 })
            .pipe(Stream.runHead, Effect.flip)
          expect(consumed.reason).toMatchObject({ _tag: "ConsumerNotFound", stream: "INVOICES", consumer: "billing" })
          expect(consumed.message).toBe("consume: consumer INVOICES/billing not found")

          const updated = yield* broker.updateConsumer(consumerConfig("INVOICES", "billing")).pipe(Effect.flip)
          expect(updated.message).toBe("updateConsumer: consumer INVOICES/billing not found")
        })
      )

      it.effect("a stream overlapping an existing one names both streams and their subjects", () =>
        Effect.gen(function* () {
          const broker = yield* Broker
          yield* broker.addStream(streamConfig("LEGACY", ["orders.placed.>"]))
          yield* broker.addStream(streamConfig("ARCHIVE", ["orders.*", "archive.>"]))
          const added = yield* broker.addStream(streamConfig("ORDERS", ["orders.>"])).pipe(Effect.flip)
          expect(added.reason).toMatchObject({ _tag: "Rejected", code: 10065 })
          expect(added.message).toBe(
            `addStream: stream ORDERS (orders.>) overlaps stream ARCHIVE (orders.*, archive.>), stream LEGACY (orders.placed.>): ${overlapText}`
          )

          yield* broker.addStream(streamConfig("SHIPPING", ["shipping.>"]))
          const updated = yield* broker
            .updateStream(streamConfig("SHIPPING", ["shipping.>", "orders.placed.eu"]))
            .pipe(Effect.flip)
          expect(updated.message).toBe(
            `updateStream: stream SHIPPING (shipping.>, orders.placed.eu) overlaps stream LEGACY (orders.placed.>): ${overlapText}`
          )
        })
      )

      it.effect("Topology.provision names an existing stream its stream overlaps", () =>
        Effect.gen(function* () {
          yield* Topology.provision(Topology.make({ streams: [{ name: "PAYMENTS", subjects: ["payments.card.>"] }] }))
          const refused = yield* Topology.provision(
            Topology.make({ streams: [{ name: "BILLING", subjects: ["payments.*.eu"] }] })
          ).pipe(Effect.flip)
          expect(refused.message).toBe(
            `addStream: stream BILLING (payments.*.eu) overlaps stream PAYMENTS (payments.card.>): ${overlapText}`
          )
        })
      )

      it.effect("Topology.provision refuses two of its own streams that overlap, before asking the broker", () =>
        Effect.gen(function* () {
          const refused = yield* Topology.provision(
            Topology.make({
              streams: [
                { name: "EVENTS", subjects: ["evt.>"] },
                { name: "AUDIT", subjects: ["audit.>"] },
                { name: "EVENTS_V2", subjects: ["evt.*.v2"] }
              ]
            })
          ).pipe(Effect.flip)
          expect(refused).toMatchObject({ _tag: "TopologyError", stream: "EVENTS", field: "subjects" })
          expect(refused.message).toBe(
            "stream EVENTS (evt.>) overlaps stream EVENTS_V2 (evt.*.v2) in the same topology: the server refuses streams whose subjects overlap"
          )
          // Nothing was created.
          const broker = yield* Broker
          const names = (yield* broker.listStreams).map((info) => info.config.name)
          expect(names).not.toContain("EVENTS")
          expect(names).not.toContain("AUDIT")
        })
      )
    })
  })
}

// A user who may not list streams: the overlap is still refused with the stream and its subjects named.
const deniedListing = `authorization {
  users = [
    { user: "app", password: "secret", permissions: { publish: { deny: ["$JS.API.STREAM.LIST", "$JS.API.STREAM.NAMES"] } } }
  ]
}
`

const natsBrokerWithoutListing = NatsBroker.layerFromClient.pipe(
  Layer.provideMerge(
    Layer.unwrap(
      Effect.map(NatsServer.NatsServerService, (server) =>
        NatsClient.layer({ servers: server.url, user: "app", password: Redacted.make("secret") })
      )
    )
  ),
  Layer.provideMerge(NatsServer.layer({ config: deniedListing }))
)

describe("error messages: NatsBroker, streams not listable", () => {
  layer(natsBrokerWithoutListing)((it) => {
    it.effect("an overlap whose other stream cannot be looked up still names the stream and its subjects", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream(streamConfig("LEGACY", ["orders.placed.>"]))
        const added = yield* broker.addStream(streamConfig("ORDERS", ["orders.>", "returns.>"])).pipe(Effect.flip)
        expect(added.reason).toMatchObject({ _tag: "Rejected", code: 10065 })
        expect(added.message).toBe(`addStream: stream ORDERS (orders.>, returns.>): ${overlapText}`)
      })
    )
  })
})

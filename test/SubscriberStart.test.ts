/**
 * A subscriber starts only where nothing can be lost, and in whatever order its layers are composed:
 * it waits for its stream and for the streams of its dead letters and advisories (a topology built
 * beside it may still be creating them), and refuses to start, naming what is missing, when they never
 * come.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Layer, Ref, Schema } from "effect"
import * as Event from "../src/Event.js"
import * as Streams from "../src/glam/Streams.js"
import * as Publisher from "../src/Publisher.js"
import * as ServiceIdentity from "../src/ServiceIdentity.js"
import * as Subscriber from "../src/Subscriber.js"
import * as Topology from "../src/Topology.js"
import { eventually } from "./support/Eventually.js"
import { natsBroker } from "./support/Messaging.js"
import * as NatsServer from "./support/NatsServer.js"

const Placed = Event.make("evt.start.placed.v1", Schema.Struct({ n: Schema.Number }))

/** A fresh server with a client, a broker and a service identity; no stream at all. */
const bare = natsBroker.pipe(
  Layer.provideMerge(ServiceIdentity.layer("start-service")),
  Layer.provideMerge(NatsServer.layer())
)

describe("Subscriber start", () => {
  it.live("refuses to start without streams for its dead letters and advisories, naming each", () =>
    Effect.gen(function* () {
      yield* Topology.provision(Topology.make({ streams: [Streams.events] }))
      const exit = yield* Subscriber.make(Placed, {
        durable: "nowhere-to-go",
        waitForStreams: "1 second",
        handler: () => Effect.void
      }).pipe(Effect.exit)
      assert(Exit.isFailure(exit))
      const error = Exit.findErrorOption(exit)
      assert(error._tag === "Some" && error.value._tag === "TopologyError")
      expect(error.value.consumer).toBe("nowhere-to-go")
      expect(error.value.message).toContain(
        "a stream on dlq.start.placed.v1 for the dead letters of evt.start.placed.v1"
      )
      expect(error.value.message).toContain(
        "a stream on $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.GLAM_EVENTS.nowhere-to-go for its max-deliveries advisories"
      )
      expect(error.value.message).not.toContain("the stream GLAM_EVENTS")
      expect(error.value.message).toContain("Streams.topology")
    }).pipe(Effect.provide(bare))
  )

  it.live("on a stream of one's own, says to declare its dead letters with Topology.withDeadLetters", () =>
    Effect.gen(function* () {
      const orders: Topology.StreamSpec = { name: "ORDERS", subjects: ["evt.orders.>"] }
      yield* Topology.provision(Topology.make({ streams: [orders] }))
      const error = yield* Subscriber.make(Event.make("evt.orders.placed.v1", Schema.Struct({ n: Schema.Number })), {
        durable: "orders-worker",
        stream: "ORDERS",
        waitForStreams: "1 second",
        handler: () => Effect.void
      }).pipe(Effect.flip)
      assert(error._tag === "TopologyError")
      expect(error.message).toBe(
        "subscriber orders-worker: missing after 1000 ms: " +
          "a stream on dlq.orders.placed.v1 for the dead letters of evt.orders.placed.v1; " +
          "a stream on $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORDERS.orders-worker for its max-deliveries advisories. " +
          "Declare them with the stream in the topology provisioned with it (Messaging.layer({ topology }) or Topology.layer): " +
          "Topology.make({ streams: Topology.withDeadLetters(ORDERS) }), with ORDERS the StreamSpec of the stream, " +
          "adds ORDERS_DLQ on dlq.orders.>, dlq._chunk.ORDERS, dlq._missing.ORDERS, dlq._replayed.ORDERS_DLQ " +
          "and ORDERS_ADVISORIES on $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORDERS.>; " +
          "or streams of your own on those subjects"
      )
      // Declared so, it starts.
      yield* Topology.provision(Topology.make({ streams: Topology.withDeadLetters(orders) }))
      yield* Subscriber.make(Event.make("evt.orders.placed.v1", Schema.Struct({ n: Schema.Number })), {
        durable: "orders-worker",
        stream: "ORDERS",
        waitForStreams: "1 second",
        handler: () => Effect.void
      }).pipe(Effect.scoped)
    }).pipe(Effect.provide(bare))
  )

  it.live("refuses to start on a stream that does not exist, naming it", () =>
    Effect.gen(function* () {
      yield* Topology.provision(Streams.topology)
      const exit = yield* Subscriber.make(Placed, {
        durable: "lost",
        stream: "ORDERS",
        waitForStreams: "1 second",
        handler: () => Effect.void
      }).pipe(Effect.exit)
      const error = Exit.findErrorOption(exit)
      assert(error._tag === "Some" && error.value._tag === "TopologyError")
      expect(error.value.message).toContain("missing after 1000 ms: the stream ORDERS")
    }).pipe(Effect.provide(bare))
  )

  it.live("without a stream named, reads the stream that captures its subjects, whatever its name", () =>
    Effect.gen(function* () {
      const handled = yield* Ref.make<ReadonlyArray<number>>([])
      yield* Topology.provision(
        Topology.make({
          streams: [
            { name: "SHOP", subjects: ["evt.start.>"] },
            { name: "SHOP_DEAD", subjects: ["dlq.>"] },
            { name: "SHOP_ADVISORIES", subjects: ["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"] }
          ]
        })
      )
      yield* Subscriber.make(Placed, {
        durable: "own-stream",
        handler: (envelope) => Ref.update(handled, (list) => [...list, envelope.data.n])
      })
      const publisher = yield* Publisher.make()
      const receipt = yield* publisher.publish(Placed, { n: 7 })
      expect(receipt.stream).toBe("SHOP")
      yield* eventually(
        Effect.flatMap(Ref.get(handled), (list) => (list.length === 1 ? Effect.void : Effect.fail("not yet"))),
        { timeout: "10 seconds", interval: "50 millis" }
      )
      expect(yield* Ref.get(handled)).toStrictEqual([7])
    }).pipe(Effect.provide(bare))
  )

  it.live("refuses to start when no stream captures its subject, naming the subject", () =>
    Effect.gen(function* () {
      yield* Topology.provision(
        Topology.make({
          streams: [Streams.deadLetters, Streams.advisories, { name: "OTHER", subjects: ["other.>"] }]
        })
      )
      const exit = yield* Subscriber.make(Placed, {
        durable: "uncaptured",
        waitForStreams: "1 second",
        handler: () => Effect.void
      }).pipe(Effect.exit)
      const error = Exit.findErrorOption(exit)
      assert(error._tag === "Some" && error.value._tag === "TopologyError")
      expect(error.value.consumer).toBe("uncaptured")
      expect(error.value.message).toContain("missing after 1000 ms: a stream capturing evt.start.placed.v1")
    }).pipe(Effect.provide(bare))
  )

  it.live("refuses at once a subscription whose events are captured by two streams", () =>
    Effect.gen(function* () {
      const Shipped = Event.make("evt.ship.sent.v1", Schema.Struct({ n: Schema.Number }))
      yield* Topology.provision(
        Topology.make({
          streams: [
            { name: "STARTS", subjects: ["evt.start.>"] },
            { name: "SHIPS", subjects: ["evt.ship.>"] },
            Streams.deadLetters,
            Streams.advisories
          ]
        })
      )
      const exit = yield* Subscriber.make([Placed, Shipped], {
        durable: "split",
        waitForStreams: "20 seconds",
        filterSubject: "evt.>",
        handler: () => Effect.void
      }).pipe(Effect.timeout("5 seconds"), Effect.exit)
      const error = Exit.findErrorOption(exit)
      assert(error._tag === "Some" && error.value._tag === "TopologyError")
      expect(error.value.message).toContain("evt.start.placed.v1 by STARTS, evt.ship.sent.v1 by SHIPS")
    }).pipe(Effect.provide(bare))
  )

  for (const order of ["subscriber first", "topology first"] as const) {
    it.live(`composed in any order (${order}) on a fresh server, the layers start and messages are handled`, () =>
      Effect.gen(function* () {
        const handled = yield* Ref.make<ReadonlyArray<number>>([])
        const subscriber = Subscriber.layer(Placed, {
          durable: "composed",
          handler: (envelope) => Ref.update(handled, (list) => [...list, envelope.data.n])
        })
        const topology = Topology.layer(Streams.topology)
        const app = (
          order === "subscriber first" ? Layer.mergeAll(subscriber, topology) : Layer.mergeAll(topology, subscriber)
        ).pipe(Layer.provideMerge(Publisher.layer()))
        yield* Effect.gen(function* () {
          const publisher = yield* Publisher.Publisher
          yield* publisher.publishAll([1, 2, 3].map((n) => ({ event: Placed, payload: { n } })))
          yield* eventually(
            Effect.flatMap(Ref.get(handled), (list) => (list.length === 3 ? Effect.void : Effect.fail("not yet"))),
            { timeout: "15 seconds", interval: "50 millis" }
          )
        }).pipe(Effect.provide(app))
        expect([...(yield* Ref.get(handled))].sort()).toStrictEqual([1, 2, 3])
      }).pipe(Effect.provide(bare))
    )
  }
})

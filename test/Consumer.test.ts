import { assert, describe, expect, layer } from "@effect/vitest"
import { Clock, DateTime, Duration, Effect, Exit, Layer, Option, Queue, Schema, Stream } from "effect"
import { Broker } from "../src/Broker.js"
import * as Consumer from "../src/Consumer.js"
import type * as Envelope from "../src/Envelope.js"
import * as Event from "../src/Event.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as NatsClient from "../src/NatsClient.js"
import type { NatsError } from "../src/NatsError.js"
import * as Topology from "../src/Topology.js"
import { eventually } from "./support/Eventually.js"
import * as NatsServer from "./support/NatsServer.js"

const Env = NatsBroker.layerFromClient.pipe(
  Layer.provideMerge(
    Layer.unwrap(Effect.map(NatsServer.NatsServerService, (server) => NatsClient.layer({ servers: server.url })))
  ),
  Layer.provideMerge(NatsServer.layer())
)

const OrderPlaced = Event.make("evt.orders.placed.v1", Schema.Struct({ orderId: Schema.String, total: Schema.Number }))
const OrderShipped = Event.make("evt.orders.shipped.v1", Schema.Struct({ orderId: Schema.String }))
const Orders = Event.group(OrderPlaced, OrderShipped)

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
const timeout = Duration.seconds(5)

const envelopeOf = <A>(eventType: string, data: A, eventId = "e-1"): Envelope.Envelope<A> => ({
  eventId,
  eventType,
  correlationId: "c-1",
  sourceService: "orders",
  timestamp: DateTime.makeUnsafe("2026-11-26T12:33:37.123Z"),
  data
})

/** A stream on `evt.<name>.>`, created fresh for one test. */
const streamFor = (name: string) =>
  Topology.provision(Topology.make({ streams: [{ name: name.toUpperCase(), subjects: [`evt.${name}.>`] }] }))

const publish = (subject: string, payload: Uint8Array) =>
  Effect.flatMap(Broker, (broker) => broker.publish({ subject, payload, headers: [["X-Tag", "t"]], timeout }))

const encoded = <A>(exit: Exit.Exit<A, unknown>): A => {
  assert(Exit.isSuccess(exit), "expected the envelope to encode")
  return exit.value
}

const failureOf = <E>(exit: Exit.Exit<unknown, E>): E => {
  assert(Exit.isFailure(exit), "expected a failure")
  const reason = exit.cause.reasons[0]
  assert(reason?._tag === "Fail", "expected a typed failure")
  return reason.error
}

/** Runs a consumer stream in the test's scope; deliveries (or its failure) land in a queue. */
const collect = <A>(stream: Stream.Stream<A, NatsError | Topology.TopologyError, Broker>) =>
  Effect.gen(function* () {
    const received = yield* Queue.unbounded<A, NatsError | Topology.TopologyError>()
    yield* stream.pipe(
      Stream.runForEach((delivery) => Queue.offer(received, delivery)),
      Effect.catchCause((cause) => Queue.failCause(received, cause)),
      Effect.forkScoped
    )
    return received
  })

const next = <A, E>(received: Queue.Queue<A, E>) => Queue.take(received).pipe(Effect.timeout("10 seconds"))

const ackPending = (stream: string, name: string) =>
  Effect.flatMap(Broker, (broker) => broker.consumerInfo(stream, name)).pipe(
    Effect.flatMap(Effect.fromOption),
    Effect.map((info) => info.state.numAckPending)
  )

describe("Consumer", () => {
  layer(Env, { excludeTestServices: true })("over a real nats-server", (it) => {
    it.effect("provisions the consumer and hands out deliveries with their position, bytes and typed envelope", () =>
      Effect.gen(function* () {
        yield* streamFor("placed")
        const subject = "evt.placed.created.v1"
        const Placed = Event.make(subject, OrderPlaced.payload)
        const good = encoded(Placed.encode(envelopeOf(subject, { orderId: "o-1", total: 12.5 })))
        const before = yield* Clock.currentTimeMillis
        yield* publish(subject, good)
        yield* publish(subject, bytes("not json"))

        const spec = { stream: "PLACED", name: "placed-reader", ackWait: "10 seconds" } as const
        const received = yield* collect(Consumer.stream(spec, { decode: Placed, prefetch: 8 }))
        const first = yield* next(received)
        const info = yield* Effect.flatMap(Broker, (broker) => broker.consumerInfo("PLACED", "placed-reader")).pipe(
          Effect.flatMap(Effect.fromOption)
        )
        expect(Duration.toMillis(info.config.ackWait)).toBe(10_000)

        expect(first.stream).toBe("PLACED")
        expect(first.consumer).toBe("placed-reader")
        expect(first.subject).toBe(subject)
        expect(first.streamSeq).toBe(1)
        expect(first.consumerSeq).toBe(1)
        expect(first.deliveryCount).toBe(1)
        expect(first.pending).toBe(1)
        expect([...first.payload]).toStrictEqual([...good])
        expect(first.headers).toStrictEqual([["X-Tag", "t"]])
        expect(DateTime.toEpochMillis(first.timestamp)).toBeGreaterThanOrEqual(before - 1000)
        assert(Exit.isSuccess(first.decoded))
        const placed: { readonly orderId: string; readonly total: number } = first.decoded.value.data
        expect(placed).toStrictEqual({ orderId: "o-1", total: 12.5 })
        expect(first.decoded.value.eventType).toBe(subject)
        expect(first.decoded).toBe(first.decoded)

        const garbage = yield* next(received)
        const error = failureOf(garbage.decoded)
        expect(error.stage).toBe("Json")
        expect([...error.raw]).toStrictEqual([...bytes("not json")])
        expect(error.subject).toBe(subject)
        expect(garbage.pending).toBe(0)

        yield* first.ack
        yield* garbage.ack
        yield* eventually(Effect.filterOrFail(ackPending("PLACED", "placed-reader"), (n) => n === 0))
      })
    )

    it.effect("without an event, decodes the envelope and leaves the payload as JSON", () =>
      Effect.gen(function* () {
        yield* streamFor("raw")
        const subject = "evt.raw.thing.v1"
        const Thing = Event.make(subject, Schema.Struct({ n: Schema.Number }))
        yield* publish(subject, encoded(Thing.encode(envelopeOf(subject, { n: 1 }))))
        yield* publish(subject, bytes('{"event_id": "only this"}'))
        const received = yield* collect(Consumer.stream({ stream: "RAW", name: "raw-reader" }))
        const good = yield* next(received)
        assert(Exit.isSuccess(good.decoded))
        const data: unknown = good.decoded.value.data
        expect(data).toStrictEqual({ n: 1 })
        const partial = yield* next(received)
        const error = failureOf(partial.decoded)
        expect(error.stage).toBe("Envelope")
        expect(error.eventId).toBe("only this")
        yield* good.ack
        yield* partial.ack
      })
    )

    it.effect("with a group, decodes each message by the event of its subject", () =>
      Effect.gen(function* () {
        yield* streamFor("orders")
        const placedBytes = encoded(OrderPlaced.encode(envelopeOf(OrderPlaced.subject, { orderId: "o-1", total: 3 })))
        const shippedBytes = encoded(OrderShipped.encode(envelopeOf(OrderShipped.subject, { orderId: "o-1" })))
        const wrongPayload = bytes(
          JSON.stringify({ ...JSON.parse(new TextDecoder().decode(placedBytes)), data: { orderId: 7, total: 1 } })
        )
        const cancelled = "evt.orders.cancelled.v1"
        yield* publish(OrderPlaced.subject, placedBytes)
        yield* publish(OrderShipped.subject, shippedBytes)
        yield* publish(OrderPlaced.subject, wrongPayload)
        yield* publish(cancelled, encoded(OrderShipped.encode(envelopeOf(cancelled, { orderId: "o-1" }))))
        const received = yield* collect(
          Consumer.stream({ stream: "ORDERS", name: "orders-reader" }, { decode: Orders })
        )

        const placed = yield* next(received)
        assert(Exit.isSuccess(placed.decoded))
        const decoded = placed.decoded.value
        assert(decoded.subject === "evt.orders.placed.v1")
        expect(decoded.envelope.data.total).toBe(3)

        const shipped = yield* next(received)
        assert(Exit.isSuccess(shipped.decoded))
        expect(shipped.decoded.value.subject).toBe("evt.orders.shipped.v1")
        expect(shipped.decoded.value.envelope.data).toStrictEqual({ orderId: "o-1" })

        const badPayload = failureOf((yield* next(received)).decoded)
        expect(badPayload.stage).toBe("Payload")
        expect(badPayload.path).toBe("data.orderId")

        const unknown = failureOf((yield* next(received)).decoded)
        expect(unknown.stage).toBe("Envelope")
        expect(unknown.subject).toBe("evt.orders.cancelled.v1")
      })
    )

    it.effect("ack, nak with a delay, term and working are Effects over the JetStream verbs", () =>
      Effect.gen(function* () {
        yield* streamFor("verbs")
        const subject = "evt.verbs.done.v1"
        yield* publish(subject, bytes("one"))
        yield* publish(subject, bytes("two"))
        const spec = { stream: "VERBS", name: "verbs-reader", ackWait: "1 second" } as const
        const received = yield* collect(Consumer.stream(spec))
        const one = yield* next(received)
        const two = yield* next(received)

        const nakedAt = yield* Clock.currentTimeMillis
        yield* one.nak("400 millis")
        const again = yield* next(received)
        expect((yield* Clock.currentTimeMillis) - nakedAt).toBeGreaterThanOrEqual(400)
        expect(again.streamSeq).toBe(one.streamSeq)
        expect(again.deliveryCount).toBe(2)
        yield* again.ack

        // `two` is kept past its one-second ack-wait by working, then terminated: it never comes back.
        for (let i = 0; i < 5; i++) {
          yield* two.working
          yield* Effect.sleep("300 millis")
        }
        yield* two.term("not wanted")
        yield* Effect.sleep("1500 millis")
        expect(yield* Queue.poll(received)).toStrictEqual(Option.none())
        expect(yield* ackPending("VERBS", "verbs-reader")).toBe(0)
      })
    )

    it.effect("provisioning updates a consumer that drifted, and refuses drift the server cannot apply", () =>
      Effect.gen(function* () {
        yield* streamFor("drift")
        const broker = yield* Broker
        yield* publish("evt.drift.x.v1", bytes("x"))
        const first = { stream: "DRIFT", name: "drifter", ackWait: "5 seconds" } as const
        const [delivery] = yield* Consumer.stream(first).pipe(Stream.take(1), Stream.runCollect)
        expect(delivery?.streamSeq).toBe(1)
        yield* publish("evt.drift.x.v1", bytes("y"))
        const [changed] = yield* Consumer.stream({ ...first, ackWait: "7 seconds" }).pipe(
          Stream.take(1),
          Stream.runCollect
        )
        expect(changed?.streamSeq).toBe(2)
        const info = yield* broker.consumerInfo("DRIFT", "drifter").pipe(Effect.flatMap(Effect.fromOption))
        expect(Duration.toMillis(info.config.ackWait)).toBe(7000)
        const refused = yield* Consumer.stream({ stream: "DRIFT", name: "drifter", deliverPolicy: "new" }).pipe(
          Stream.runDrain,
          Effect.flip
        )
        expect(refused._tag).toBe("TopologyError")
      })
    )

    it.effect("fails with StreamNotFound when the stream does not exist", () =>
      Effect.gen(function* () {
        const error = yield* Consumer.stream({ stream: "NOWHERE", name: "lost" }).pipe(Stream.runDrain, Effect.flip)
        assert(error._tag === "NatsError")
        expect(error.reason._tag).toBe("StreamNotFound")
      })
    )

    it.effect("fromMessage wraps the broker's deliveries with a decoder of choice", () =>
      Effect.gen(function* () {
        yield* streamFor("wrapped")
        const subject = "evt.wrapped.made.v1"
        const Made = Event.make(subject, Schema.Struct({ id: Schema.Number }))
        yield* publish(subject, encoded(Made.encode(envelopeOf(subject, { id: 5 }))))
        const broker = yield* Broker
        yield* Topology.provision(Topology.make({ consumers: [{ stream: "WRAPPED", name: "wrapper" }] }))
        const [message] = yield* broker
          .consume("WRAPPED", "wrapper", { maxMessages: 1 })
          .pipe(Stream.take(1), Stream.runCollect)
        assert(message !== undefined)
        const typed = Consumer.fromMessage(message, Consumer.decoderOf(Made))
        assert(Exit.isSuccess(typed.decoded))
        const id: number = typed.decoded.value.data.id
        expect(id).toBe(5)
        const plain = Consumer.fromMessage(message)
        assert(Exit.isSuccess(plain.decoded))
        expect(plain.decoded.value.data).toStrictEqual({ id: 5 })
        expect(plain.message).toBe(message)
        yield* plain.ack
        yield* eventually(Effect.filterOrFail(ackPending("WRAPPED", "wrapper"), (n) => n === 0))
      })
    )
  })
})

/**
 * A service with events and streams of its own (nothing GLAM): one layer for the stack, a subscriber on
 * top, and a handler that is safe under at-least-once delivery. It publishes an order, waits until the
 * order is charged, and prints what happened.
 *
 *   NATS_SERVERS=nats://127.0.0.1:4222 npx tsx examples/orders-service.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Event, Logging, Messaging, Publisher, Subscriber, Topology } from "@glam/messaging"
import { Console, Context, Effect, Layer, Ref, Schedule, Schema } from "effect"

const OrderPlaced = Event.make(
  "evt.orders.placed.v1",
  Schema.Struct({ order_id: Schema.String, amount: Schema.Number })
)

// The service's streams: ORDERS for its events, with ORDERS_DLQ on dlq.orders.> for their dead letters
// (30 days, 1 h duplicate window) and ORDERS_ADVISORIES for the server's max-deliveries advisories.
const orders: Topology.StreamSpec = { name: "ORDERS", subjects: ["evt.orders.>"], maxAge: "7 days" }
const topology = Topology.make({ streams: Topology.withDeadLetters(orders) })

/**
 * The payments the service made, by event id. In a real service: a table whose unique key is the
 * event id, written in the same transaction as the charge.
 */
class Payments extends Context.Service<
  Payments,
  {
    /** Charges once per event id; `false` when this event was charged already. */
    readonly charge: (eventId: string, orderId: string, amount: number) => Effect.Effect<boolean>
    readonly count: Effect.Effect<number>
  }
>()("examples/Payments") {
  static readonly layer = Layer.effect(
    Payments,
    Effect.map(Ref.make(new Map<string, string>()), (charged) =>
      Payments.of({
        charge: (eventId, orderId) =>
          Ref.modify(charged, (byEvent) =>
            byEvent.has(eventId) ? [false, byEvent] : [true, new Map(byEvent).set(eventId, orderId)]
          ),
        count: Effect.map(Ref.get(charged), (byEvent) => byEvent.size)
      })
    )
  )
}

// At-least-once: an event can come again (a crash before its ack, an ack lost in a failover), with
// the same event id every time. Keyed on it, the charge happens once however often the event comes.
const ChargeOrders = Subscriber.layer(OrderPlaced, {
  handler: (envelope) =>
    Effect.gen(function* () {
      const payments = yield* Payments
      const { order_id, amount } = envelope.data
      const charged = yield* payments.charge(envelope.eventId, order_id, amount)
      if (!charged) return yield* Effect.log(`event ${envelope.eventId} came again: ${order_id} is charged already`)
      yield* Effect.log(`charged ${amount} for ${order_id}`)
    })
})

// The connection (NATS_SERVERS, ...), the streams above provisioned, a publisher and the service name.
const MessagingLive = Messaging.layerNats({ topology, service: "orders-service" })

const program = Effect.gen(function* () {
  const publisher = yield* Publisher.Publisher
  const payments = yield* Payments
  const receipt = yield* publisher.publish(OrderPlaced, { order_id: "o-1001", amount: 42 })
  yield* Effect.flatMap(payments.count, (count) => (count > 0 ? Effect.void : Effect.fail("not charged yet"))).pipe(
    Effect.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 200 })))
  )
  yield* Console.log(`${receipt.subject} stored as ${receipt.stream}#${receipt.seq}, charged once`)
})

program.pipe(
  Effect.provide(ChargeOrders.pipe(Layer.provideMerge(Payments.layer), Layer.provideMerge(MessagingLive))),
  Effect.provide(Logging.layerConfig()),
  NodeRuntime.runMain
)

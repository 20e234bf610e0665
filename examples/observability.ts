/**
 * A service that operators can see: its spans, metrics and logs exported to an OpenTelemetry collector
 * (when `OTEL_EXPORTER_OTLP_ENDPOINT` is set), and `/metrics`, `/healthz`, `/readyz` served on
 * `ENDPOINTS_PORT` (default 9464). It publishes an order, handles it, then reads its own endpoints as a
 * probe and a Prometheus scrape would, and prints what they answered.
 *
 *   NATS_SERVERS=nats://127.0.0.1:4222 OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 \
 *     OTEL_SERVICE_NAME=orders-observed npx tsx examples/observability.ts
 */
import { NodeRuntime } from "@effect/platform-node"
import { Endpoints, Event, Logging, Messaging, Metrics, Otlp, Publisher, Subscriber, Topology } from "@glam/messaging"
import { Config, Console, Deferred, Effect, Layer, Schema } from "effect"

const OrderPlaced = Event.make(
  "evt.orders.placed.v1",
  Schema.Struct({ order_id: Schema.String, amount: Schema.Number })
)
const topology = Topology.make({
  streams: Topology.withDeadLetters({ name: "ORDERS", subjects: ["evt.orders.>"] })
})

// A handler in a `process evt.orders.placed.v1` span; its log line carries the span's trace id.
const handled = Deferred.makeUnsafe<void>()
const ChargeOrders = Subscriber.layer(OrderPlaced, {
  handler: (envelope) =>
    Effect.log(`charged ${envelope.data.amount} for ${envelope.data.order_id}`).pipe(
      Effect.andThen(Deferred.succeed(handled, undefined))
    )
})

// The endpoints on their own port, beside the service.
const endpointsPort = Config.Port("ENDPOINTS_PORT").pipe(Config.withDefault(Endpoints.defaultPort))
const EndpointsLive = Layer.unwrap(Effect.map(endpointsPort, (port) => Endpoints.layer({ port, host: "127.0.0.1" })))

const get = (port: number, path: string) =>
  Effect.promise(() =>
    fetch(`http://127.0.0.1:${port}${path}`).then(async (res) => [res.status, await res.text()] as const)
  )

const program = Effect.gen(function* () {
  const publisher = yield* Publisher.Publisher
  yield* publisher.publish(OrderPlaced, { order_id: "o-1001", amount: 42 })
  yield* Deferred.await(handled)
  const port = yield* endpointsPort
  const [ready] = yield* get(port, "/readyz")
  const [, metrics] = yield* get(port, "/metrics")
  const acked = metrics
    .split("\n")
    .find((line) => line.startsWith("messaging_client_consumed_messages") && line.includes('"acked"'))
  yield* Console.log(`/readyz answered ${ready}`)
  yield* Console.log(`/metrics: ${acked ?? "no consumed messages"}`)
})

// Metrics and Otlp around everything they observe (Otlp turns metrics on when it exports them, Metrics.layer
// for /metrics without a collector); Logging last, so that the OTLP logger joins the console one.
program.pipe(
  Effect.provide(
    Layer.mergeAll(ChargeOrders, EndpointsLive).pipe(
      Layer.provideMerge(Messaging.layerNats({ topology, service: "orders-observed" }))
    )
  ),
  Effect.provide(Metrics.layer),
  Effect.provide(Otlp.layerFromEnv),
  Effect.provide(Logging.layerConfig()),
  NodeRuntime.runMain
)

/**
 * The library's metrics, as Effect `Metric`s named by the OpenTelemetry messaging conventions where
 * they name one (`messaging.client.*`, `messaging.process.duration`) and under `messaging.glam.*` /
 * `messaging.nats.*` where they do not.
 *
 * They are recorded only where `Metrics.layer` (or `Metrics.Enabled` set to `true`) is provided: the
 * publisher and each subscriber read the switch once, when they are made, so that without it no
 * message pays for a metric. Once on, they land in Effect's `Metric.MetricRegistry`, which the OTLP
 * exporter and the Prometheus endpoint read.
 *
 * Labels are bounded: system, subject, durable, outcome, error type, stream; never an id.
 *
 * | metric | kind | labels |
 * | --- | --- | --- |
 * | `messaging.client.sent.messages` | counter | system, subject, operation, `error.type` on failure |
 * | `messaging.client.operation.duration` | histogram, seconds | the same |
 * | `messaging.client.consumed.messages` | counter | system, subject, durable, outcome |
 * | `messaging.process.duration` | histogram, seconds | system, subject, durable, outcome |
 * | `messaging.glam.handlers.in_flight` | gauge | durable |
 * | `messaging.glam.pull.window` | gauge | durable |
 * | `messaging.glam.dead_letters.written` | counter | stream, decision |
 * | `messaging.glam.publish.retries` | counter | subject |
 * | `messaging.nats.reconnects` | counter | |
 * | `messaging.nats.consumer.pending`, `.ack_pending`, `.redelivered`, `.waiting` | gauge | stream, durable |
 *
 * @since 0.1.0
 */
import { Context, Layer, Metric } from "effect"
import * as Series from "./internal/metricSeries.js"

/**
 * Whether the library records its metrics. Default `false`: nothing is recorded and nothing is paid.
 *
 * @category services
 * @since 0.1.0
 */
export const Enabled: Context.Reference<boolean> = Context.Reference<boolean>("@glam/messaging/Metrics/Enabled", {
  defaultValue: () => false
})

/**
 * Turns the library's metrics on for what is built on top of it.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer: Layer.Layer<never> = Layer.succeed(Enabled, true)

/**
 * What became of a consumed message, the `messaging.glam.outcome` label of `consumedMessages` and
 * `processDuration`: acknowledged after its handler succeeded; failed and tried again in process;
 * given back for redelivery (a nak); terminated by the policy; dead-lettered; not decodable (and
 * dead-lettered); acknowledged without handling, as the policy said.
 *
 * @category models
 * @since 0.1.0
 */
export type Outcome = "acked" | "retried" | "redelivered" | "termed" | "dead_lettered" | "decode_failure" | "dropped"

/**
 * Messages published, by subject; a failed publish carries `error.type`.
 *
 * @category metrics
 * @since 0.1.0
 */
export const sentMessages = Series.sentMessages()

/**
 * How long a publish took until the server's acknowledgement (or the failure), in seconds.
 *
 * @category metrics
 * @since 0.1.0
 */
export const operationDuration = Series.operationDuration()

/**
 * Messages a subscriber received, by subject, durable and outcome.
 *
 * @category metrics
 * @since 0.1.0
 */
export const consumedMessages = Series.consumedMessages()

/**
 * How long a handler ran for one delivery, in seconds, by subject, durable and outcome.
 *
 * @category metrics
 * @since 0.1.0
 */
export const processDuration = Series.processDuration()

/**
 * Handlers running now, per durable.
 *
 * @category metrics
 * @since 0.1.0
 */
export const handlersInFlight = Metric.gauge("messaging.glam.handlers.in_flight", {
  description: "Handlers running now, per subscriber"
})

/**
 * The messages a subscriber may hold now: its `prefetch`, 1 while a crash is suspected, and on the way
 * back between them.
 *
 * @category metrics
 * @since 0.1.0
 */
export const pullWindow = Metric.gauge("messaging.glam.pull.window", {
  description: "Messages a subscriber may hold now (its prefetch; 1 while a crash is suspected)"
})

/**
 * Dead letters written (acknowledged by the dead-letter stream), by original stream and decision.
 *
 * @category metrics
 * @since 0.1.0
 */
export const deadLettersWritten = Metric.counter("messaging.glam.dead_letters.written", {
  description: "Dead letters written, by original stream and decision",
  incremental: true
})

/**
 * Publish attempts made again after a retryable failure, by subject.
 *
 * @category metrics
 * @since 0.1.0
 */
export const publishRetries = Series.publishRetries()

/**
 * Times the NATS connection was re-established.
 *
 * @category metrics
 * @since 0.1.0
 */
export const reconnects = Metric.counter("messaging.nats.reconnects", {
  description: "Reconnections of the NATS connection",
  incremental: true
})

/**
 * Messages in the stream the durable has not been given yet.
 *
 * @category metrics
 * @since 0.1.0
 */
export const consumerPending = Metric.gauge("messaging.nats.consumer.pending", {
  description: "Messages matching the consumer not yet delivered to it (sampled)"
})

/**
 * Deliveries given out and not yet settled.
 *
 * @category metrics
 * @since 0.1.0
 */
export const consumerAckPending = Metric.gauge("messaging.nats.consumer.ack_pending", {
  description: "Deliveries outstanding, not yet acknowledged (sampled)"
})

/**
 * Deliveries given out again and not yet settled.
 *
 * @category metrics
 * @since 0.1.0
 */
export const consumerRedelivered = Metric.gauge("messaging.nats.consumer.redelivered", {
  description: "Redelivered messages not yet acknowledged (sampled)"
})

/**
 * Pull requests waiting at the server.
 *
 * @category metrics
 * @since 0.1.0
 */
export const consumerWaiting = Metric.gauge("messaging.nats.consumer.waiting", {
  description: "Pull requests waiting at the server (sampled)"
})

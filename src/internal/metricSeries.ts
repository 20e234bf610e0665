/**
 * The metrics recorded per message (and per publish retry), as constructors of one `Metric` instance per series (its attributes
 * fixed when it is made). Effect derives a series' registry key (a JSON string) from the attributes of
 * the instance and of the context, and remembers it for the last attribute set each instance saw: one
 * instance updated for several series (two subscribers, two subjects, an ack then a retry) builds the
 * key again on every switch. One instance per series, updated from one context, builds it once.
 *
 * `Metrics` exports each without attributes, for reading and for the documentation.
 */
import { Metric } from "effect"

/** Seconds, the OpenTelemetry messaging conventions' buckets for durations. */
const durationBoundaries: ReadonlyArray<number> = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10
]

type Attributes = Record<string, string> | undefined

export const sentMessages = (attributes?: Attributes) =>
  Metric.counter("messaging.client.sent.messages", {
    description: "Messages a producer attempted to send, by destination; failures carry error.type",
    incremental: true,
    attributes
  })

export const operationDuration = (attributes?: Attributes) =>
  Metric.histogram("messaging.client.operation.duration", {
    description: "Duration of a publish until acknowledged or failed, in seconds",
    boundaries: durationBoundaries,
    attributes
  })

export const consumedMessages = (attributes?: Attributes) =>
  Metric.counter("messaging.client.consumed.messages", {
    description: "Messages delivered to a subscriber, by destination, consumer group and outcome",
    incremental: true,
    attributes
  })

export const processDuration = (attributes?: Attributes) =>
  Metric.histogram("messaging.process.duration", {
    description: "Duration of a handler's run for one delivery, in seconds",
    boundaries: durationBoundaries,
    attributes
  })

export const publishRetries = (attributes?: Attributes) =>
  Metric.counter("messaging.glam.publish.retries", {
    description: "Publishes tried again after a retryable failure, by destination",
    incremental: true,
    attributes
  })

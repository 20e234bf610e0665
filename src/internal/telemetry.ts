/**
 * What the publisher and the subscribers record about each message when something is watching: the
 * producer and consumer span attributes of the OpenTelemetry messaging conventions, and the
 * `Metrics` series, each attribute set built once and kept (labels are bounded, so is the cache).
 *
 * Nothing here runs unless a tracer records spans (`tracing.ts`) or `Metrics.Enabled` is on: the
 * publisher and the subscriber ask both once, when they are made, and pass `undefined` otherwise.
 */
import { type Cause, Clock, Context, Effect, type Exit, type Fiber, Metric, type Tracer } from "effect"
import type { ConsumerInfo, Message, ServerAddress } from "../Broker.js"
import * as Metrics from "../Metrics.js"
import * as MetricSeries from "./metricSeries.js"

/** The span name and attributes of one publish (`send <subject>`, kind producer). */
export const producerSpan = (system: string, server: ServerAddress | undefined, subject: string, eventId: string) => ({
  name: `send ${subject}`,
  attributes: {
    "messaging.system": system,
    "messaging.operation.name": "send",
    "messaging.operation.type": "send",
    "messaging.destination.name": subject,
    "messaging.message.id": eventId,
    ...serverAttributes(server)
  }
})

const serverAttributes = (server: ServerAddress | undefined) =>
  server === undefined ? {} : { "server.address": server.address, "server.port": server.port }

/**
 * One publish in its producer span, made only when a tracer exports it: the attributes above, then where
 * it was stored (`messaging.nats.stream`, `.sequence`) or why not (`error.type`).
 */
export const withProducerSpan = <A extends { readonly stream: string; readonly seq: number }, E>(
  broker: { readonly system: string; readonly server: () => ServerAddress | undefined },
  subject: string,
  eventId: string,
  effect: Effect.Effect<A, E>
): Effect.Effect<A, E> => {
  const { name, attributes } = producerSpan(broker.system, broker.server(), subject, eventId)
  return Effect.withSpan(
    effect.pipe(
      Effect.tap((stored) =>
        Effect.annotateCurrentSpan({ "messaging.nats.stream": stored.stream, "messaging.nats.sequence": stored.seq })
      ),
      Effect.tapError((error) => Effect.annotateCurrentSpan("error.type", tagOf(error)))
    ),
    name,
    // The same call site for every publish: a stack trace per span would tell nothing.
    { kind: "producer", attributes, captureStackTrace: false }
  )
}

/** Records the envelope's size and correlation id on a publish's producer span, when it runs in one. */
export const sent = (span: Tracer.AnySpan | undefined, bytes: number, correlationId: string | undefined) => {
  if (span?._tag !== "Span" || span.kind !== "producer") return
  span.attribute("messaging.message.body.size", bytes)
  if (correlationId !== undefined) span.attribute("messaging.message.conversation_id", correlationId)
}

/** The span name and attributes of one handled delivery (`process <subject>`, kind consumer). */
export const consumerSpan = (
  system: string,
  server: ServerAddress | undefined,
  durable: string,
  message: Message,
  eventId: string,
  correlationId: string
) => ({
  name: `process ${message.subject}`,
  attributes: {
    "messaging.system": system,
    "messaging.operation.name": "process",
    "messaging.operation.type": "process",
    "messaging.destination.name": message.subject,
    "messaging.consumer.group.name": durable,
    "messaging.message.id": eventId,
    "messaging.message.conversation_id": correlationId,
    "messaging.message.body.size": message.payload.length,
    "messaging.nats.stream": message.stream,
    "messaging.nats.sequence": message.streamSeq,
    "messaging.nats.delivery_count": message.deliveryCount,
    ...serverAttributes(server)
  }
})

/** How a delivery was settled, as the consumer span records it in `messaging.nats.settlement`. */
export type Settlement = "ack" | "nak" | "term" | "dead_letter"

const settlementOf: Record<Metrics.Outcome, Settlement> = {
  acked: "ack",
  retried: "ack",
  dropped: "ack",
  redelivered: "nak",
  termed: "term",
  dead_lettered: "dead_letter",
  decode_failure: "dead_letter"
}

/** The fiber's own span, when it is one this process records (not a remote parent). */
export const ownSpan = (fiber: Fiber.Fiber<unknown, unknown>): Tracer.Span | undefined => {
  const span = fiber.cache.span
  return span?._tag === "Span" ? span : undefined
}

/** Series made once per key, by `make` (one `Metric` instance each: see `metricSeries`). */
class Series<A> {
  private readonly made = new Map<string, A>()
  constructor(private readonly make: (attributes: Record<string, string>) => A) {}
  of(key: string, attributes: () => Record<string, string>): A {
    let series = this.made.get(key)
    if (series === undefined) {
      series = this.make(attributes())
      this.made.set(key, series)
    }
    return series
  }
}

const secondsSince = (fiber: Fiber.Fiber<unknown, unknown>, startNanos: bigint): number =>
  Number(fiber.getRef(Clock.Clock).monotonicTimeNanosUnsafe() - startNanos) / 1e9

/**
 * Now on the fiber's monotonic clock, in nanoseconds: the start of a measured duration. Monotonic, not
 * wall time: a duration does not jump with the system clock, and the live clock reads it in one call
 * (wall-clock nanoseconds read both clocks and reconcile them: a tenth of the metrics' cost per message).
 */
export const nanosNow = (fiber: Fiber.Fiber<unknown, unknown>): bigint =>
  fiber.getRef(Clock.Clock).monotonicTimeNanosUnsafe()

/** A publisher's metrics: sent messages and operation duration, by subject and outcome; retries. */
export class PublishMetrics {
  private readonly sent = new Series(MetricSeries.sentMessages)
  private readonly duration = new Series(MetricSeries.operationDuration)
  private readonly retries = new Series(MetricSeries.publishRetries)
  constructor(private readonly system: string) {}

  private attributes(subject: string, errorType: string | undefined): () => Record<string, string> {
    return () => ({
      "messaging.system": this.system,
      "messaging.destination.name": subject,
      "messaging.operation.name": "send",
      ...(errorType === undefined ? {} : { "error.type": errorType })
    })
  }

  /** `effect`, one publish to `subject`, counted and timed when it ends. */
  measure<A, E>(subject: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> {
    return Effect.withFiber((fiber) => {
      const start = nanosNow(fiber)
      return Effect.onExit(effect, (exit) => Effect.sync(() => this.ended(fiber, subject, start, exit)))
    })
  }

  /** One publish ended: counted, and its duration since `startNanos` observed. */
  ended(fiber: Fiber.Fiber<unknown, unknown>, subject: string, startNanos: bigint, exit: Exit.Exit<unknown, unknown>) {
    const errorType = exit._tag === "Success" ? undefined : errorTypeOf(exit.cause)
    const key = errorType === undefined ? subject : `${subject}\u0000${errorType}`
    const attributes = this.attributes(subject, errorType)
    this.sent.of(key, attributes).updateUnsafe(1, fiber.context)
    this.duration.of(key, attributes).updateUnsafe(secondsSince(fiber, startNanos), fiber.context)
  }

  /** `effect`, a publish to `subject` tried again after a retryable failure, counted as a retry. */
  retry<A, E>(subject: string, effect: Effect.Effect<A, E>): Effect.Effect<A, E> {
    return Effect.withFiber((fiber) => {
      this.retries.of(subject, () => ({ "messaging.destination.name": subject })).updateUnsafe(1, fiber.context)
      return effect
    })
  }
}

const withAttributes = (
  context: Context.Context<never>,
  attributes: Record<string, string>
): Context.Context<never> => {
  const inherited = Context.get(context, Metric.CurrentMetricAttributes)
  return Context.add(context, Metric.CurrentMetricAttributes, { ...inherited, ...attributes })
}

/** A gauge of one subscriber (labelled with its durable) whose value `get` gives when it is read, until removed. */
export const subscriberGauge = (
  metric: Metric.Metric<number, Metric.GaugeState<number>>,
  durable: string,
  context: Context.Context<never>,
  get: () => number
): Metric.Registration =>
  Metric.registerUnsafe(metric, withAttributes(context, { "messaging.consumer.group.name": durable }), {
    get: () => ({ value: get() }),
    update: () => {},
    modify: () => {}
  })

/** One series of a subscriber: its deliveries and their handling time, for one subject and outcome. */
interface ConsumeSeries {
  readonly consumed: Metric.Counter<number>
  readonly duration: Metric.Histogram<number>
}

/**
 * A subscriber's metrics: deliveries by outcome, handling duration, handlers in flight. Each series is
 * its own `Metric` instance, updated from one context made when the subscriber starts: the series key is
 * built once, where `Metric.withAttributes` would merge the attributes into a new context and build the
 * key again on every update.
 */
export class ConsumeMetrics {
  private readonly series = new Map<string, Map<Metrics.Outcome, ConsumeSeries>>()
  private readonly started = new Map<Message, bigint>()
  private running = 0
  private readonly registration: Metric.Registration
  constructor(
    private readonly system: string,
    private readonly durable: string,
    private readonly clock: Clock.Clock,
    private readonly context: Context.Context<never>
  ) {
    // Read when exported, not pushed twice per message.
    this.registration = subscriberGauge(Metrics.handlersInFlight, durable, context, () => this.running)
  }

  private seriesOf(subject: string, outcome: Metrics.Outcome): ConsumeSeries {
    let bySubject = this.series.get(subject)
    if (bySubject === undefined) {
      bySubject = new Map()
      this.series.set(subject, bySubject)
    }
    let series = bySubject.get(outcome)
    if (series === undefined) {
      const attributes = {
        "messaging.system": this.system,
        "messaging.destination.name": subject,
        "messaging.consumer.group.name": this.durable,
        "messaging.glam.outcome": outcome
      }
      series = {
        consumed: MetricSeries.consumedMessages(attributes),
        duration: MetricSeries.processDuration(attributes)
      }
      bySubject.set(outcome, series)
    }
    return series
  }

  /** A delivery's handling begins. */
  began(message: Message): void {
    this.started.set(message, this.clock.monotonicTimeNanosUnsafe())
    this.running++
  }

  /** A delivery was settled with `outcome`: counted, and the time since it began observed. */
  settled(message: Message, outcome: Metrics.Outcome): void {
    const series = this.seriesOf(message.subject, outcome)
    series.consumed.updateUnsafe(1, this.context)
    const start = this.started.get(message)
    if (start === undefined) return
    this.started.delete(message)
    this.running--
    series.duration.updateUnsafe(Number(this.clock.monotonicTimeNanosUnsafe() - start) / 1e9, this.context)
  }

  /** The subscriber stopped: its in-flight series leaves the registry. */
  close(): void {
    this.registration.remove()
  }
}

/** Records a delivery's settlement on the consumer span the fiber runs in. */
export const recordSettlement = (
  span: Tracer.Span,
  outcome: Metrics.Outcome,
  errorType: string | undefined,
  nakDelayMillis: number | undefined
) => {
  span.attribute("messaging.nats.settlement", settlementOf[outcome])
  span.attribute("messaging.glam.outcome", outcome)
  if (errorType !== undefined) span.attribute("error.type", errorType)
  if (nakDelayMillis !== undefined) span.attribute("messaging.nats.nak_delay_ms", nakDelayMillis)
}

/** The `error.type` of a failed publish: the reason of a `NatsError`, or the error's tag. */
const errorTypeOf = (cause: Cause.Cause<unknown>): string => {
  for (const reason of cause.reasons) {
    if (reason._tag === "Fail") return tagOf(reason.error)
    if (reason._tag === "Die") return "defect"
  }
  return "interrupted"
}

/** `NatsError` → its reason's tag (`Timeout`, `StreamNotFound`, ...); any tagged error → its tag. */
export const tagOf = (error: unknown): string => {
  if (typeof error !== "object" || error === null) return "_OTHER"
  if ("reason" in error && typeof error.reason === "object" && error.reason !== null && "_tag" in error.reason) {
    return String(error.reason._tag)
  }
  return "_tag" in error ? String(error._tag) : "_OTHER"
}

/** Sets a durable's lag gauges from a look-up of its consumer (the subscriber's check, every few seconds). */
export const sampleLag = (stream: string, durable: string) => {
  const attributes = { "messaging.nats.stream": stream, "messaging.consumer.group.name": durable }
  const pending = Metric.withAttributes(Metrics.consumerPending, attributes)
  const ackPending = Metric.withAttributes(Metrics.consumerAckPending, attributes)
  const redelivered = Metric.withAttributes(Metrics.consumerRedelivered, attributes)
  const waiting = Metric.withAttributes(Metrics.consumerWaiting, attributes)
  return (info: ConsumerInfo): Effect.Effect<void> =>
    Effect.withFiber((fiber) => {
      pending.updateUnsafe(info.state.numPending, fiber.context)
      ackPending.updateUnsafe(info.state.numAckPending, fiber.context)
      redelivered.updateUnsafe(info.state.numRedelivered, fiber.context)
      waiting.updateUnsafe(info.state.numWaiting, fiber.context)
      return Effect.void
    })
}

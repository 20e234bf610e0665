/**
 * Publishing typed events.
 *
 * `publish(event, payload)` checks the payload against its event's schema before any bytes leave,
 * wraps it in the GLAM envelope (event id, correlation id, source service, timestamp), sends it with
 * `Nats-Msg-Id` set to the event id and returns the server's receipt. Transient failures (timeouts,
 * no responders, a connection being re-established) are retried on a `Schedule` with the same
 * message id, so a retry can never store a second copy, for up to `defaults.retryBudget` in all.
 *
 * An outage is logged as one, not attempt by attempt: one WARN when publishes start failing (the subject
 * and the reason), a summary at most every 10 s while they keep failing, one INFO when a publish
 * succeeds again (how long it lasted, how many attempts and publishes were retried, how many gave up).
 * A publish that gives up is an ERROR line (a burst of them summed up in a second); each failed attempt DEBUG.
 *
 * A `send <subject>` span (kind producer, OpenTelemetry messaging attributes) is made only when a
 * tracer that records spans is installed; without one, the trace context of the caller's span, if any,
 * still travels in the headers. With `Metrics.layer`, each publish is counted and timed (`Metrics`).
 *
 * The publisher depends on `Broker` only: it runs unchanged on NATS and on the in-memory broker.
 *
 * @since 0.1.0
 */
import {
  Clock,
  Config,
  Context,
  type DateTime,
  Duration,
  Effect,
  Exit,
  type Fiber,
  Layer,
  Schedule,
  Schema,
  type Tracer
} from "effect"
import { Broker, type PublishAck, type PublishRequest } from "./Broker.js"
import * as Envelope from "./Envelope.js"
import type * as Event from "./Event.js"
import { withOverrides } from "./internal/overrides.js"
import * as PublishBatch from "./internal/publisher/batch.js"
import * as PublishOutages from "./internal/publisher/outages.js"
import { correlationOf, Timestamps } from "./internal/publisher/stamps.js"
import * as Telemetry from "./internal/telemetry.js"
import { headersWithTrace, isTracingIn } from "./internal/tracing.js"
import * as Metrics from "./Metrics.js"
import { NatsError } from "./NatsError.js"
import { ServiceIdentity } from "./ServiceIdentity.js"

/**
 * Per-publish options.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishOptions {
  /** The event id, also the `Nats-Msg-Id`: give the same id to make a publish idempotent. Default: a new UUID. */
  readonly eventId?: string | undefined
  /** Default: the correlation id of the message being handled, else a new UUID. */
  readonly correlationId?: string | undefined
  /** Extra NATS headers. */
  readonly headers?: Readonly<Record<string, string>> | undefined
  /** Fail with `WrongLastSequence` unless the stream's last sequence is this (optimistic concurrency). */
  readonly expectedLastSequence?: number | undefined
  /** How long to wait for the server's acknowledgement of one attempt. Default: the publisher's `timeout`. */
  readonly timeout?: Duration.Input | undefined
}

/**
 * What the server acknowledged.
 *
 * @category models
 * @since 0.1.0
 */
export interface Receipt {
  readonly eventId: string
  readonly subject: string
  readonly stream: string
  readonly seq: number
  /** The event id was already stored within the stream's duplicate window: nothing new was stored. */
  readonly duplicate: boolean
}

const ReceiptSchema: Schema.Codec<Receipt> = Schema.Struct({
  eventId: Schema.String,
  subject: Schema.String,
  stream: Schema.String,
  seq: Schema.Number,
  duplicate: Schema.Boolean
})

/**
 * One item of `publishAll`.
 *
 * @category models
 * @since 0.1.0
 */
export type PublishItem<E extends Event.Any = Event.Any> = E extends Event.Any
  ? { readonly event: E; readonly payload: Event.Payload<E>; readonly options?: PublishOptions | undefined }
  : never

/**
 * Why a publish failed: the payload did not match its schema, or the broker failed.
 *
 * @category errors
 * @since 0.1.0
 */
export type PublishError = Envelope.EncodeError | NatsError

/**
 * Why `publishAll` did not publish every item, and what became of each. Publishing the `remaining`
 * items again under the event ids given here (`remainingItems`) within the streams' duplicate window
 * (2 minutes by default) completes the batch and stores none twice, even one whose ack was lost.
 *
 * - `cause` is an `EncodeError`: the payload of item `index` does not match its schema. Every item is
 *   checked before any is sent, so nothing was: `stored` is empty and every item is `remaining`.
 * - `cause` is a `NatsError`: the broker failed item `index`, after the publisher's retries. No item was
 *   started after it and the ones in flight were let finish: `stored` has the receipts of the items
 *   acknowledged, `remaining` the others.
 *
 * @category errors
 * @since 0.2.0
 */
export class PublishAllError extends Schema.TaggedError<PublishAllError>()("PublishAllError", {
  /** The position in the input of the item whose failure stopped the batch. */
  index: Schema.Number,
  cause: Schema.Union([Envelope.EncodeError, NatsError]),
  /** The items stored, in input order, with their receipts. */
  stored: Schema.Array(Schema.Struct({ index: Schema.Number, receipt: ReceiptSchema })),
  /** The items not acknowledged, in input order, with the event id each was or was to be sent under. */
  remaining: Schema.Array(Schema.Struct({ index: Schema.Number, eventId: Schema.String }))
}) {
  override get message(): string {
    return `publishAll: item ${this.index}: ${this.cause.message} (${this.stored.length} stored, ${this.remaining.length} not)`
  }
}

/**
 * The items of `items`, the input of a `publishAll` that failed with `error`, still to publish: the
 * remaining ones, each with the event id it was given. Fix an invalid item in `items` first.
 *
 * @category combinators
 * @since 0.2.0
 */
export const remainingItems = <E extends Event.Any>(
  items: ReadonlyArray<PublishItem<E>>,
  error: PublishAllError
): Array<PublishItem<E>> =>
  error.remaining.flatMap(({ index, eventId }) => {
    const item = items[index]
    return item === undefined ? [] : [{ ...item, options: { ...item.options, eventId } }]
  })

/**
 * The publisher's defaults, in one place: what `make`, `layer` and `layerConfig` use when nothing else is
 * given, and what `defaultRetry` is made of.
 *
 * - `timeout` (2 s): how long one attempt waits for its acknowledgement. A stream leader killed on a
 *   cluster leaves the publishes in flight unanswered; each waits this long before it is retried on
 *   the new leader, so it is short.
 * - `retryBudget` (90 s): how long a publish keeps being retried in all. A cluster that lost its quorum
 *   answered "temporarily unavailable" for ~57 s, so the budget is longer than that.
 *
 * The budget, plus one `timeout` and one wait of the schedule (at most 2 s), must stay below the
 * duplicate window of the streams published to (2 minutes by default): past it, the server forgets a
 * `Nats-Msg-Id`, and a retry of a publish whose acknowledgement was lost stores a second copy.
 *
 * @category constructors
 * @since 0.2.0
 */
export const defaults: {
  readonly timeout: Duration.Duration
  readonly retryBudget: Duration.Duration
} = Object.freeze({
  timeout: Duration.seconds(2),
  retryBudget: Duration.seconds(90)
})

/**
 * Publisher configuration.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options {
  /** Per-attempt acknowledgement timeout. Default `defaults.timeout` (2 seconds). */
  readonly timeout?: Duration.Input | undefined
  /**
   * How long the default schedule keeps retrying a publish, in all; ignored when `retry` is given.
   * Default `defaults.retryBudget` (90 seconds). Keep it, plus `timeout` and 2 s, below the duplicate
   * window of the streams published to, or a late retry can store a second copy (see `defaults`).
   */
  readonly retryBudget?: Duration.Input | undefined
  /** When to try a retryable failure again. Default: `retryWithin(retryBudget)`. */
  readonly retry?: Schedule.Schedule<unknown, NatsError> | undefined
}

/**
 * The retry for transient failures: exponential from 100 ms (jittered), each wait at most 2 s, for up
 * to `budget` in all — long enough to ride out a server restart, a leader election or, with the
 * default budget, a lost quorum. Keep `budget` below the streams' duplicate window (see `defaults`).
 *
 * @category constructors
 * @since 0.2.0
 */
export const retryWithin = (budget: Duration.Input): Schedule.Schedule<unknown, NatsError> =>
  Schedule.min([Schedule.exponential("100 millis", 2).pipe(Schedule.jittered), Schedule.spaced("2 seconds")]).pipe(
    Schedule.upTo({ duration: budget })
  )

/**
 * The default retry: `retryWithin(defaults.retryBudget)`, 90 seconds in all.
 *
 * @category constructors
 * @since 0.1.0
 */
export const defaultRetry: Schedule.Schedule<unknown, NatsError> = retryWithin(defaults.retryBudget)

/**
 * @category services
 * @since 0.1.0
 */
export class Publisher extends Context.Service<
  Publisher,
  {
    readonly publish: <E extends Event.Any>(
      event: E,
      payload: Event.Payload<E>,
      options?: PublishOptions
    ) => Effect.Effect<Receipt, PublishError>
    /**
     * Checks every payload and fixes every event id (`options.eventId`, else a new UUID), then sends with
     * up to `concurrency` publishes in flight (default 256); receipts come back in input order. A failure
     * is a `PublishAllError`: an invalid item before anything was sent, or a broker failure with the
     * receipts of what was stored and the event ids of the rest.
     */
    readonly publishAll: <E extends Event.Any>(
      items: Iterable<PublishItem<E>>,
      options?: { readonly concurrency?: number | undefined }
    ) => Effect.Effect<ReadonlyArray<Receipt>, PublishAllError>
  }
>()("@glam/messaging/Publisher") {}

/**
 * The outages of a publisher, as its log tells them: one WARN when publishes start failing, a summary
 * at most every 10 s while they keep failing, one INFO when a publish succeeds again; a publish that
 * gives up is an ERROR, and a burst of them one more ERROR that counts the rest. `Publisher.make` keeps
 * one per publisher; give one to `retryTransient` to share it between publishes made by other means.
 *
 * @category models
 * @since 0.2.0
 */
export type OutageLog = PublishOutages.OutageLog

/**
 * An outage log of its own, for publishes that do not go through a `Publisher` (see `retryTransient`).
 *
 * @category constructors
 * @since 0.2.0
 */
export const makeOutageLog: Effect.Effect<OutageLog> = Effect.sync(() => new PublishOutages.Outages())

/**
 * Retries a broker publish to `subject` on `schedule` while its failure is retryable. How it goes is
 * told by `outages` (see `OutageLog`); without one, by an outage log of this publish alone: a WARN at
 * its first failure, an INFO when it succeeds, a summary every 10 s in between, an ERROR if it gives up.
 * Safe only for publishes that carry a message id, as every publish of this library does.
 *
 * @category combinators
 * @since 0.1.0
 */
export const retryTransient =
  (subject: string, schedule: Schedule.Schedule<unknown, NatsError>, outages?: OutageLog) =>
  <A, R>(publish: Effect.Effect<A, NatsError, R>): Effect.Effect<A, NatsError, R> =>
    outages === undefined
      ? Effect.suspend(() => new PublishOutages.Outages().retry(subject, schedule)(publish))
      : outages.retry(subject, schedule)(publish)

const receiptOf = (eventId: string, subject: string, ack: PublishAck): Effect.Effect<Receipt> => {
  const receipt = { eventId, subject, stream: ack.stream, seq: ack.seq, duplicate: ack.duplicate }
  return ack.duplicate
    ? Effect.as(Effect.logDebug(`event ${eventId} was already stored as ${ack.stream}#${ack.seq}`), receipt)
    : Effect.succeed(receipt)
}

/**
 * Builds a publisher over the current `Broker`, stamping envelopes with the current `ServiceIdentity`.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = Effect.fnUntraced(function* (options: Options = {}) {
  const broker = yield* Broker
  const sourceService = (yield* ServiceIdentity).name
  const defaultTimeout = Duration.fromInputUnsafe(options.timeout ?? defaults.timeout)
  const retry = options.retry ?? (options.retryBudget === undefined ? defaultRetry : retryWithin(options.retryBudget))
  const outages = new PublishOutages.Outages()
  // Counted and timed only where the caller's context turns metrics on (asked per call: one lookup).
  const publishMetrics = new Telemetry.PublishMetrics(broker.system)

  // Only a failed first attempt enters the retry: the schedule then sees that failure first, exactly as
  // `retryTransient` around the whole publish would.
  const retrying = (
    request: PublishRequest,
    first: NatsError,
    sentAt: number,
    metrics: Telemetry.PublishMetrics | undefined
  ): Effect.Effect<PublishAck, NatsError> => {
    let attempts = 0
    const again =
      metrics === undefined ? broker.publish(request) : metrics.retry(request.subject, broker.publish(request))
    return Effect.suspend(() => (attempts++ === 0 ? Effect.fail(first) : again)).pipe(
      outages.retry(request.subject, retry, sentAt)
    )
  }

  const timestamps = new Timestamps()
  const timestampOf = (fiber: Fiber.Fiber<unknown, unknown>) => timestamps.at(fiber.getRef(Clock.Clock))

  // The envelope's bytes, its payload checked against its event's schema.
  const encode = <E extends Event.Any>(
    fiber: Fiber.Fiber<unknown, unknown>,
    event: E,
    payload: Event.Payload<E>,
    publishOptions: PublishOptions | undefined,
    eventId: string,
    timestamp: DateTime.Utc,
    correlationId = correlationOf(fiber, publishOptions)
  ): Exit.Exit<Uint8Array, Envelope.EncodeError> =>
    event.encode({
      eventId,
      eventType: event.subject,
      correlationId,
      sourceService,
      timestamp,
      data: payload
    })

  const requestOf = (
    subject: string,
    payload: Uint8Array,
    publishOptions: PublishOptions | undefined,
    eventId: string,
    span: Tracer.AnySpan | undefined
  ): PublishRequest => ({
    subject,
    payload,
    headers: headersWithTrace(span, publishOptions?.headers),
    messageId: eventId,
    expectedLastSequence: publishOptions?.expectedLastSequence,
    timeout: publishOptions?.timeout === undefined ? defaultTimeout : Duration.fromInputUnsafe(publishOptions.timeout)
  })

  // `sentAt` (Clock millis) dates an outage from the attempt that failed, not from its end.
  const dispatchOnce = (request: PublishRequest, eventId: string, sentAt: number, metrics?: Telemetry.PublishMetrics) =>
    Effect.matchEffect(broker.publish(request), {
      onFailure(error) {
        return error.isRetryable
          ? Effect.flatMap(retrying(request, error, sentAt, metrics), (ack) => receiptOf(eventId, request.subject, ack))
          : Effect.fail(error)
      },
      onSuccess(ack) {
        // The one cost of outage logging on a publish that went through: a field read.
        return outages.isOpen
          ? Effect.andThen(outages.succeeded, receiptOf(eventId, request.subject, ack))
          : receiptOf(eventId, request.subject, ack)
      }
    })

  const dispatch = (fiber: Fiber.Fiber<unknown, unknown>, request: PublishRequest, eventId: string, sentAt: number) =>
    fiber.getRef(Metrics.Enabled)
      ? publishMetrics.measure(request.subject, dispatchOnce(request, eventId, sentAt, publishMetrics))
      : dispatchOnce(request, eventId, sentAt)

  const send = <E extends Event.Any>(
    fiber: Fiber.Fiber<unknown, unknown>,
    event: E,
    payload: Event.Payload<E>,
    publishOptions: PublishOptions | undefined,
    eventId: string,
    span: Tracer.AnySpan | undefined
  ): Effect.Effect<Receipt, PublishError> => {
    const timestamp = timestampOf(fiber)
    const correlationId = correlationOf(fiber, publishOptions)
    const bytes = encode(fiber, event, payload, publishOptions, eventId, timestamp, correlationId)
    if (Exit.isFailure(bytes)) return Exit.failCause(bytes.cause)
    const request = requestOf(event.subject, bytes.value, publishOptions, eventId, span)
    Telemetry.sent(span, bytes.value.length, correlationId)
    return dispatch(fiber, request, eventId, timestamp.epochMilliseconds)
  }

  const publish = <E extends Event.Any>(
    event: E,
    payload: Event.Payload<E>,
    publishOptions?: PublishOptions
  ): Effect.Effect<Receipt, PublishError> =>
    Effect.withFiber((fiber: Fiber.Fiber<unknown, unknown>) => {
      const eventId = publishOptions?.eventId ?? crypto.randomUUID()
      // Without a tracer no span is made, but the trace of the caller's span (if any) goes on.
      if (!isTracingIn(fiber)) return send(fiber, event, payload, publishOptions, eventId, fiber.cache.span)
      // With one, the envelope carries the producer span's context.
      return Telemetry.withProducerSpan(
        broker,
        event.subject,
        eventId,
        Effect.withFiber((inSpan: Fiber.Fiber<unknown, unknown>) =>
          send(inSpan, event, payload, publishOptions, eventId, inSpan.cache.span)
        )
      )
    })

  type Prepared<E extends Event.Any> = PublishBatch.Prepared<PublishItem<E>, Uint8Array>
  const publishAll = <E extends Event.Any>(
    items: Iterable<PublishItem<E>>,
    allOptions: { readonly concurrency?: number | undefined } = {}
  ): Effect.Effect<ReadonlyArray<Receipt>, PublishAllError> =>
    Effect.withFiber((fiber: Fiber.Fiber<unknown, unknown>) => {
      const clock = fiber.getRef(Clock.Clock)
      const tracing = isTracingIn(fiber)
      // With a tracer, each item's correlation id is kept for its span (most are fresh UUIDs).
      const correlations = tracing ? new Map<string, string>() : undefined
      // Only the bytes are kept until an item is sent: its request is made then, with the current span.
      const sendIn = (span: Tracer.AnySpan | undefined, { item, eventId, encoded }: Prepared<E>) => {
        Telemetry.sent(span, encoded.length, correlations?.get(eventId))
        return dispatch(
          fiber,
          requestOf(item.event.subject, encoded, item.options, eventId, span),
          eventId,
          clock.currentTimeMillisUnsafe()
        )
      }
      const steps: PublishBatch.Steps<PublishItem<E>, Uint8Array, Receipt, Envelope.EncodeError, NatsError> = {
        eventIdOf: (item) => item.options?.eventId ?? crypto.randomUUID(),
        encode: (item, eventId) => {
          const correlationId = correlationOf(fiber, item.options)
          correlations?.set(eventId, correlationId)
          return encode(fiber, item.event, item.payload, item.options, eventId, timestampOf(fiber), correlationId)
        },
        // With a tracer, each item is sent in a span of its own, and its headers carry that span's context.
        send: tracing
          ? (prepared) =>
              Telemetry.withProducerSpan(
                broker,
                prepared.item.event.subject,
                prepared.eventId,
                Effect.withFiber((inSpan: Fiber.Fiber<unknown, unknown>) => sendIn(inSpan.cache.span, prepared))
              )
          : (prepared) => sendIn(fiber.cache.span, prepared)
      }
      return PublishBatch.publishAll(items, steps, allOptions.concurrency ?? 256).pipe(
        Effect.mapError((incomplete) => new PublishAllError(incomplete))
      )
    })

  return Publisher.of({ publish, publishAll })
})

/**
 * The publisher as a layer.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Publisher, never, Broker | ServiceIdentity> =>
  Layer.effect(Publisher, make(options))

/**
 * The options read from the environment: `GLAM_PUBLISH_TIMEOUT` (the per-attempt timeout) and
 * `GLAM_PUBLISH_RETRY_BUDGET` (how long a publish is retried in all), both durations such as
 * `"2 seconds"`; unset, `defaults` apply.
 *
 * @category constructors
 * @since 0.2.0
 */
export const config: Config.Config<Options> = Config.all({
  timeout: Config.Duration("GLAM_PUBLISH_TIMEOUT").pipe(Config.withDefault(undefined)),
  retryBudget: Config.Duration("GLAM_PUBLISH_RETRY_BUDGET").pipe(Config.withDefault(undefined))
})

/**
 * The publisher as a layer configured from the environment (see `config`); `overrides` win over what
 * the environment says where they are set (an override of `undefined` keeps the environment's value).
 *
 * @category layers
 * @since 0.2.0
 */
export const layerConfig = (
  overrides: Options = {}
): Layer.Layer<Publisher, Config.ConfigError, Broker | ServiceIdentity> =>
  Layer.effect(
    Publisher,
    Effect.flatMap(config, (fromConfig) => make(withOverrides(fromConfig, overrides)))
  )

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
 * A publish that gives up is an ERROR line; a burst of them is summed up in a second line. Each failed
 * attempt is a DEBUG line.
 *
 * A `Publisher.publish` span (kind producer) is made only when a tracer that records spans is installed;
 * without one, the trace context of the caller's span, if any, still travels in the headers.
 *
 * The publisher depends on `Broker` only: it runs unchanged on NATS and on the in-memory broker.
 *
 * @since 0.1.0
 */
import {
  Clock,
  Config,
  Context,
  DateTime,
  Duration,
  Effect,
  Exit,
  type Fiber,
  Layer,
  Option,
  Schedule,
  type Tracer
} from "effect"
import { Broker, type Headers, type PublishAck, type PublishRequest } from "./Broker.js"
import * as Envelope from "./Envelope.js"
import type * as Event from "./Event.js"
import * as PublishOutages from "./internal/publishOutages.js"
import { isTracingIn } from "./internal/tracing.js"
import * as MessageContext from "./MessageContext.js"
import type { NatsError } from "./NatsError.js"
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
 * duplicate window of the streams published to (GLAM_EVENTS: 2 minutes): the server forgets a
 * `Nats-Msg-Id` after the window, so a retry after it of a publish whose acknowledgement was lost would
 * store a second copy.
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
    /** Keeps up to `concurrency` publishes in flight (default 256); receipts come back in input order. */
    readonly publishAll: <E extends Event.Any>(
      items: Iterable<PublishItem<E>>,
      options?: { readonly concurrency?: number | undefined }
    ) => Effect.Effect<ReadonlyArray<Receipt>, PublishError>
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

// The GLAM envelope's NATS headers besides `Nats-Msg-Id` (the broker sets that from `messageId`): the W3C
// trace context of `span`, then the caller's own.
const headersOf = (span: Tracer.AnySpan | undefined, extra: PublishOptions["headers"]): Headers => {
  const trace = span === undefined ? noHeaders : Envelope.traceHeaders(span)
  if (extra === undefined) return trace
  return [...trace, ...Object.entries(extra)]
}

const noHeaders: Headers = []

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

  // Only a failed first attempt enters the retry: the schedule then sees that failure first, exactly as
  // `retryTransient` around the whole publish would.
  const retrying = (
    request: PublishRequest,
    first: NatsError,
    sentAt: number
  ): Effect.Effect<PublishAck, NatsError> => {
    let attempts = 0
    return Effect.suspend(() => (attempts++ === 0 ? Effect.fail(first) : broker.publish(request))).pipe(
      outages.retry(request.subject, retry, sentAt)
    )
  }

  // Publishes come in bursts within one millisecond: one timestamp value serves all of them.
  let stampedAt = Number.NaN
  let stamp = DateTime.makeUnsafe(0)
  const timestampOf = (fiber: Fiber.Fiber<unknown, unknown>): DateTime.Utc => {
    const millis = fiber.getRef(Clock.Clock).currentTimeMillisUnsafe()
    if (millis !== stampedAt) {
      stamp = DateTime.makeUnsafe(millis)
      stampedAt = millis
    }
    return stamp
  }

  const send = <E extends Event.Any>(
    fiber: Fiber.Fiber<unknown, unknown>,
    event: E,
    payload: Event.Payload<E>,
    publishOptions: PublishOptions | undefined,
    eventId: string,
    span: Tracer.AnySpan | undefined
  ): Effect.Effect<Receipt, PublishError> => {
    const subject = event.subject
    const timestamp = timestampOf(fiber)
    const bytes = event.encodeExit({
      eventId,
      eventType: subject,
      correlationId:
        publishOptions?.correlationId ??
        Option.getOrUndefined(fiber.getRef(MessageContext.Current))?.correlationId ??
        crypto.randomUUID(),
      sourceService,
      timestamp,
      data: payload
    })
    if (Exit.isFailure(bytes)) return Exit.failCause(bytes.cause)
    const request: PublishRequest = {
      subject,
      payload: bytes.value,
      headers: headersOf(span, publishOptions?.headers),
      messageId: eventId,
      expectedLastSequence: publishOptions?.expectedLastSequence,
      timeout: publishOptions?.timeout === undefined ? defaultTimeout : Duration.fromInputUnsafe(publishOptions.timeout)
    }
    return Effect.matchEffect(broker.publish(request), {
      onFailure(error) {
        return error.isRetryable
          ? Effect.flatMap(retrying(request, error, timestamp.epochMilliseconds), (ack) =>
              receiptOf(eventId, subject, ack)
            )
          : Effect.fail(error)
      },
      onSuccess(ack) {
        // The one cost of outage logging on a publish that went through: a field read.
        return outages.isOpen
          ? Effect.andThen(outages.succeeded, receiptOf(eventId, subject, ack))
          : receiptOf(eventId, subject, ack)
      }
    })
  }

  // The producer span, only when a tracer exports it; the envelope then carries this span's context.
  const traced = <E extends Event.Any>(
    event: E,
    payload: Event.Payload<E>,
    publishOptions: PublishOptions | undefined
  ): Effect.Effect<Receipt, PublishError> => {
    const eventId = publishOptions?.eventId ?? crypto.randomUUID()
    return Effect.withFiber((fiber: Fiber.Fiber<unknown, unknown>) =>
      send(fiber, event, payload, publishOptions, eventId, fiber.cache.span)
    ).pipe(
      Effect.withSpan("Publisher.publish", {
        kind: "producer",
        attributes: {
          "messaging.system": broker.system,
          "messaging.destination.name": event.subject,
          "messaging.operation": "publish",
          "messaging.message.id": eventId
        }
      })
    )
  }

  const publish = <E extends Event.Any>(
    event: E,
    payload: Event.Payload<E>,
    publishOptions?: PublishOptions
  ): Effect.Effect<Receipt, PublishError> =>
    Effect.withFiber((fiber: Fiber.Fiber<unknown, unknown>) =>
      isTracingIn(fiber)
        ? traced(event, payload, publishOptions)
        : // Without a tracer no span is made, but the trace of the caller's span (if any) goes on.
          send(fiber, event, payload, publishOptions, publishOptions?.eventId ?? crypto.randomUUID(), fiber.cache.span)
    )

  const publishAll = <E extends Event.Any>(
    items: Iterable<PublishItem<E>>,
    allOptions: { readonly concurrency?: number | undefined } = {}
  ): Effect.Effect<ReadonlyArray<Receipt>, PublishError> =>
    Effect.forEach(items, (item: PublishItem<E>) => publish(item.event, item.payload, item.options), {
      concurrency: allOptions.concurrency ?? 256
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
 * the environment says.
 *
 * @category layers
 * @since 0.2.0
 */
export const layerConfig = (
  overrides: Options = {}
): Layer.Layer<Publisher, Config.ConfigError, Broker | ServiceIdentity> =>
  Layer.effect(
    Publisher,
    Effect.flatMap(config, (fromConfig) => make({ ...fromConfig, ...overrides }))
  )

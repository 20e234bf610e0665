/**
 * The message being handled, as a fiber-local value.
 *
 * A subscriber sets it around each handler run; `Publisher.publish` reads it so that the events a
 * handler publishes inherit the correlation id of the message that caused them. Outside a handler it
 * is empty and a new correlation id is made per publish.
 *
 * @since 0.1.0
 */
import { Context, Effect, Option } from "effect"
import type { Headers } from "./Broker.js"

/**
 * Where the message being handled came from, as the server delivered it.
 *
 * @category models
 * @since 0.2.0
 */
export interface DeliveryInfo {
  readonly subject: string
  readonly stream: string
  /** The durable consumer that delivered it. */
  readonly consumer: string
  readonly streamSeq: number
  /** 1 on the first delivery; more when it was redelivered (a nak, or an ack-wait that ran out). */
  readonly deliveryCount: number
  /** Its NATS headers (`Nats-Msg-Id`, `traceparent`, anything the publisher added). */
  readonly headers: Headers
  /** When the stream stored it, in epoch millis. */
  readonly timestampMillis: number
}

/**
 * What a follow-up event needs to know about the message being handled.
 *
 * @category models
 * @since 0.1.0
 */
export interface CurrentMessage {
  readonly correlationId: string
  /** The id of the message being handled; absent when only a correlation id was set. */
  readonly eventId?: string | undefined
  readonly eventType?: string | undefined
  /** Set by a subscriber around its handler: the delivery being handled. */
  readonly delivery?: DeliveryInfo | undefined
}

/**
 * The message being handled, if any.
 *
 * @category services
 * @since 0.1.0
 */
export const Current = Context.Reference<Option.Option<CurrentMessage>>("@glam/messaging/MessageContext/Current", {
  defaultValue: Option.none
})

/**
 * Runs `self` as the handling of `message`: publishes inside inherit its correlation id.
 *
 * @category combinators
 * @since 0.1.0
 */
export const withMessage =
  (message: CurrentMessage) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.provideService(self, Current, Option.some(message))

/**
 * Runs `self` with a given correlation id, e.g. one taken from an incoming HTTP request.
 *
 * @category combinators
 * @since 0.1.0
 */
export const withCorrelationId =
  (correlationId: string) =>
  <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.provideService(self, Current, Option.some({ correlationId }))

/**
 * The correlation id in force, if any.
 *
 * @category accessors
 * @since 0.1.0
 */
export const correlationId: Effect.Effect<Option.Option<string>> = Effect.map(Current, (current) =>
  Option.map(current, (m) => m.correlationId)
)

/**
 * The delivery being handled (subject, stream sequence, delivery count, headers), inside a handler.
 *
 * @category accessors
 * @since 0.2.0
 */
export const delivery: Effect.Effect<Option.Option<DeliveryInfo>> = Effect.map(Current, (current) =>
  Option.flatMap(current, (m) => Option.fromUndefinedOr(m.delivery))
)

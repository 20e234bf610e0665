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

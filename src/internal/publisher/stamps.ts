/**
 * What a publisher stamps on a new envelope besides its event id: the timestamp and the correlation id.
 */
import { type Clock, DateTime, type Fiber, Option } from "effect"
import * as MessageContext from "../../MessageContext.js"

/** The correlation id of a new envelope: the caller's, else the handled message's, else a new one. */
export const correlationOf = (
  fiber: Fiber.Fiber<unknown, unknown>,
  options: { readonly correlationId?: string | undefined } | undefined
): string =>
  options?.correlationId ??
  Option.getOrUndefined(fiber.getRef(MessageContext.Current))?.correlationId ??
  crypto.randomUUID()

/**
 * Envelope timestamps. Publishes come in bursts within one millisecond: one `DateTime` value serves
 * all of them, made again only when the clock has moved on.
 */
export class Timestamps {
  private millis = Number.NaN
  private stamp = DateTime.makeUnsafe(0)

  /** Now on `clock`, the same value as the last call's within the same millisecond. */
  at(clock: Clock.Clock): DateTime.Utc {
    const millis = clock.currentTimeMillisUnsafe()
    if (millis !== this.millis) {
      this.stamp = DateTime.makeUnsafe(millis)
      this.millis = millis
    }
    return this.stamp
  }
}

/**
 * Envelope timestamps for a publisher. Publishes come in bursts within one millisecond: one
 * `DateTime` value serves all of them, made again only when the clock has moved on.
 */
import { type Clock, DateTime } from "effect"

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

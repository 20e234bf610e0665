/**
 * A subscriber's pull window: how many messages its consume may hold right now, up to `prefetch` (the
 * ceiling). Wide while things are healthy, one message exactly while a crash is suspected, so that a
 * message whose handler kills the process on every delivery is delivered alone, and the messages behind
 * it are not charged a delivery for each of its crashes.
 *
 * A crash is suspected
 * - at start-up, when the durable has messages delivered and not acknowledged: held by a process that
 *   died (they come back within one ack-wait) or by a running replica;
 * - whenever a delivery arrives counted above 1 that this process did not give back itself (`Held`
 *   remembers what it nak'ed): its ack-wait ran out in some process, which may have died holding it.
 * While suspected, one message at a time, until a full ack-wait passes without such a delivery; then
 * the window doubles with every window's worth of deliveries until it reaches the ceiling. A durable
 * with nothing unacknowledged at start-up starts at the ceiling.
 *
 * Cost when healthy: one delivery-count read per message. The clock is read only while suspected.
 */
import { type Clock, Effect } from "effect"
import type { Message } from "../../Broker.js"
import { formatMillis } from "../durations.js"
import type { Held } from "./held.js"

/** A change worth a log line, for the consume loop to write. */
export interface Note {
  readonly level: "Info" | "Warn"
  readonly message: string
}

/** Writes `note` at its level. */
export const log = (note: Note): Effect.Effect<void> => Effect.logWithLevel(note.level)(note.message)

export class Window {
  private size: number
  /** Epoch milliseconds until which one message at a time is pulled; 0 when not suspected. */
  private carefulUntil = 0
  /** Suspected until recently: the next arrival says that the window grows again. */
  private recovered = false
  private deliveredInWindow = 0

  constructor(
    private readonly name: string,
    private readonly ceiling: number,
    private readonly ackWaitMillis: number,
    private readonly held: Held,
    private readonly clock: Clock.Clock
  ) {
    this.size = ceiling
  }

  /**
   * At start-up: `unacknowledged` messages of the durable are delivered and not acknowledged, or, as a
   * string, why that is not known (taken as some are).
   */
  start(unacknowledged: number | string): Note | undefined {
    if (unacknowledged === 0 || this.ceiling === 1) return undefined
    this.suspect()
    const why =
      typeof unacknowledged === "string"
        ? `the durable's state could not be read (${unacknowledged})`
        : `${unacknowledged} messages of the durable are delivered and not acknowledged (held by a process that may have died, or by a replica)`
    return {
      level: "Info",
      message: `${this.name}: ${why}: pulling one message at a time until ${formatMillis(this.ackWaitMillis)} pass without a redelivery from elsewhere`
    }
  }

  /** What `current` would give, without moving on from a suspicion that is over: for the gauge. */
  get limit(): number {
    return this.carefulUntil !== 0 && this.clock.currentTimeMillisUnsafe() < this.carefulUntil ? 1 : this.size
  }

  /** The slots the consume may hold now; asked whenever it decides what to pull. */
  readonly current = (): number => {
    if (this.carefulUntil === 0) return this.size
    if (this.clock.currentTimeMillisUnsafe() < this.carefulUntil) return 1
    this.carefulUntil = 0
    this.recovered = true
    return this.size
  }

  /** A chunk of deliveries arrived (before they are handled); returns a line to log when the mode changed. */
  arrived(chunk: ReadonlyArray<Message>): Note | undefined {
    if (this.ceiling === 1) return undefined
    let note: Note | undefined
    if (this.recovered) {
      this.recovered = false
      note = {
        level: "Info",
        message: `${this.name}: no redelivery from elsewhere for ${formatMillis(this.ackWaitMillis)}: the pull window grows back to ${this.ceiling}`
      }
    }
    for (const message of chunk) {
      if (message.deliveryCount > 1 && !this.held.cameBack(message)) {
        const wasCareful = this.carefulUntil !== 0
        this.suspect()
        if (!wasCareful) {
          note = {
            level: "Warn",
            message:
              `${this.name}: ${message.subject} (stream sequence ${message.streamSeq}) came back at delivery ` +
              `${message.deliveryCount} without this process giving it back: a process holding it may have died ` +
              "(or a pull carrying it was lost). " +
              `Pulling one message at a time until ${formatMillis(this.ackWaitMillis)} pass without another`
          }
        }
      }
    }
    if (this.carefulUntil === 0 && this.size < this.ceiling) {
      this.deliveredInWindow += chunk.length
      while (this.deliveredInWindow >= this.size && this.size < this.ceiling) {
        this.deliveredInWindow -= this.size
        this.size = Math.min(this.ceiling, this.size * 2)
      }
    }
    return note
  }

  private suspect(): void {
    this.carefulUntil = this.clock.currentTimeMillisUnsafe() + this.ackWaitMillis
    this.size = 1
    this.deliveredInWindow = 0
    this.recovered = false
  }
}

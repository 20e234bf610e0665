/**
 * What each worker of a subscriber is handling and since when: the message a worker interrupted at
 * shutdown gives back, and the handlers that run long. A handler still running `slowAfter` after it
 * started is reported (for the log, at WARN), again after twice as long, then four times, and so on,
 * and once more when it finishes, so that a hung handler is never silent and a slow one is not a flood.
 *
 * One slot per worker, plain arrays: `start` and `finish` run for every message.
 */
import type { Message } from "../../Broker.js"
import { formatMillis } from "../durations.js"

export class InFlight {
  private readonly messages: Array<Message | undefined>
  private readonly eventIds: Array<string | undefined>
  private readonly startedAt: Array<number>
  /** How long the handler of a slot may have run before its next report; 0 once nothing is running. */
  private readonly reportAfter: Array<number>
  private readonly reported: Array<boolean>

  constructor(
    workers: number,
    private readonly slowAfterMillis: number
  ) {
    this.messages = Array.from({ length: workers }, () => undefined)
    this.eventIds = Array.from({ length: workers }, () => undefined)
    this.startedAt = Array.from({ length: workers }, () => 0)
    this.reportAfter = Array.from({ length: workers }, () => 0)
    this.reported = Array.from({ length: workers }, () => false)
  }

  start(index: number, message: Message, eventId: string | undefined, now: number): void {
    this.messages[index] = message
    this.eventIds[index] = eventId
    this.startedAt[index] = now
    this.reportAfter[index] = this.slowAfterMillis
    this.reported[index] = false
  }

  /** The slot's handler is done; a line for the log when it had been reported slow. */
  finish(index: number, now: () => number): string | undefined {
    const message = this.messages[index]
    this.messages[index] = undefined
    if (message === undefined || this.reported[index] !== true) return undefined
    this.reported[index] = false
    return `${this.describe(index, message)} finished after ${formatMillis(now() - (this.startedAt[index] ?? 0))}`
  }

  /**
   * The handler of `message` is done and its dead letter is being written again and again (its stream
   * does not take it): no longer a handler running long, and the write outage has log lines of its own.
   */
  settling(message: Message): void {
    const index = this.messages.indexOf(message)
    if (index === -1) return
    this.reportAfter[index] = Number.POSITIVE_INFINITY
    this.reported[index] = false
  }

  /** Empties the slot and hands its message back, if a handler was running in it. */
  take(index: number): Message | undefined {
    const message = this.messages[index]
    this.messages[index] = undefined
    this.reported[index] = false
    return message
  }

  /** A line for every handler running past its next report; the one after comes twice as late. */
  slow(now: number): ReadonlyArray<string> {
    const lines: Array<string> = []
    for (let index = 0; index < this.messages.length; index++) {
      const message = this.messages[index]
      const after = this.reportAfter[index] ?? 0
      const elapsed = now - (this.startedAt[index] ?? now)
      if (message === undefined || elapsed < after) continue
      this.reportAfter[index] = after * 2
      this.reported[index] = true
      lines.push(
        `${this.describe(index, message)} still running after ${formatMillis(elapsed)} (delivery ${message.deliveryCount}); ` +
          `next report after ${formatMillis(after * 2)}; a handlerTimeout would bound it`
      )
    }
    return lines
  }

  private describe(index: number, message: Message): string {
    const eventId = this.eventIds[index]
    return `handler for ${message.subject} #${message.streamSeq}${eventId === undefined ? "" : ` (event ${eventId})`}`
  }
}

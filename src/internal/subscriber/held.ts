/**
 * The messages a subscriber's process holds (waiting or running), for the `working` that keeps them
 * from being redelivered; the time each first failed here, for its dead-letter record; and the ones it
 * gave back (nak), so that their redelivery is not taken for a sign of a crash (`window`).
 */
import type { Message } from "../../Broker.js"

const FIRST_FAILURES_KEPT = 10_000
// Forgetting one only makes its redelivery look like a crash elsewhere: the careful direction.
const GIVEN_BACK_KEPT = 10_000

/**
 * Messages held by this process (waiting or running), with when `working` was last sent for each, and
 * the time each message first failed here (kept across its redeliveries to this process, bounded).
 */
export class Held {
  private readonly since = new Map<Message, number>()
  private readonly firstFailures = new Map<string, number>()
  /** Keys of messages nak'ed here and not delivered again yet, oldest first. */
  private readonly givenBack = new Set<string>()

  add(message: Message, now: number): void {
    this.since.set(message, now)
  }

  /** The message was nak'ed: it may come back, so its first failure is kept. */
  release(message: Message): void {
    this.since.delete(message)
    makeRoom(this.givenBack, GIVEN_BACK_KEPT)
    this.givenBack.add(keyOf(message))
  }

  /** Whether this process gave the message back (and had not been handed it again since); asked once per redelivery. */
  cameBack(message: Message): boolean {
    return this.givenBack.size > 0 && this.givenBack.delete(keyOf(message))
  }

  /** The message is settled for good. */
  forget(message: Message): void {
    this.since.delete(message)
    if (this.firstFailures.size > 0) this.firstFailures.delete(keyOf(message))
  }

  /** Records a failure at `now`; returns the first failure time known for the message. */
  failed(message: Message, now: number): number {
    const key = keyOf(message)
    const first = this.firstFailures.get(key)
    if (first !== undefined) return first
    makeRoom(this.firstFailures, FIRST_FAILURES_KEPT)
    this.firstFailures.set(key, now)
    return now
  }

  /** Sends `working` for every message held at least `after` milliseconds since it came or was last touched. */
  keepAlive(now: number, after: number): void {
    for (const [message, since] of this.since) {
      if (now - since >= after) {
        message.working()
        this.since.set(message, now)
      }
    }
  }
}

const keyOf = (message: Message): string => `${message.stream}:${message.streamSeq}`

/** Drops the oldest key of a full `keys` (insertion order), so one more fits under `kept`. */
const makeRoom = (keys: Set<string> | Map<string, unknown>, kept: number): void => {
  if (keys.size < kept) return
  const oldest = keys.keys().next()
  if (oldest.done !== true) keys.delete(oldest.value)
}

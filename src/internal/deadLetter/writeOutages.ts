/**
 * What the log tells while dead letters cannot be written (their stream is gone, JetStream does not
 * answer): one WARN when writes start failing, a summary at most every 30 s while they go on, and one
 * INFO when a write goes through again. Each failed write is tried again later (its message is
 * redelivered, or kept and written again in process), so a single failure is only DEBUG: a hundred
 * messages failing five times each make three lines, not five hundred.
 *
 * One per subscriber and one per advisory watcher, created with it; not shared between processes.
 */
import { type Cause, Clock, Duration, Effect } from "effect"

/** At most one "still failing" summary per this long. */
const REPORT_MILLIS = 30_000

/** Messages told apart in one outage at most; past that, the summary says "at least". */
const MESSAGES_KEPT = 10_000

interface Outage {
  readonly since: number
  reportedAt: number
  failures: number
  /** The messages (`stream#seq`) whose dead letter could not be written in this outage. */
  readonly messages: Set<string>
}

const elapsed = (since: number, now: number): string => Duration.format(Duration.millis(Math.round(now - since)))

const count = (outage: Outage): string =>
  outage.messages.size < MESSAGES_KEPT ? `${outage.messages.size}` : `at least ${MESSAGES_KEPT}`

export class WriteOutages {
  private outage: Outage | undefined = undefined

  /** `who` opens every line: `subscriber orders-worker`, `advisory watcher dlq-ORDERS-orders-worker`. */
  constructor(private readonly who: string) {}

  /** A write for `message` (`stream#seq`) failed with `cause`; `then` says what happens to it now. */
  failed(message: string, cause: Cause.Cause<unknown>, then: string): Effect.Effect<void> {
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const outage = this.outage
      if (outage === undefined) {
        this.outage = { since: now, reportedAt: now, failures: 1, messages: new Set([message]) }
        return Effect.logWarning(
          `${this.who}: could not write the dead letter of ${message}; ${then}. Dead letters are written again ` +
            "once their stream takes them; until then one summary every 30 s",
          cause
        )
      }
      outage.failures++
      if (outage.messages.size < MESSAGES_KEPT) outage.messages.add(message)
      if (now - outage.reportedAt < REPORT_MILLIS) {
        return Effect.logDebug(`${this.who}: could not write the dead letter of ${message}; ${then}`)
      }
      outage.reportedAt = now
      return Effect.logWarning(
        `${this.who}: dead letters still cannot be written after ${elapsed(outage.since, now)}: ` +
          `${outage.failures} failed writes for ${count(outage)} messages, none dropped; last: ${message}, ${then}`,
        cause
      )
    })
  }

  /** A write went through: the outage, if one is open, is over. */
  readonly succeeded: Effect.Effect<void> = Effect.suspend(() => {
    const outage = this.outage
    if (outage === undefined) return Effect.void
    this.outage = undefined
    return Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.logInfo(
        `${this.who}: dead letters are written again after ${elapsed(outage.since, now)} ` +
          `(${outage.failures} failed writes for ${count(outage)} messages)`
      )
    )
  })
}

/**
 * A delay that doubles with each delivery from `base`, at most `cap`: how long a message (or an
 * advisory) whose dead letter could not be written waits before it is tried again.
 */
export const growingDelay = (base: Duration.Duration, cap: Duration.Duration, deliveryCount: number): number =>
  Math.min(Duration.toMillis(base) * 2 ** Math.min(30, Math.max(0, deliveryCount - 1)), Duration.toMillis(cap))

/**
 * The outage log of publishes: what `Publisher` tells the operator while publishes fail and are retried.
 * The rules are `Publisher.OutageLog`'s; this is their bookkeeping, per publisher and in process.
 */
import { Cause, Clock, Effect, Exit, type Schedule } from "effect"
import type { NatsError } from "../../NatsError.js"
import { formatMillis } from "../durations.js"
import { causeMessageOf as messageOf } from "../errorText.js"

/**
 * The outages of a publisher, as its log tells them: one WARN when publishes start failing, a summary
 * at most every 10 s while they keep failing, one INFO when a publish succeeds again; a publish that
 * gives up is an ERROR, and a burst of them one more ERROR that counts the rest. `Publisher.make` keeps
 * one per publisher; give one to `retryTransient` to share it between publishes made by other means.
 */
export interface OutageLog {
  /** Whether publishes are failing now. Read on every successful publish, hence a plain field. */
  readonly isOpen: boolean
  /**
   * Retries `publish` on `schedule` while its failure is retryable, telling this log how it goes.
   * `sentAt` (`Clock` millis) is when its first attempt was sent, if known: a failure is seen only when
   * the attempt ends (a timeout, a lookup), and an outage dates from the attempt, not from its end.
   */
  readonly retry: (
    subject: string,
    schedule: Schedule.Schedule<unknown, NatsError>,
    sentAt?: number
  ) => <A, R>(publish: Effect.Effect<A, NatsError, R>) => Effect.Effect<A, NatsError, R>
  /** A publish succeeded without a retry: the outage, if one is open, is over. */
  readonly succeeded: Effect.Effect<void>
}

/** At most one "still failing" summary, and one line about publishes that gave up, per this long. */
const REPORT_MILLIS = 10_000

interface Outage {
  /** When the first attempt that failed in this outage was sent. */
  since: number
  /** When the last summary (or the first WARN) was logged. */
  reportedAt: number
  /** Failed attempts, first attempts included. */
  attempts: number
  /** Publishes with at least one failed attempt in this outage. */
  publishes: number
  gaveUp: number
  /** Publishes that gave up and were logged at DEBUG only, to be counted in the next ERROR line. */
  gaveUpUntold: number
  gaveUpToldAt: number
}

/** One publish in `OutageLog.retry`. */
interface Retried {
  attempts: number
  /** When its first attempt was sent, else when it failed. */
  since: number
  /** The last outage it was counted in. */
  outage: Outage | undefined
}

const elapsed = (since: number, now: number): string => formatMillis(now - since)

export class Outages implements OutageLog {
  isOpen = false
  private outage: Outage | undefined = undefined
  /** Publishes between their first failed attempt and their end, in any outage. */
  private retrying = 0

  readonly retry =
    (subject: string, schedule: Schedule.Schedule<unknown, NatsError>, sentAt?: number) =>
    <A, R>(publish: Effect.Effect<A, NatsError, R>): Effect.Effect<A, NatsError, R> =>
      Effect.suspend(() => {
        const retried: Retried = { attempts: 0, since: sentAt ?? Number.NaN, outage: undefined }
        return publish.pipe(
          Effect.tapError((error) => (error.isRetryable ? this.failed(subject, error, retried) : Effect.void)),
          Effect.retry({ while: (error) => error.isRetryable, schedule }),
          Effect.onExit((exit) => this.settled(subject, exit, retried))
        )
      })

  readonly succeeded: Effect.Effect<void> = Effect.suspend(() => {
    const outage = this.outage
    if (outage === undefined) return Effect.void
    this.outage = undefined
    this.isOpen = false
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const ended = Effect.logInfo(
        `publishing works again after ${elapsed(outage.since, now)}: ${outage.attempts} failed attempts, ` +
          `${outage.publishes} publishes retried, ${outage.gaveUp} gave up`
      )
      return outage.gaveUpUntold === 0
        ? ended
        : Effect.andThen(
            Effect.logError(
              `gave up on ${outage.gaveUpUntold} more publishes since ${elapsed(outage.gaveUpToldAt, now)} ago`
            ),
            ended
          )
    })
  })

  private failed(subject: string, error: NatsError, retried: Retried): Effect.Effect<void> {
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const first = retried.attempts++ === 0
      if (first) {
        if (Number.isNaN(retried.since)) retried.since = now
        this.retrying++
      }
      const outage = this.outage
      if (outage === undefined) {
        const opened: Outage = {
          since: retried.since,
          reportedAt: now,
          attempts: 1,
          publishes: 1,
          gaveUp: 0,
          gaveUpUntold: 0,
          gaveUpToldAt: Number.NEGATIVE_INFINITY
        }
        this.outage = opened
        this.isOpen = true
        retried.outage = opened
        return Effect.logWarning(
          `publish to ${subject} failed, retrying (one summary every 10 s until a publish succeeds): ${error.message}`
        )
      }
      outage.attempts++
      // Publishes in flight fail in any order (at once when disconnected, after their timeout when
      // unanswered): the outage began with the earliest first attempt among them.
      if (first && retried.since < outage.since) outage.since = retried.since
      if (retried.outage !== outage) {
        retried.outage = outage
        outage.publishes++
      }
      if (now - outage.reportedAt < REPORT_MILLIS) {
        return Effect.logDebug(`publish to ${subject} failed again (attempt ${retried.attempts}): ${error.message}`)
      }
      outage.reportedAt = now
      return Effect.logWarning(
        `publishing still failing after ${elapsed(outage.since, now)}: ${outage.attempts} failed attempts, ` +
          `${this.retrying} publishes retrying now, ${outage.gaveUp} gave up; last: ${error.message}`
      )
    })
  }

  private settled(subject: string, exit: Exit.Exit<unknown, NatsError>, retried: Retried): Effect.Effect<void> {
    if (retried.attempts === 0) return Exit.isSuccess(exit) ? this.succeeded : Effect.void
    this.retrying--
    if (Exit.isSuccess(exit)) return this.succeeded
    if (Cause.hasInterruptsOnly(exit.cause)) return Effect.void
    return Effect.flatMap(Clock.currentTimeMillis, (now) => this.gaveUp(subject, messageOf(exit.cause), retried, now))
  }

  // Publishes started together give up together, their budgets ending at once: the first is told at
  // once, the others counted and told in one line when no publish is left retrying, or 10 s later.
  private gaveUp(subject: string, reason: string, retried: Retried, now: number): Effect.Effect<void> {
    const publish = `a publish to ${subject} after ${retried.attempts} failed attempts in ${elapsed(retried.since, now)}: ${reason}`
    const line = `gave up on ${publish}`
    const outage = this.outage
    if (outage === undefined) return Effect.logError(line)
    outage.gaveUp++
    const due = now - outage.gaveUpToldAt >= REPORT_MILLIS
    if (outage.gaveUpUntold === 0 && due) {
      outage.gaveUpToldAt = now
      return Effect.logError(line)
    }
    outage.gaveUpUntold++
    if (!due && this.retrying > 0) return Effect.logDebug(line)
    const untold = outage.gaveUpUntold
    const since = outage.gaveUpToldAt
    outage.gaveUpUntold = 0
    outage.gaveUpToldAt = now
    return Effect.logError(`gave up on ${untold} more publishes in ${elapsed(since, now)}; the last, ${publish}`)
  }
}

/**
 * Loops that never end on their own while their scope is open: a subscriber's consume loop, its
 * max-deliveries advisory watcher, its keep-alive and its consumer watch.
 *
 * A supervised loop that fails (or returns, which a loop should never do) is logged once, at ERROR and
 * with its cause, and started again on a `Schedule` (exponential, capped at a few seconds, for ever).
 * While it keeps failing, one summary line at most every `reportEvery` says for how long and how many
 * attempts; the first time it is up again, one INFO line says how long the outage lasted. "Up" is
 * whatever the loop says it is: it calls the `up` effect it is given once it is working (a consume
 * loop once its consumer answered), and stays up for `stableFor`; a loop that fails again sooner is
 * still in the same outage, so a loop that flaps is not logged as recovering each time.
 *
 * Only interruption ends a supervised loop: that is how its scope closes.
 */
import { Cause, Clock, Duration, Effect, Exit, Schedule, Scope } from "effect"
import { formatMillis } from "./durations.js"
import { causeMessageOf as messageOf } from "./errorText.js"

/** Exponential from 200 ms, each wait at most 5 s, for ever. */
export const defaultRestartSchedule: Schedule.Schedule<unknown> = Schedule.min([
  Schedule.exponential("200 millis", 2),
  Schedule.spaced("5 seconds")
])

export interface Options {
  /** What the loop does, for log lines: `consume GLAM_EVENTS/billing-evt-merchant`. */
  readonly name: string
  readonly schedule?: Schedule.Schedule<unknown> | undefined
  /** At most one "still failing" line per this long. Default 30 seconds. */
  readonly reportEvery?: Duration.Duration | undefined
  /** How long a loop must stay up after calling `up` to count as recovered. Default 2 seconds. */
  readonly stableFor?: Duration.Duration | undefined
  /** Told each time the loop calls `up` (a subscriber's status becomes `Consuming`). */
  readonly onUp?: (() => void) | undefined
  /** Told each time the loop fails: attempts in this outage, the failure's message, the outage's start. */
  readonly onFailure?: ((attempts: number, message: string, since: number) => void) | undefined
}

interface Outage {
  readonly since: number
  attempts: number
  reportedAt: number
}

/**
 * Runs `run` for as long as the surrounding fiber lives, starting it again whenever it ends. `run`
 * receives `up`, to be called each time it is working again; calling it when nothing failed costs nothing.
 */
export const supervise = <R>(
  options: Options,
  run: (up: Effect.Effect<void>) => Effect.Effect<unknown, unknown, R>
): Effect.Effect<never, never, R> =>
  Effect.gen(function* () {
    const clock = yield* Clock.Clock
    const schedule = options.schedule ?? defaultRestartSchedule
    const reportEvery = Duration.toMillis(options.reportEvery ?? Duration.seconds(30))
    const stableFor = options.stableFor ?? Duration.seconds(2)
    const { name } = options
    let outage: Outage | undefined
    let step: ((input: unknown) => Effect.Effect<unknown, unknown>) | undefined

    // Forked in the attempt's scope: an attempt that fails before `stableFor` takes its recovery with it.
    const upIn = (attempt: Scope.Scope) =>
      Effect.suspend(() => {
        options.onUp?.()
        const current = outage
        if (current === undefined) return Effect.void
        const lasted = formatMillis(clock.currentTimeMillisUnsafe() - current.since)
        return Effect.sleep(stableFor).pipe(
          Effect.andThen(
            Effect.suspend(() => {
              if (outage !== current) return Effect.void
              outage = undefined
              step = undefined
              return Effect.logInfo(`${name}: working again after ${lasted} (${current.attempts} attempts)`)
            })
          ),
          Effect.forkIn(attempt),
          Effect.asVoid
        )
      })

    while (true) {
      const attempt = yield* Scope.make()
      const exit = yield* Effect.exit(run(upIn(attempt))).pipe(Effect.ensuring(Scope.close(attempt, Exit.void)))
      const cause = Exit.isFailure(exit) ? exit.cause : Cause.die(new Error("it returned, which it never should"))
      if (Cause.hasInterruptsOnly(cause)) return yield* Effect.interrupt
      const now = clock.currentTimeMillisUnsafe()
      if (outage === undefined) {
        outage = { since: now, attempts: 1, reportedAt: now }
        yield* Effect.logError(`${name} stopped: ${messageOf(cause)}; starting it again until it works`, cause)
      } else {
        outage.attempts++
        if (now - outage.reportedAt >= reportEvery) {
          outage.reportedAt = now
          const lasted = formatMillis(now - outage.since)
          yield* Effect.logError(
            `${name} still failing after ${lasted} (${outage.attempts} attempts): ${messageOf(cause)}`
          )
        } else {
          yield* Effect.logDebug(`${name} failed again: ${messageOf(cause)}`)
        }
      }
      options.onFailure?.(outage.attempts, messageOf(cause), outage.since)
      if (step === undefined) step = yield* Schedule.toStepWithSleep(schedule)
      // A schedule that ends would leave the loop down for good: past its end, wait its cap instead.
      yield* step(undefined).pipe(
        Effect.catchCause((stepCause) =>
          Cause.hasInterruptsOnly(stepCause) ? Effect.interrupt : Effect.sleep(Duration.seconds(5))
        )
      )
    }
  })

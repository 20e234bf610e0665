/**
 * Polling until something holds, for every test: `eventually(check)` retries the check until it succeeds
 * and, when time runs out, fails with `NotYet` carrying the last thing the check said, so that a failing
 * test tells what it was still waiting for rather than only that it timed out.
 *
 * Under a `TestClock` no time passes unless the test adjusts it, so neither the interval nor the timeout
 * would ever elapse: there `{ withoutTime: true }` retries after letting every other fiber run, a bounded
 * number of turns.
 */
import { Data, Duration, Effect, Option, Ref, Schedule } from "effect"

/** A check that did not hold (yet), with what was seen. */
export class NotYet extends Data.TaggedError("NotYet")<{ readonly message: string }> {}

/** How long to keep trying, and how often. */
export interface Options {
  /** Default 15 seconds: inside the contract's 20-second scenarios and vitest's 30-second tests. */
  readonly timeout?: Duration.Input | undefined
  /** Default 50 milliseconds. */
  readonly interval?: Duration.Input | undefined
  /** Under a `TestClock`: retry after yielding to the other fibers (1,000 turns at most), not on a timer. */
  readonly withoutTime?: boolean | undefined
}

const turns = 1000

/** Retries `check` every `interval` until it succeeds; fails with `NotYet` and its last error after `timeout`. */
export const eventually = <A, E, R>(
  check: Effect.Effect<A, E, R>,
  options: Options = {}
): Effect.Effect<A, E | NotYet, R> =>
  Effect.gen(function* () {
    const last = yield* Ref.make<Option.Option<E>>(Option.none())
    const notYet = (after: string) =>
      Effect.flatMap(Ref.get(last), (error) =>
        Effect.fail(
          new NotYet({
            message: `still not true after ${after}: ${Option.match(error, { onNone: () => "never ran", onSome: describe })}`
          })
        )
      )
    const recorded = check.pipe(Effect.tapError((error) => Ref.set(last, Option.some(error))))
    if (options.withoutTime === true) {
      return yield* recorded.pipe(
        Effect.tapError(() => Effect.yieldNow),
        Effect.retry({ times: turns }),
        Effect.catch(() => notYet(`${turns} turns`))
      )
    }
    const timeout = options.timeout ?? "15 seconds"
    return yield* recorded.pipe(
      Effect.retry(Schedule.spaced(options.interval ?? "50 millis")),
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () => notYet(Duration.format(Duration.fromInputUnsafe(timeout)))
      })
    )
  })

const describe = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error ? String(error.message) : String(error)

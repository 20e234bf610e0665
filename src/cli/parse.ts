/**
 * The values people type after a flag: lengths of time (`90s`, `15m`, `2h`, `7d`, `1w`, or Effect's
 * `"15 minutes"`), points in time (an ISO-8601 date-time, or a length of time meaning that long ago),
 * and JSON given inline or as `@file`.
 */
import { Clock, DateTime, Duration, Effect, FileSystem, Option, Result } from "effect"
import { parseJson } from "../internal/json.js"
import { CliError } from "./errors.js"

const units: Readonly<Record<string, Duration.Unit>> = {
  ms: "millis",
  milli: "millis",
  millis: "millis",
  s: "seconds",
  second: "seconds",
  seconds: "seconds",
  m: "minutes",
  minute: "minutes",
  minutes: "minutes",
  h: "hours",
  hour: "hours",
  hours: "hours",
  d: "days",
  day: "days",
  days: "days",
  w: "weeks",
  week: "weeks",
  weeks: "weeks"
}

/** `90s`, `15m`, `2h`, `7d`, `1w`, `500ms`, or `"15 minutes"`. */
export const duration = (flag: string, text: string): Effect.Effect<Duration.Duration, CliError> => {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/.exec(text.trim())
  const unit = match === null ? undefined : units[match[2] ?? ""]
  return match === null || unit === undefined
    ? Effect.fail(new CliError({ message: `${flag}: "${text}" is not a length of time (e.g. 90s, 15m, 2h, 7d)` }))
    : Effect.succeed(Duration.fromInputUnsafe(`${Number(match[1])} ${unit}`))
}

/** An ISO-8601 date-time, or a length of time meaning that long before now. */
export const pointInTime = (flag: string, text: string): Effect.Effect<DateTime.Utc, CliError> => {
  const absolute = DateTime.make(text)
  if (Option.isSome(absolute) && /^\d{4}-\d{2}-\d{2}/.test(text)) return Effect.succeed(DateTime.toUtc(absolute.value))
  return duration(flag, text).pipe(
    Effect.flatMap((ago) =>
      Effect.map(Clock.currentTimeMillis, (now) => DateTime.makeUnsafe(now - Duration.toMillis(ago)))
    ),
    Effect.mapError(
      () => new CliError({ message: `${flag}: "${text}" is neither an ISO date-time nor a length of time (2h, 7d)` })
    )
  )
}

/** The bytes of an argument: the text itself, or the file's content when it starts with `@`. */
export const bytesOf = (argument: string): Effect.Effect<Uint8Array, CliError, FileSystem.FileSystem> =>
  argument.startsWith("@")
    ? Effect.gen(function* () {
        const fs = yield* FileSystem.FileSystem
        return yield* fs
          .readFile(argument.slice(1))
          .pipe(
            Effect.mapError((error) => new CliError({ message: `cannot read ${argument.slice(1)}: ${error.message}` }))
          )
      })
    : Effect.succeed(new TextEncoder().encode(argument))

/** The JSON of an argument, inline or `@file`; what is wrong with it names where it came from. */
export const jsonOf = (argument: string): Effect.Effect<unknown, CliError, FileSystem.FileSystem> =>
  Effect.flatMap(bytesOf(argument), (bytes) => {
    const parsed = parseJson(new TextDecoder().decode(bytes))
    const origin = argument.startsWith("@") ? argument.slice(1) : "the payload"
    return Result.isSuccess(parsed)
      ? Effect.succeed(parsed.success)
      : Effect.fail(new CliError({ message: `${origin} is not JSON: ${parsed.failure}` }))
  })

/**
 * How log lines and error messages write a length of time: one unit, as a person reads it at a glance
 * (`"1098 ms"`, `"12.5 s"`, `"3.2 min"`, `"26 h"`), never Effect's `1s 97ms 915619ns`.
 *
 * Under 10 s in whole milliseconds; under 10 minutes in seconds, under 10 hours in minutes, above that
 * in hours, each with at most one decimal (`"30 s"`, not `"30.0 s"`). Configured values in topology
 * updates (`maxAge 1d`) keep Effect's format.
 */
import { Duration } from "effect"

const withOneDecimal = (value: number, unit: string): string => `${Number(value.toFixed(1))} ${unit}`

/** A number of milliseconds for a log line: `"1098 ms"`, `"12.5 s"`, `"3.2 min"`, `"26 h"`. */
export const formatMillis = (millis: number): string => {
  if (!Number.isFinite(millis)) return "for ever"
  const rounded = Math.round(millis)
  if (Math.abs(rounded) < 10_000) return `${rounded} ms`
  if (Math.abs(millis) < 600_000) return withOneDecimal(millis / 1000, "s")
  if (Math.abs(millis) < 36_000_000) return withOneDecimal(millis / 60_000, "min")
  return withOneDecimal(millis / 3_600_000, "h")
}

/** `formatMillis` of a `Duration` (or anything `Duration.fromInputUnsafe` reads). */
export const formatDuration = (duration: Duration.Input): string =>
  formatMillis(Duration.toMillis(Duration.fromInputUnsafe(duration)))

/**
 * Reading the library's metrics back in tests: the series of one metric in the current registry, and
 * the sum over the series whose labels include some given ones.
 */
import { Effect, Metric } from "effect"

export interface Series {
  readonly attributes: Readonly<Record<string, string>>
  /** A counter's count, a gauge's value, a histogram's observation count. */
  readonly value: number
  /** A histogram's sum; 0 for the others. */
  readonly sum: number
}

const numberOf = (state: unknown, key: string): number => {
  if (typeof state !== "object" || state === null || !(key in state)) return 0
  const value: unknown = Reflect.get(state, key)
  return typeof value === "number" ? value : typeof value === "bigint" ? Number(value) : 0
}

/** Every series of the metric named `name`. */
export const series = (name: string): Effect.Effect<ReadonlyArray<Series>> =>
  Effect.map(Metric.snapshot, (snapshots) =>
    snapshots
      .filter((snapshot) => snapshot.id === name)
      .map((snapshot) => ({
        attributes: snapshot.attributes ?? {},
        value: numberOf(snapshot.state, snapshot.type === "Gauge" ? "value" : "count"),
        sum: snapshot.type === "Histogram" ? numberOf(snapshot.state, "sum") : 0
      }))
  )

/** The sum of the values of the series of `name` whose labels include every one of `labels`. */
export const total = (name: string, labels: Readonly<Record<string, string>> = {}): Effect.Effect<number> =>
  Effect.map(series(name), (all) =>
    all
      .filter((one) => Object.entries(labels).every(([key, value]) => one.attributes[key] === value))
      .reduce((sum, one) => sum + one.value, 0)
  )

/**
 * The checks of single fields of a spec, each failing with the `TopologyError` that names the field and
 * says what it must be: names, subjects, positive integers, positive finite durations.
 *
 * Not here: what each field of a spec is and its default (`Topology.resolveStream`, `resolveConsumer`).
 */
import { Duration, Effect, Option } from "effect"
import { invalid, type Where } from "../../TopologyError.js"
import { isValid } from "../subjects.js"

/** What a stream or durable name must be, for messages. */
export const nameRequirement = "must be non-empty, without '.', '*', '>', '/', '\\' or whitespace"

/** A subject a stream or a filter may have: wildcards allowed. */
export const isSubject = (subject: string): boolean => isValid(subject, { wildcards: true })

/** `value` when it is left out or a positive safe integer. */
export const positiveInteger = (where: Where, field: string, value: number | undefined) =>
  value === undefined || (Number.isSafeInteger(value) && value > 0)
    ? Effect.succeed(value)
    : Effect.fail(invalid(where, field, `must be a positive integer, got ${value}`))

/** The duration of `input` when it is left out or positive and finite. */
export const positiveDuration = (where: Where, field: string, input: Duration.Input | undefined) => {
  if (input === undefined) return Effect.succeed(undefined)
  const duration = Duration.fromInput(input)
  return Option.isSome(duration) && Duration.isFinite(duration.value) && Duration.isPositive(duration.value)
    ? Effect.succeed(duration.value)
    : Effect.fail(invalid(where, field, `must be a positive finite duration, got ${String(input)}`))
}

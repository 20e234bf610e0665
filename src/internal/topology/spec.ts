/**
 * Stream and consumer specs checked and completed: a `StreamSpec` or `ConsumerSpec` becomes the seam's
 * full `StreamConfig` / `ConsumerConfig`, or a `TopologyError` naming the field that is wrong.
 *
 * Not public: `Topology` exposes `TopologyError`, `resolveStream` and `resolveConsumer`; drift is
 * `plan`'s.
 */
import { Duration, Effect, Option, Schema } from "effect"
import type { ConsumerConfig, StreamConfig } from "../../Broker.js"
import type { ConsumerSpec, StreamSpec } from "../../Topology.js"

/** Documented as `Topology.TopologyError`. */
export class TopologyError extends Schema.TaggedError<TopologyError>()("TopologyError", {
  message: Schema.String,
  field: Schema.String,
  stream: Schema.optional(Schema.String),
  consumer: Schema.optional(Schema.String),
  current: Schema.optional(Schema.String),
  desired: Schema.optional(Schema.String)
}) {}

/** The stream, or the consumer of a stream, that a spec, an error or a log line is about. */
export interface Where {
  readonly stream: string
  readonly consumer?: string | undefined
}

/** `stream X` or `consumer X/Y`, for messages. */
export const describeWhere = (where: Where): string =>
  where.consumer === undefined ? `stream ${where.stream}` : `consumer ${where.stream}/${where.consumer}`

/** The error of a field that is not valid, with `problem` saying why. */
export const invalid = (where: Where, field: string, problem: string) =>
  new TopologyError({ ...where, field, message: `${describeWhere(where)}: ${field} ${problem}` })

const isName = (name: string): boolean => /^[^.*>\s/\\]+$/.test(name)
const nameRequirement = "must be non-empty, without '.', '*', '>', '/', '\\' or whitespace"

const isSubject = (subject: string): boolean => {
  if (subject.length === 0 || /\s/.test(subject)) return false
  const tokens = subject.split(".")
  return tokens.every(
    (token, index) =>
      token.length > 0 && (token === "*" || (token === ">" && index === tokens.length - 1) || !/[*>]/.test(token))
  )
}

const positiveInteger = (where: Where, field: string, value: number | undefined) =>
  value === undefined || (Number.isSafeInteger(value) && value > 0)
    ? Effect.succeed(value)
    : Effect.fail(invalid(where, field, `must be a positive integer, got ${value}`))

const positiveDuration = (where: Where, field: string, input: Duration.Input | undefined) => {
  if (input === undefined) return Effect.succeed(undefined)
  const duration = Duration.fromInput(input)
  return Option.isSome(duration) && Duration.isFinite(duration.value) && Duration.isPositive(duration.value)
    ? Effect.succeed(duration.value)
    : Effect.fail(invalid(where, field, `must be a positive finite duration, got ${String(input)}`))
}

const defaultDuplicateWindow = Duration.minutes(2)

/** Documented as `Topology.resolveStream`. */
export const resolveStream = Effect.fnUntraced(function* (spec: StreamSpec) {
  const where = { stream: spec.name }
  if (!isName(spec.name)) return yield* invalid(where, "name", nameRequirement)
  if (spec.subjects.length === 0) return yield* invalid(where, "subjects", "must not be empty")
  const badSubject = spec.subjects.find((subject) => !isSubject(subject))
  if (badSubject !== undefined) {
    return yield* invalid(where, "subjects", `contains a malformed subject ${JSON.stringify(badSubject)}`)
  }
  const replicas = (yield* positiveInteger(where, "replicas", spec.replicas)) ?? 1
  if (replicas > 5) return yield* invalid(where, "replicas", `must be at most 5, got ${replicas}`)
  const maxAge = yield* positiveDuration(where, "maxAge", spec.maxAge)
  const duplicateWindow =
    (yield* positiveDuration(where, "duplicateWindow", spec.duplicateWindow)) ??
    (maxAge === undefined ? defaultDuplicateWindow : Duration.min(maxAge, defaultDuplicateWindow))
  if (maxAge !== undefined && Duration.isGreaterThan(duplicateWindow, maxAge)) {
    return yield* invalid(where, "duplicateWindow", `must not be longer than maxAge (${Duration.format(maxAge)})`)
  }
  const config: StreamConfig = {
    name: spec.name,
    subjects: [...spec.subjects],
    description: spec.description === "" ? undefined : spec.description,
    retention: spec.retention ?? "limits",
    storage: spec.storage ?? "file",
    discard: spec.discard ?? "old",
    maxAge,
    maxMessages: yield* positiveInteger(where, "maxMessages", spec.maxMessages),
    maxBytes: yield* positiveInteger(where, "maxBytes", spec.maxBytes),
    maxMessageSize: yield* positiveInteger(where, "maxMessageSize", spec.maxMessageSize),
    maxMessagesPerSubject: yield* positiveInteger(where, "maxMessagesPerSubject", spec.maxMessagesPerSubject),
    duplicateWindow,
    replicas
  }
  return config
})

/** Documented as `Topology.resolveConsumer`. */
export const resolveConsumer = Effect.fnUntraced(function* (spec: ConsumerSpec) {
  const where = { stream: spec.stream, consumer: spec.name }
  if (!isName(spec.stream)) return yield* invalid(where, "stream", "must be a valid stream name")
  if (!isName(spec.name)) return yield* invalid(where, "name", nameRequirement)
  const filter = spec.filterSubject
  if (filter !== undefined && !isSubject(filter)) {
    return yield* invalid(where, "filterSubject", `is a malformed subject ${JSON.stringify(filter)}`)
  }
  const config: ConsumerConfig = {
    stream: spec.stream,
    name: spec.name,
    description: spec.description === "" ? undefined : spec.description,
    filterSubject: filter === ">" ? undefined : filter,
    deliverPolicy: spec.deliverPolicy ?? "all",
    ackWait: (yield* positiveDuration(where, "ackWait", spec.ackWait)) ?? Duration.seconds(30),
    maxDeliver: yield* positiveInteger(where, "maxDeliver", spec.maxDeliver),
    maxAckPending: (yield* positiveInteger(where, "maxAckPending", spec.maxAckPending)) ?? 1000
  }
  return config
})

/**
 * Streams and durable consumers declared as data, and provisioned idempotently through the `Broker`.
 *
 * A `StreamSpec` or `ConsumerSpec` names only what differs from the defaults; resolving it validates it
 * and fills in every default, giving the seam's `StreamConfig` / `ConsumerConfig`. `provision` then makes
 * the broker match: it creates what is missing, updates drift the server can update, and refuses (with a
 * `TopologyError`, before changing anything) drift it cannot. Streams and consumers that the topology
 * does not name are left alone; nothing is ever deleted by `provision`.
 *
 * Which fields can change in place (nats-server 2.9.10, checked by the tests):
 * - stream: `subjects`, `description`, `discard`, `maxAge`, `maxMessages`, `maxBytes`, `maxMessageSize`,
 *   `maxMessagesPerSubject`, `duplicateWindow`, `replicas` (on a cluster) are updated; `storage` and
 *   `retention` cannot change: delete and recreate the stream (and lose its messages) to change them.
 * - consumer: `description`, `filterSubject`, `ackWait`, `maxDeliver`, `maxAckPending` are updated;
 *   `deliverPolicy` cannot change: delete the durable (and its position) to change it.
 *
 * Migrating from the Python package: its `GLAM_EVENTS` stream also carried `dlq.>`. Provisioning
 * `Topology.glam` over it first removes `dlq.>` from `GLAM_EVENTS`, then creates `GLAM_DLQ` on `dlq.>`
 * (the other order is refused: two streams may not share subjects). Dead letters already stored in
 * `GLAM_EVENTS` stay there under their `dlq.*` subjects and expire with its 24 h max age; nothing copies
 * them. New dead letters land in `GLAM_DLQ` and are kept for 30 days.
 *
 * This module is not the publishing or consuming path; it only shapes the broker they use.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Layer, Option, Schema } from "effect"
import {
  Broker,
  type ConsumerConfig,
  type DeliverPolicy,
  type Discard,
  type Retention,
  type Storage,
  type StreamConfig,
  type StreamInfo
} from "./Broker.js"
import type { NatsError } from "./NatsError.js"

/**
 * A stream as data. Defaults: retention `limits`, storage `file`, discard `old`, limits unlimited,
 * duplicate window 2 minutes (or `maxAge` when shorter), 1 replica.
 *
 * @category models
 * @since 0.1.0
 */
export interface StreamSpec {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
  readonly description?: string | undefined
  readonly retention?: Retention | undefined
  readonly storage?: Storage | undefined
  readonly discard?: Discard | undefined
  readonly maxAge?: Duration.Input | undefined
  readonly maxMessages?: number | undefined
  readonly maxBytes?: number | undefined
  readonly maxMessageSize?: number | undefined
  readonly maxMessagesPerSubject?: number | undefined
  /** The window in which a repeated `Nats-Msg-Id` is stored only once. */
  readonly duplicateWindow?: Duration.Input | undefined
  readonly replicas?: number | undefined
}

/**
 * A durable pull consumer (explicit acks) as data. Defaults: deliver policy `all`, ack wait 30 seconds,
 * 1000 unacknowledged messages at most, redelivery without limit, no filter (every subject of the stream).
 *
 * @category models
 * @since 0.1.0
 */
export interface ConsumerSpec {
  readonly stream: string
  /** The durable name. */
  readonly name: string
  readonly description?: string | undefined
  readonly filterSubject?: string | undefined
  readonly deliverPolicy?: DeliverPolicy | undefined
  readonly ackWait?: Duration.Input | undefined
  readonly maxAckPending?: number | undefined
  readonly maxDeliver?: number | undefined
}

/**
 * The streams and consumers a service needs.
 *
 * @category models
 * @since 0.1.0
 */
export interface Topology {
  readonly streams: ReadonlyArray<StreamSpec>
  readonly consumers: ReadonlyArray<ConsumerSpec>
}

/**
 * Builds a topology; both lists may be left out.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (input: {
  readonly streams?: ReadonlyArray<StreamSpec>
  readonly consumers?: ReadonlyArray<ConsumerSpec>
}): Topology => ({ streams: input.streams ?? [], consumers: input.consumers ?? [] })

/**
 * A spec that is not valid, or drift the server cannot apply in place, naming the stream, the consumer
 * and the field (with the current and desired values for drift).
 *
 * @category errors
 * @since 0.1.0
 */
export class TopologyError extends Schema.TaggedError<TopologyError>()("TopologyError", {
  message: Schema.String,
  field: Schema.String,
  stream: Schema.optional(Schema.String),
  consumer: Schema.optional(Schema.String),
  current: Schema.optional(Schema.String),
  desired: Schema.optional(Schema.String)
}) {}

interface Where {
  readonly stream?: string | undefined
  readonly consumer?: string | undefined
}

const describe = (where: Where): string =>
  where.consumer === undefined ? `stream ${where.stream}` : `consumer ${where.stream}/${where.consumer}`

const invalid = (where: Where, field: string, problem: string) =>
  new TopologyError({ ...where, field, message: `${describe(where)}: ${field} ${problem}` })

const isName = (name: string): boolean => /^[^.*>\s/\\]+$/.test(name)

const isSubject = (subject: string): boolean => {
  if (subject.length === 0 || /\s/.test(subject)) return false
  const tokens = subject.split(".")
  return tokens.every(
    (token, index) =>
      token.length > 0 && (token === "*" || (token === ">" && index === tokens.length - 1) || !/[*>]/.test(token))
  )
}

const isPositiveInteger = (n: number): boolean => Number.isSafeInteger(n) && n > 0

const positiveInteger = (where: Where, field: string, value: number | undefined) =>
  value === undefined || isPositiveInteger(value)
    ? Effect.succeed(value)
    : Effect.fail(invalid(where, field, `must be a positive integer, got ${value}`))

const positiveDuration = (where: Where, field: string, input: Duration.Input | undefined) => {
  if (input === undefined) return Effect.succeed(undefined)
  const duration = Duration.fromInput(input)
  return Option.isSome(duration) && Duration.isFinite(duration.value) && Duration.isPositive(duration.value)
    ? Effect.succeed(duration.value)
    : Effect.fail(invalid(where, field, `must be a positive finite duration, got ${String(input)}`))
}

const DEFAULT_DUPLICATE_WINDOW = Duration.minutes(2)

/**
 * Validates a stream spec and fills in its defaults.
 *
 * @category constructors
 * @since 0.1.0
 */
export const resolveStream = Effect.fnUntraced(function* (spec: StreamSpec) {
  const where = { stream: spec.name }
  if (!isName(spec.name))
    return yield* invalid(where, "name", "must be non-empty, without '.', '*', '>', '/', '\\' or whitespace")
  if (spec.subjects.length === 0) return yield* invalid(where, "subjects", "must not be empty")
  const badSubject = spec.subjects.find((subject) => !isSubject(subject))
  if (badSubject !== undefined)
    return yield* invalid(where, "subjects", `contains a malformed subject ${JSON.stringify(badSubject)}`)
  const replicas = (yield* positiveInteger(where, "replicas", spec.replicas)) ?? 1
  if (replicas > 5) return yield* invalid(where, "replicas", `must be at most 5, got ${replicas}`)
  const maxAge = yield* positiveDuration(where, "maxAge", spec.maxAge)
  const duplicateWindow =
    (yield* positiveDuration(where, "duplicateWindow", spec.duplicateWindow)) ??
    (maxAge === undefined ? DEFAULT_DUPLICATE_WINDOW : Duration.min(maxAge, DEFAULT_DUPLICATE_WINDOW))
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

/**
 * Validates a consumer spec and fills in its defaults. A filter of `>` means no filter.
 *
 * @category constructors
 * @since 0.1.0
 */
export const resolveConsumer = Effect.fnUntraced(function* (spec: ConsumerSpec) {
  const where = { stream: spec.stream, consumer: spec.name }
  if (!isName(spec.stream)) return yield* invalid(where, "stream", "must be a valid stream name")
  if (!isName(spec.name))
    return yield* invalid(where, "name", "must be non-empty, without '.', '*', '>', '/', '\\' or whitespace")
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

/**
 * One field that differs between the broker and the topology, rendered for people.
 *
 * @category models
 * @since 0.1.0
 */
export interface FieldChange {
  readonly field: string
  readonly current: string
  readonly desired: string
}

/**
 * What `provision` did to one stream or consumer; `changes` is empty unless it was updated.
 *
 * @category models
 * @since 0.1.0
 */
export interface Outcome {
  readonly stream: string
  /** Absent for a stream. */
  readonly consumer?: string | undefined
  readonly action: "created" | "updated" | "unchanged"
  readonly changes: ReadonlyArray<FieldChange>
}

/**
 * What `provision` did, in the order of the topology.
 *
 * @category models
 * @since 0.1.0
 */
export interface Report {
  readonly streams: ReadonlyArray<Outcome>
  readonly consumers: ReadonlyArray<Outcome>
}

interface FieldRule<C> {
  readonly updatable: boolean
  readonly render: (config: C) => string
}

const limit = (value: number | undefined): string => (value === undefined ? "unlimited" : String(value))
const age = (value: Duration.Duration | undefined): string =>
  value === undefined ? "unlimited" : Duration.format(value)
const text = (value: string | undefined): string => (value === undefined ? "none" : JSON.stringify(value))

const streamRules: { readonly [K in Exclude<keyof StreamConfig, "name">]: FieldRule<StreamConfig> } = {
  subjects: { updatable: true, render: (c) => [...c.subjects].sort().join(", ") },
  description: { updatable: true, render: (c) => text(c.description) },
  retention: { updatable: false, render: (c) => c.retention },
  storage: { updatable: false, render: (c) => c.storage },
  discard: { updatable: true, render: (c) => c.discard },
  maxAge: { updatable: true, render: (c) => age(c.maxAge) },
  maxMessages: { updatable: true, render: (c) => limit(c.maxMessages) },
  maxBytes: { updatable: true, render: (c) => limit(c.maxBytes) },
  maxMessageSize: { updatable: true, render: (c) => limit(c.maxMessageSize) },
  maxMessagesPerSubject: { updatable: true, render: (c) => limit(c.maxMessagesPerSubject) },
  duplicateWindow: { updatable: true, render: (c) => Duration.format(c.duplicateWindow) },
  replicas: { updatable: true, render: (c) => String(c.replicas) }
}

const consumerRules: { readonly [K in Exclude<keyof ConsumerConfig, "stream" | "name">]: FieldRule<ConsumerConfig> } = {
  description: { updatable: true, render: (c) => text(c.description) },
  filterSubject: { updatable: true, render: (c) => c.filterSubject ?? ">" },
  deliverPolicy: { updatable: false, render: (c) => c.deliverPolicy },
  ackWait: { updatable: true, render: (c) => Duration.format(c.ackWait) },
  maxDeliver: { updatable: true, render: (c) => limit(c.maxDeliver) },
  maxAckPending: { updatable: true, render: (c) => String(c.maxAckPending) }
}

interface Drift extends FieldChange {
  readonly updatable: boolean
}

const diff = <C>(rules: Readonly<Record<string, FieldRule<C>>>, current: C, desired: C): ReadonlyArray<Drift> =>
  Object.entries(rules).flatMap(([field, rule]) => {
    const [now, wanted] = [rule.render(current), rule.render(desired)]
    return now === wanted ? [] : [{ field, current: now, desired: wanted, updatable: rule.updatable }]
  })

interface Plan<C> {
  readonly where: Where
  readonly desired: C
  readonly current: Option.Option<C>
  readonly changes: ReadonlyArray<Drift>
}

const plan = <C>(
  rules: Readonly<Record<string, FieldRule<C>>>,
  where: Where,
  desired: C,
  current: Option.Option<C>
) => {
  const changes = Option.isSome(current) ? diff(rules, current.value, desired) : []
  const refused = changes.find((change) => !change.updatable)
  if (refused === undefined) return Effect.succeed<Plan<C>>({ where, desired, current, changes })
  return Effect.fail(
    new TopologyError({
      ...where,
      field: refused.field,
      current: refused.current,
      desired: refused.desired,
      message: `${describe(where)}: ${refused.field} cannot change from ${refused.current} to ${refused.desired} in place; delete and recreate it, or keep ${refused.current}`
    })
  )
}

const apply = <C>(
  step: Plan<C>,
  create: (config: C) => Effect.Effect<unknown, NatsError>,
  update: (config: C) => Effect.Effect<unknown, NatsError>
): Effect.Effect<Outcome, NatsError> => {
  const outcome = (action: Outcome["action"]): Outcome => ({
    stream: step.where.stream ?? "",
    ...(step.where.consumer === undefined ? {} : { consumer: step.where.consumer }),
    action,
    changes: step.changes.map(({ field, current, desired }) => ({ field, current, desired }))
  })
  if (Option.isNone(step.current)) {
    return create(step.desired).pipe(
      Effect.tap(() => Effect.logInfo(`Topology: created ${describe(step.where)}`)),
      Effect.as(outcome("created"))
    )
  }
  if (step.changes.length === 0) return Effect.succeed(outcome("unchanged"))
  const summary = step.changes.map((c) => `${c.field}: ${c.current} -> ${c.desired}`).join("; ")
  return update(step.desired).pipe(
    Effect.tap(() => Effect.logInfo(`Topology: updated ${describe(step.where)} (${summary})`)),
    Effect.as(outcome("updated"))
  )
}

const duplicateOf = <A>(items: ReadonlyArray<A>, key: (item: A) => string): A | undefined =>
  items.find((item, index) => items.findIndex((other) => key(other) === key(item)) !== index)

/**
 * Makes the broker match the topology: creates what is missing, updates what drifted, and fails before
 * changing anything if some drift cannot be applied in place. Running it again changes nothing.
 *
 * Existing streams are updated before missing ones are created, so that subjects can move from an old
 * stream to a new one in a single run.
 *
 * @category constructors
 * @since 0.1.0
 */
export const provision = Effect.fn("Topology.provision")(function* (topology: Topology) {
  const streams = yield* Effect.forEach(topology.streams, resolveStream)
  const consumers = yield* Effect.forEach(topology.consumers, resolveConsumer)
  const sameStream = duplicateOf(streams, (s) => s.name)
  if (sameStream !== undefined) return yield* invalid({ stream: sameStream.name }, "name", "is declared twice")
  const sameConsumer = duplicateOf(consumers, (c) => `${c.stream}/${c.name}`)
  if (sameConsumer !== undefined) {
    return yield* invalid({ stream: sameConsumer.stream, consumer: sameConsumer.name }, "name", "is declared twice")
  }

  const broker = yield* Broker
  const streamPlans = yield* Effect.forEach(streams, (desired) =>
    broker.streamInfo(desired.name).pipe(
      Effect.flatMap((info) =>
        plan(
          streamRules,
          { stream: desired.name },
          desired,
          Option.map(info, (i) => i.config)
        )
      )
    )
  )
  const streamsToCreate = new Set(streamPlans.filter((p) => Option.isNone(p.current)).map((p) => p.desired.name))
  const consumerPlans = yield* Effect.forEach(consumers, (desired) =>
    (streamsToCreate.has(desired.stream)
      ? Effect.succeed(Option.none())
      : broker.consumerInfo(desired.stream, desired.name)
    ).pipe(
      Effect.flatMap((info) =>
        plan(
          consumerRules,
          { stream: desired.stream, consumer: desired.name },
          desired,
          Option.map(info, (i) => i.config)
        )
      )
    )
  )

  const updatesFirst = [
    ...streamPlans.filter((p) => Option.isSome(p.current)),
    ...streamPlans.filter((p) => Option.isNone(p.current))
  ]
  const streamOutcomes = yield* Effect.forEach(updatesFirst, (p) => apply(p, broker.addStream, broker.updateStream))
  const consumerOutcomes = yield* Effect.forEach(consumerPlans, (p) =>
    apply(p, broker.addConsumer, broker.updateConsumer)
  )
  const report: Report = {
    streams: streams.flatMap((s) => streamOutcomes.filter((o) => o.stream === s.name)),
    consumers: consumerOutcomes
  }
  return report
})

/**
 * Provisions the topology when the layer is built, so that nothing runs against a missing stream.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (topology: Topology): Layer.Layer<never, TopologyError | NatsError, Broker> =>
  Layer.effectDiscard(provision(topology))

/**
 * Creates the stream when it does not exist and leaves an existing one as it is (even if it differs):
 * the Python package's `ensure_stream`. Prefer `provision`, which also reconciles drift.
 *
 * @category constructors
 * @since 0.1.0
 */
export const ensureStream = Effect.fnUntraced(function* (spec: StreamSpec) {
  const config = yield* resolveStream(spec)
  const broker = yield* Broker
  const existing = yield* broker.streamInfo(config.name)
  if (Option.isSome(existing)) return existing.value
  const created: StreamInfo = yield* broker.addStream(config)
  yield* Effect.logInfo(`Topology: created stream ${config.name}`)
  return created
})

/**
 * Deletes a stream and its messages; `false` when there was no such stream.
 *
 * @category constructors
 * @since 0.1.0
 */
export const deleteStream = (name: string): Effect.Effect<boolean, NatsError, Broker> =>
  Broker.use((broker) => broker.deleteStream(name)).pipe(
    Effect.tap((deleted) => (deleted ? Effect.logInfo(`Topology: deleted stream ${name}`) : Effect.void))
  )

/**
 * The Python package's `get_stream_info`: a stream's name, subjects and size.
 *
 * @category models
 * @since 0.1.0
 */
export interface StreamSummary {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
  readonly messages: number
  readonly bytes: number
}

/**
 * A stream's name, subjects, message count and bytes, or `Option.none()` when it does not exist.
 *
 * @category constructors
 * @since 0.1.0
 */
export const streamInfo = (name: string): Effect.Effect<Option.Option<StreamSummary>, NatsError, Broker> =>
  Broker.use((broker) => broker.streamInfo(name)).pipe(
    Effect.map(
      Option.map(({ config, state }) => ({
        name: config.name,
        subjects: config.subjects,
        messages: state.messages,
        bytes: state.bytes
      }))
    )
  )

/**
 * The name of the GLAM event stream, shared with the Python services.
 *
 * @category constants
 * @since 0.1.0
 */
export const glamEventsStreamName = "GLAM_EVENTS"

/**
 * The name of the GLAM dead-letter stream.
 *
 * @category constants
 * @since 0.1.0
 */
export const glamDeadLetterStreamName = "GLAM_DLQ"

/**
 * `GLAM_EVENTS` on `evt.>` and `cmd.>`: limits retention, file storage, 24 h, 1,000,000 messages (the
 * Python package's values), 2-minute duplicate window.
 *
 * @category constants
 * @since 0.1.0
 */
export const glamEvents: StreamSpec = {
  name: glamEventsStreamName,
  subjects: ["evt.>", "cmd.>"],
  retention: "limits",
  storage: "file",
  maxAge: Duration.hours(24),
  maxMessages: 1_000_000,
  duplicateWindow: Duration.minutes(2)
}

/**
 * `GLAM_DLQ` on `dlq.>`: file storage, dead letters kept 30 days, longer than the events they replace.
 *
 * @category constants
 * @since 0.1.0
 */
export const glamDeadLetters: StreamSpec = {
  name: glamDeadLetterStreamName,
  subjects: ["dlq.>"],
  retention: "limits",
  storage: "file",
  maxAge: Duration.days(30)
}

/**
 * The GLAM default topology: `GLAM_EVENTS` and `GLAM_DLQ`, no consumers (subscribers declare theirs).
 *
 * @category constants
 * @since 0.1.0
 */
export const glam: Topology = make({ streams: [glamEvents, glamDeadLetters] })

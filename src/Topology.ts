/**
 * Streams and durable consumers declared as data, and provisioned idempotently through the `Broker`.
 *
 * A `StreamSpec` or `ConsumerSpec` names only what differs from the defaults; resolving it validates it
 * and fills in every default, giving the seam's `StreamConfig` / `ConsumerConfig`. `provision` then makes
 * the broker match: it creates what is missing, updates drift the server can update, and refuses (with a
 * `TopologyError`, before changing anything) drift it cannot; `plan` tells all of it and changes nothing.
 * Streams and consumers that the topology does not name are left alone; nothing is ever deleted by
 * `provision`. Creations are logged at INFO; every update is logged at WARN with each field's old and
 * new values (`Topology: updated stream ORDERS; maxAge: 1d -> 2d`), since it changes what others rely on.
 *
 * Which fields can change in place (as nats-server 2.9.10 answers):
 * - stream: `subjects`, `description`, `discard`, `maxAge`, `maxMessages`, `maxBytes`, `maxMessageSize`,
 *   `maxMessagesPerSubject`, `duplicateWindow` and `replicas` (on a cluster) are updated; `storage` and
 *   `retention` cannot change: delete and recreate the stream (losing its messages) to change them.
 * - consumer: `description`, `filterSubject`, `ackWait`, `maxDeliver` and `maxAckPending` are updated;
 *   `deliverPolicy` cannot change: delete the durable (losing its position) to change it. Consumers are
 *   always durable, pull, with explicit acks.
 *
 * Replicas are the operator's: a spec that leaves `replicas` out keeps what the server has (a stream it
 * creates gets 1), so a service never turns an R3 stream into R1 by being deployed. More replicas than
 * the server has are applied in place; fewer are refused with a `TopologyError` naming both numbers,
 * unless the spec sets `allowFewerReplicas` (the server itself would lower them without a word).
 *
 * While JetStream does not answer (a cluster electing a leader, a server restarting), `provision` waits:
 * each broker call that fails with a retryable `NatsError` is tried again on one schedule for the whole
 * run (`defaultRetry`: up to 60 s in all), with a warning when the waiting starts, a summary every 10 s
 * and a line when it ends. A failure that is not retryable ends the run at once.
 *
 * This module is not the publishing or consuming path; it only shapes the broker they use.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Layer, Option, Schedule } from "effect"
import {
  Broker,
  type ConsumerConfig,
  type DeliverPolicy,
  type Discard,
  type Retention,
  type Storage,
  type StreamConfig
} from "./Broker.js"
import { deadLetterSubjectsOf } from "./internal/deadLetter/subjects.js"
import { isName } from "./internal/subjects.js"
import * as drift from "./internal/topology/drift.js"
import { isSubject, nameRequirement, positiveDuration, positiveInteger } from "./internal/topology/fields.js"
import * as planning from "./internal/topology/plan.js"
import type { NatsError } from "./NatsError.js"
import { invalid, TopologyError } from "./TopologyError.js"

/**
 * A stream as data. Defaults: retention `limits`, storage `file`, discard `old`, limits unlimited,
 * duplicate window 2 minutes (or `maxAge` when shorter); replicas: those the server has, 1 for a new stream.
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
  /**
   * How many servers keep a copy (1 to 5; more than 1 needs a cluster). Left out, an existing stream
   * keeps the replicas it has and a new one gets 1.
   */
  readonly replicas?: number | undefined
  /**
   * Lets `provision` lower the replicas of an existing stream to `replicas`. Without it, fewer replicas
   * than the server has are refused with a `TopologyError`.
   */
  readonly allowFewerReplicas?: boolean | undefined
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
 * A spec that is not valid, or drift the server cannot apply in place (the module `TopologyError`).
 *
 * @category errors
 * @since 0.1.0
 */
export { TopologyError }

// The server's own default (nats-server gives a stream created without one 2 minutes).
const defaultDuplicateWindow = Duration.minutes(2)

/**
 * Validates a stream spec and fills in its defaults. Replicas left out resolve to 1, what a new stream
 * gets; `provision` keeps those of an existing stream instead.
 *
 * @category constructors
 * @since 0.1.0
 */
export const resolveStream = Effect.fnUntraced(function* (
  spec: StreamSpec
): Effect.fn.Return<StreamConfig, TopologyError> {
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

/**
 * Validates a consumer spec and fills in its defaults. A filter of `>` means no filter.
 *
 * @category constructors
 * @since 0.1.0
 */
export const resolveConsumer = Effect.fnUntraced(function* (
  spec: ConsumerSpec
): Effect.fn.Return<ConsumerConfig, TopologyError> {
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

/**
 * One field that differs between the broker and the topology, rendered for people.
 *
 * @category models
 * @since 0.1.0
 */
export type FieldChange = drift.FieldChange

/**
 * What `provision` did to one stream or consumer; `changes` is empty unless it was updated.
 *
 * @category models
 * @since 0.1.0
 */
export type Outcome = drift.Outcome

/**
 * What `provision` did, stream by stream and consumer by consumer.
 *
 * @category models
 * @since 0.1.0
 */
export interface Report {
  readonly streams: ReadonlyArray<Outcome>
  readonly consumers: ReadonlyArray<Outcome>
}

/**
 * How `provision` waits for JetStream.
 *
 * @category models
 * @since 0.2.0
 */
export interface ProvisionOptions {
  /**
   * When to try a broker call again that failed with a retryable `NatsError`. One schedule serves every
   * call of a run, so a limit of time or attempts holds for the run in all. Default: `defaultRetry`.
   */
  readonly retry?: Schedule.Schedule<unknown, NatsError> | undefined
}

/**
 * The default wait of `provision`: exponential from 200 ms (jittered), each wait at most 2 s, for up to
 * 60 s in all; long enough for a cluster to elect a leader or a server to restart.
 *
 * @category provisioning
 * @since 0.2.0
 */
export const defaultRetry: Schedule.Schedule<unknown, NatsError> = Schedule.min([
  Schedule.exponential("200 millis").pipe(Schedule.jittered),
  Schedule.spaced("2 seconds")
]).pipe(Schedule.upTo({ duration: "60 seconds" }))

/**
 * Makes the broker match the topology: creates what is missing, updates what drifted, and fails before
 * changing anything if some drift cannot be applied in place. Running it again changes nothing.
 *
 * Two of the topology's streams whose subjects overlap are refused with a `TopologyError` naming both
 * and their subjects, before the broker is asked; a stream overlapping one already on the server fails
 * with the broker's `Rejected` reason, which names the streams in its way and their subjects.
 *
 * Existing streams are updated before missing ones are created, so that subjects can move from an old
 * stream to a new one in a single run; the report lists streams in that order. Broker calls that fail
 * with a retryable `NatsError` are tried again on `options.retry`; what was already applied stays
 * applied and is not planned again.
 *
 * @category provisioning
 * @since 0.1.0
 */
export const provision = Effect.fn("Topology.provision")(function* (
  topology: Topology,
  options: ProvisionOptions = {}
): Effect.fn.Return<Report, TopologyError | NatsError, Broker> {
  const { streams, consumers } = yield* resolveTogether(topology)
  const broker = yield* Broker
  const call = yield* drift.retrying(options.retry ?? defaultRetry)
  // Every plan is made before anything is applied, so that drift the server would refuse changes nothing.
  const plans = yield* planning.plansOf(call, streams, consumers)
  const [refused] = [...plans.streams, ...plans.consumers].flatMap((p) => p.refusals)
  if (refused !== undefined) return yield* refused
  const report: Report = {
    streams: yield* Effect.forEach(plans.streams, (p) =>
      drift.apply(
        p,
        (config) => call(broker.addStream(config)),
        (config) => call(broker.updateStream(config))
      )
    ),
    consumers: yield* Effect.forEach(plans.consumers, (p) =>
      drift.apply(
        p,
        (config) => call(broker.addConsumer(config)),
        (config) => call(broker.updateConsumer(config))
      )
    )
  }
  return report
})

// Every spec resolved, then checked against the others.
const resolveTogether = Effect.fnUntraced(function* (topology: Topology) {
  const streams = yield* Effect.forEach(topology.streams, (spec) =>
    Effect.map(resolveStream(spec), (config) => ({ spec, config }))
  )
  const consumers = yield* Effect.forEach(topology.consumers, resolveConsumer)
  yield* planning.checkTogether(streams, consumers)
  return { streams, consumers }
})

/**
 * What `provision` would do to one stream or consumer: `create`, `update` (`changes` gives each field's
 * current and desired value), `unchanged`, or `refused`, with `reasons` as `TopologyError`s: a field the
 * server cannot change in place, replicas going down, a consumer on a stream that neither exists nor is
 * declared (`changes` then lists what could be updated besides).
 *
 * @category models
 * @since 0.3.0
 */
export type PlanEntry = drift.PlanEntry

/**
 * What `provision` would do, stream by stream and consumer by consumer.
 *
 * @category models
 * @since 0.3.0
 */
export interface Plan {
  readonly streams: ReadonlyArray<PlanEntry>
  readonly consumers: ReadonlyArray<PlanEntry>
}

/**
 * What `provision` would do, without changing anything: one entry per stream and consumer, streams in
 * the order `provision` applies them. Where `provision` fails at the first drift it cannot apply,
 * `plan` reports every one as `refused`, and a consumer on a stream that neither exists nor is declared
 * too (`provision` would fail creating it). It only reads the broker, retrying as `options.retry` says;
 * invalid specs fail with a `TopologyError` as they do for `provision`.
 *
 * @category provisioning
 * @since 0.3.0
 */
export const plan = Effect.fn("Topology.plan")(function* (
  topology: Topology,
  options: ProvisionOptions = {}
): Effect.fn.Return<Plan, TopologyError | NatsError, Broker> {
  const { streams, consumers } = yield* resolveTogether(topology)
  const call = yield* drift.retrying(options.retry ?? defaultRetry)
  return yield* planning.planOf(call, streams, consumers)
})

/**
 * Provisions the topology when the layer is built, so that nothing runs against a missing stream.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  topology: Topology,
  options: ProvisionOptions = {}
): Layer.Layer<never, TopologyError | NatsError, Broker> => Layer.effectDiscard(provision(topology, options))

/**
 * Creates the stream when it does not exist and leaves an existing one as it is (even if it differs):
 * the Python package's `ensure_stream`. Prefer `provision`, which also reconciles drift.
 *
 * @category provisioning
 * @since 0.1.0
 */
export const ensureStream = Effect.fnUntraced(function* (spec: StreamSpec) {
  const config = yield* resolveStream(spec)
  const broker = yield* Broker
  const existing = yield* broker.streamInfo(config.name)
  if (Option.isSome(existing)) return existing.value
  const created = yield* broker.addStream(config)
  yield* Effect.logInfo(`Topology: created stream ${config.name}`)
  return created
})

/**
 * Deletes a stream and its messages; `false` when there was no such stream.
 *
 * @category provisioning
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
 * @category accessors
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
 * Fields that replace those `withDeadLetters` derives (`name`, `subjects`, `maxAge`, ...).
 *
 * @category models
 * @since 0.2.0
 */
export interface DeadLetterOptions {
  /** Over `<NAME>_DLQ`. */
  readonly deadLetters?: Partial<StreamSpec> | undefined
  /** Over `<NAME>_ADVISORIES`. */
  readonly advisories?: Partial<StreamSpec> | undefined
}

/**
 * A stream, then its dead-letter stream, then its advisory stream.
 *
 * @category models
 * @since 0.2.0
 */
export type StreamWithDeadLetters = readonly [stream: StreamSpec, deadLetters: StreamSpec, advisories: StreamSpec]

/**
 * Declares a stream with its dead-letter and advisory streams, so that nothing its subscribers give up
 * on is lost: `<NAME>_DLQ` on the `dlq.` form of its subjects (`evt.orders.>` gives `dlq.orders.>`, as
 * `DeadLetter.subjectFor` maps `evt.orders.placed.v1`) and the reserved subjects of its chunks, gone
 * messages and replay markers, 30 days, 1 h duplicate window; `<NAME>_ADVISORIES` on
 * `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<NAME>.>`, 30 days. Both take the stream's `replicas` and
 * `allowFewerReplicas`; `options` replace any derived field. The GLAM topology (`Streams.topology` in
 * `@glam/messaging/glam`) is this call on `GLAM_EVENTS`.
 *
 * Gotchas: the server refuses streams with overlapping subjects, so beside the GLAM topology (whose `GLAM_DLQ` and
 * `GLAM_ADVISORIES` take every stream's dead letters and advisories) `<NAME>_DLQ` and `<NAME>_ADVISORIES`
 * are refused and not needed: a subscriber starts with whichever stream covers its subjects. A stream
 * on subjects of the `dlq.` form (`>`, `*.orders.>`) would take its own dead letters: it cannot have any.
 *
 * @example
 * const orders: Topology.StreamSpec = { name: "ORDERS", subjects: ["evt.orders.>"] }
 * // ORDERS, ORDERS_DLQ on dlq.orders.> and ORDERS_ADVISORIES
 * const topology = Topology.make({ streams: Topology.withDeadLetters(orders) })
 *
 * @category constructors
 * @since 0.2.0
 */
export const withDeadLetters = (stream: StreamSpec, options: DeadLetterOptions = {}): StreamWithDeadLetters => {
  const shared: Partial<StreamSpec> = {
    ...(stream.replicas === undefined ? {} : { replicas: stream.replicas }),
    ...(stream.allowFewerReplicas === undefined ? {} : { allowFewerReplicas: stream.allowFewerReplicas })
  }
  const deadLetterName = options.deadLetters?.name ?? `${stream.name}_DLQ`
  const deadLetters: StreamSpec = {
    name: deadLetterName,
    subjects: deadLetterSubjectsOf(stream.name, stream.subjects, deadLetterName),
    retention: "limits",
    storage: "file",
    maxAge: Duration.days(30),
    duplicateWindow: Duration.hours(1),
    ...shared,
    ...options.deadLetters
  }
  const advisories: StreamSpec = {
    name: `${stream.name}_ADVISORIES`,
    subjects: [`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream.name}.>`],
    retention: "limits",
    storage: "file",
    maxAge: Duration.days(30),
    ...shared,
    ...options.advisories
  }
  return [stream, deadLetters, advisories]
}

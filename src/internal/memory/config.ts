/**
 * The configuration rules of the in-memory broker, as nats-server 2.9 applies them: the defaults the
 * server fills in, what it refuses on create (malformed names and subjects, subjects another stream
 * already has, a duplicate window longer than the max age, replicas on a single server, a consumer
 * filter outside its stream), and what it refuses on update (storage, retention, deliver policy). The
 * reasons carry the server's words and API codes, so a refusal reads the same on both brokers.
 *
 * Configurations are also normalised as `NatsBroker` reads them back (empty description and `>` filter
 * as `undefined`, durations in milliseconds), so that infos compare equal across brokers.
 *
 * Retention other than `limits` is refused: the in-memory broker does not implement interest or
 * work-queue retention, and accepting them would silently behave as limits.
 */
import { Duration } from "effect"
import type { ConsumerConfig, StreamConfig } from "../../Broker.js"
import * as NatsError from "../../NatsError.js"
import { overlapping, subjectsOverlap } from "../brokerErrors.js"
import { hasWildcard, isName, isSubsetOf, isValid, overlaps } from "../subjects.js"

/** nats-server's default max payload, which the client enforces on headers plus payload. */
export const MAX_PAYLOAD = 1024 * 1024

const DEFAULT_DUPLICATE_WINDOW = Duration.minutes(2)

const rejected = (message: string, code: number): NatsError.Rejected => new NatsError.Rejected({ message, code })

// As the server reports durations back: whole milliseconds when they are.
const normalDuration = (duration: Duration.Duration): Duration.Duration => {
  const nanos = Duration.toNanosUnsafe(duration)
  return nanos % 1_000_000n === 0n ? Duration.millis(Number(nanos / 1_000_000n)) : Duration.nanos(nanos)
}

const limit = (value: number | undefined): number | undefined => (value === undefined || value <= 0 ? undefined : value)
const text = (value: string | undefined): string | undefined => (value === "" ? undefined : value)

/** The configuration as the server keeps it: defaults filled in, "unlimited" as `undefined`. */
export const resolveStream = (config: StreamConfig): StreamConfig => {
  const maxAge =
    config.maxAge === undefined || !Duration.isPositive(config.maxAge) ? undefined : normalDuration(config.maxAge)
  const window = Duration.isPositive(config.duplicateWindow)
    ? config.duplicateWindow
    : maxAge === undefined
      ? DEFAULT_DUPLICATE_WINDOW
      : Duration.min(maxAge, DEFAULT_DUPLICATE_WINDOW)
  return {
    name: config.name,
    subjects: config.subjects.length === 0 ? [config.name] : [...config.subjects],
    description: text(config.description),
    retention: config.retention,
    storage: config.storage,
    discard: config.discard,
    maxAge,
    maxMessages: limit(config.maxMessages),
    maxBytes: limit(config.maxBytes),
    maxMessageSize: limit(config.maxMessageSize),
    maxMessagesPerSubject: limit(config.maxMessagesPerSubject),
    duplicateWindow: normalDuration(window),
    replicas: Math.max(1, config.replicas)
  }
}

/** Why the server would refuse this stream next to the others, if it would. */
export const checkStream = (config: StreamConfig, others: Iterable<StreamConfig>): NatsError.Rejected | undefined => {
  if (!isName(config.name)) return rejected(`invalid stream name ${JSON.stringify(config.name)}`, 10052)
  if (config.retention !== "limits") {
    return new NatsError.Rejected({
      message: `the in-memory broker implements limits retention only, not ${config.retention}`
    })
  }
  if (config.replicas > 1) return rejected("replicas > 1 not supported in non-clustered mode", 10074)
  if (config.maxAge !== undefined && Duration.isGreaterThan(config.duplicateWindow, config.maxAge)) {
    return rejected("duplicates window can not be larger then max age", 10052)
  }
  if (config.subjects.some((subject) => !isValid(subject, { wildcards: true })))
    return rejected("invalid subject", 10052)
  if (new Set(config.subjects).size !== config.subjects.length) return rejected("duplicate subjects detected", 10052)
  if (config.subjects.some((subject) => overlaps(subject, "$JS.API.>"))) {
    return rejected("subjects that overlap with jetstream api require no-ack to be true", 10052)
  }
  const existing = overlapping(config, others)
  return existing.length === 0 ? undefined : subjectsOverlap(config, existing)
}

/** Why the server would refuse to change `current` into `next`, if it would. */
export const checkStreamUpdate = (current: StreamConfig, next: StreamConfig): NatsError.Rejected | undefined => {
  if (next.storage !== current.storage)
    return rejected("stream configuration update can not change storage type", 10052)
  if (next.retention !== current.retention) {
    return rejected("stream configuration update can not change retention policy", 10052)
  }
  return undefined
}

/** Whether two resolved configurations are the same (an `addStream` of the same config is accepted). */
export const sameStream = (a: StreamConfig, b: StreamConfig): boolean =>
  a.name === b.name &&
  a.subjects.length === b.subjects.length &&
  a.subjects.every((subject, i) => subject === b.subjects[i]) &&
  a.description === b.description &&
  a.retention === b.retention &&
  a.storage === b.storage &&
  a.discard === b.discard &&
  sameDuration(a.maxAge, b.maxAge) &&
  a.maxMessages === b.maxMessages &&
  a.maxBytes === b.maxBytes &&
  a.maxMessageSize === b.maxMessageSize &&
  a.maxMessagesPerSubject === b.maxMessagesPerSubject &&
  sameDuration(a.duplicateWindow, b.duplicateWindow) &&
  a.replicas === b.replicas

const sameDuration = (a: Duration.Duration | undefined, b: Duration.Duration | undefined): boolean =>
  a === undefined || b === undefined ? a === b : Duration.equals(a, b)

/** The consumer configuration as the server keeps it. */
export const resolveConsumer = (config: ConsumerConfig): ConsumerConfig => ({
  stream: config.stream,
  name: config.name,
  description: text(config.description),
  filterSubject: config.filterSubject === ">" || config.filterSubject === "" ? undefined : config.filterSubject,
  deliverPolicy: config.deliverPolicy,
  ackWait: normalDuration(config.ackWait),
  maxDeliver: limit(config.maxDeliver),
  maxAckPending: config.maxAckPending
})

/** Why the server would refuse this consumer on this stream, if it would. */
export const checkConsumer = (config: ConsumerConfig, stream: StreamConfig): NatsError.Rejected | undefined => {
  if (!isName(config.name)) return rejected(`invalid durable name ${JSON.stringify(config.name)}`, 10013)
  if (!Duration.isPositive(config.ackWait)) return rejected("consumer ack wait must be positive", 10012)
  if (!Number.isSafeInteger(config.maxAckPending) || config.maxAckPending < 1) {
    return rejected("consumer max ack pending must be a positive integer", 10012)
  }
  const filter = config.filterSubject
  if (filter === undefined) {
    return config.deliverPolicy === "lastPerSubject"
      ? rejected("consumer delivery policy is deliver last per subject, but optional filter subject is not set", 10094)
      : undefined
  }
  if (!isValid(filter, { wildcards: true })) return rejected("consumer filter subject is not a valid subject", 10093)
  const wildcard = hasWildcard(filter)
  const inStream = stream.subjects.some(
    (subject) => isSubsetOf(filter, subject) || (wildcard && isSubsetOf(subject, filter))
  )
  return inStream
    ? undefined
    : rejected("consumer filter subject is not a valid subset of the interest subjects", 10093)
}

/** Why the server would refuse to change `current` into `next`, if it would. */
export const checkConsumerUpdate = (current: ConsumerConfig, next: ConsumerConfig): NatsError.Rejected | undefined =>
  next.deliverPolicy === current.deliverPolicy ? undefined : rejected("deliver policy can not be updated", 10012)

/** Whether two resolved consumer configurations are the same. */
export const sameConsumer = (a: ConsumerConfig, b: ConsumerConfig): boolean =>
  a.stream === b.stream &&
  a.name === b.name &&
  a.description === b.description &&
  a.filterSubject === b.filterSubject &&
  a.deliverPolicy === b.deliverPolicy &&
  Duration.equals(a.ackWait, b.ackWait) &&
  a.maxDeliver === b.maxDeliver &&
  a.maxAckPending === b.maxAckPending

/**
 * Translation between the `Broker` seam's camelCase configurations and nats.js's snake_case ones.
 *
 * The server speaks nanoseconds and uses `-1` (or `0` for ages) for "unlimited"; the seam speaks
 * `Duration`s and `undefined`. Durations read back from the server are rebuilt in milliseconds when
 * they are whole milliseconds, so that a configuration survives a round trip unchanged.
 *
 * Only `NatsBroker` uses this module; no other module sees a nats.js configuration.
 */
import type {
  ClusterInfo as NatsClusterInfo,
  ConsumerConfig as NatsConsumerConfig,
  ConsumerInfo as NatsConsumerInfo,
  DeliverPolicy as NatsDeliverPolicy,
  StreamConfig as NatsStreamConfig,
  StreamInfo as NatsStreamInfo
} from "@nats-io/jetstream"
import { Duration } from "effect"
import type {
  ClusterInfo,
  ConsumerConfig,
  ConsumerInfo,
  DeliverPolicy,
  StreamConfig,
  StreamInfo
} from "../../Broker.js"

const NANOS_PER_MILLI = 1_000_000

/** A finite duration in nanoseconds, as the JetStream API wants it. */
export const toNanos = (duration: Duration.Duration): number => Number(Duration.toNanosUnsafe(duration))

/** A duration the server reported in nanoseconds. */
export const fromNanos = (nanos: number): Duration.Duration =>
  nanos % NANOS_PER_MILLI === 0 ? Duration.millis(nanos / NANOS_PER_MILLI) : Duration.nanos(BigInt(nanos))

const toLimit = (limit: number | undefined): number => (limit === undefined ? -1 : limit)

// The server reports "unlimited" as -1 for counts (and 0 for ages, or for limits it never set).
const fromLimit = (limit: number | undefined): number | undefined =>
  limit === undefined || limit <= 0 ? undefined : limit

const fromDescription = (description: string | undefined): string | undefined =>
  description === undefined || description === "" ? undefined : description

/**
 * The full stream configuration for `streams.add` and `streams.update`. Every field the seam knows is
 * set, so an update also resets fields (a cleared description, a removed limit) and the server refuses
 * the ones it cannot change instead of silently keeping them.
 */
export const toStreamConfig = (config: StreamConfig): Partial<NatsStreamConfig> & { name: string } => ({
  name: config.name,
  subjects: [...config.subjects],
  description: config.description ?? "",
  retention: config.retention,
  storage: config.storage,
  discard: config.discard,
  max_age: config.maxAge === undefined ? 0 : toNanos(config.maxAge),
  max_msgs: toLimit(config.maxMessages),
  max_bytes: toLimit(config.maxBytes),
  max_msg_size: toLimit(config.maxMessageSize),
  max_msgs_per_subject: toLimit(config.maxMessagesPerSubject),
  duplicate_window: toNanos(config.duplicateWindow),
  num_replicas: config.replicas
})

/**
 * Where a stream or consumer lives in a cluster. A server outside any cluster still names itself
 * leader, without a cluster name: that is no cluster at all.
 */
const fromClusterInfo = (cluster: NatsClusterInfo | undefined): ClusterInfo | undefined =>
  cluster?.name === undefined || cluster.name === ""
    ? undefined
    : {
        name: cluster.name,
        leader: cluster.leader === undefined || cluster.leader === "" ? undefined : cluster.leader,
        replicas: (cluster.replicas ?? []).map((replica) => ({
          name: replica.name,
          current: replica.current === true,
          offline: replica.offline === true,
          activeMillis: replica.active / NANOS_PER_MILLI,
          lag: replica.lag ?? 0
        }))
      }

/** What the server reports about a stream, in the seam's terms. */
export const fromStreamInfo = (info: NatsStreamInfo): StreamInfo => {
  const config = info.config
  return {
    config: {
      name: config.name,
      subjects: config.subjects ?? [],
      description: fromDescription(config.description),
      retention: config.retention,
      storage: config.storage,
      discard: config.discard,
      maxAge: config.max_age > 0 ? fromNanos(config.max_age) : undefined,
      maxMessages: fromLimit(config.max_msgs),
      maxBytes: fromLimit(config.max_bytes),
      maxMessageSize: fromLimit(config.max_msg_size),
      maxMessagesPerSubject: fromLimit(config.max_msgs_per_subject),
      duplicateWindow: fromNanos(config.duplicate_window),
      replicas: config.num_replicas
    },
    state: {
      messages: info.state.messages,
      bytes: info.state.bytes,
      firstSeq: info.state.first_seq,
      lastSeq: info.state.last_seq,
      consumerCount: info.state.consumer_count
    },
    cluster: fromClusterInfo(info.cluster)
  }
}

const toDeliverPolicy = (policy: DeliverPolicy): NatsDeliverPolicy =>
  policy === "lastPerSubject" ? "last_per_subject" : policy

// The seam has no start-sequence or start-time positions: a consumer created with one (by another tool)
// reads as "all", its nearest meaning once the consumer exists, since the policy only places a new consumer.
const fromDeliverPolicy = (policy: NatsDeliverPolicy): DeliverPolicy => {
  switch (policy) {
    case "new":
    case "last":
      return policy
    case "last_per_subject":
      return "lastPerSubject"
    default:
      return "all"
  }
}

/**
 * A durable pull consumer with explicit acks. `backoff` is never set: on nats-server 2.9 it replaces
 * `ack_wait` and mistimes `nak(delay)`, and redelivery delays are computed by the library instead.
 *
 * For an update, a missing filter is sent as `>` (every subject of the stream): the client merges the
 * update into the current configuration, so leaving the field out would keep the old filter.
 */
export const toConsumerConfig = (config: ConsumerConfig, purpose: "add" | "update"): Partial<NatsConsumerConfig> => {
  const out: Partial<NatsConsumerConfig> = {
    durable_name: config.name,
    description: config.description ?? "",
    ack_policy: "explicit",
    deliver_policy: toDeliverPolicy(config.deliverPolicy),
    ack_wait: toNanos(config.ackWait),
    max_deliver: toLimit(config.maxDeliver),
    max_ack_pending: config.maxAckPending
  }
  if (config.filterSubject !== undefined) out.filter_subject = config.filterSubject
  else if (purpose === "update") out.filter_subject = ">"
  return out
}

/**
 * `delivered.last_active`: nats.js types it as nanoseconds, nats-server (2.9 and later) sends an RFC 3339
 * time and leaves it out before the first delivery. Anything that is not a readable time is `undefined`.
 */
const fromLastActive = (value: unknown): Date | undefined => {
  if (typeof value !== "string") return undefined
  const date = new Date(value)
  return Number.isNaN(date.getTime()) ? undefined : date
}

/** What the server reports about a consumer, in the seam's terms. */
export const fromConsumerInfo = (info: NatsConsumerInfo): ConsumerInfo => {
  const config = info.config
  const filterSubject = config.filter_subject
  return {
    config: {
      stream: info.stream_name,
      name: info.name,
      description: fromDescription(config.description),
      filterSubject:
        filterSubject === undefined || filterSubject === "" || filterSubject === ">" ? undefined : filterSubject,
      deliverPolicy: fromDeliverPolicy(config.deliver_policy),
      ackWait: fromNanos(config.ack_wait ?? 30_000 * NANOS_PER_MILLI),
      maxDeliver: fromLimit(config.max_deliver),
      maxAckPending: config.max_ack_pending ?? 1000
    },
    state: {
      numPending: info.num_pending,
      numAckPending: info.num_ack_pending,
      numRedelivered: info.num_redelivered,
      numWaiting: info.num_waiting,
      delivered: { streamSeq: info.delivered.stream_seq, consumerSeq: info.delivered.consumer_seq },
      ackFloor: { streamSeq: info.ack_floor.stream_seq, consumerSeq: info.ack_floor.consumer_seq },
      lastDelivered: fromLastActive(info.delivered.last_active)
    },
    cluster: fromClusterInfo(info.cluster)
  }
}

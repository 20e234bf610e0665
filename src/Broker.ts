/**
 * The seam between the library and the thing that carries bytes.
 *
 * `Publisher`, `Topology`, `Subscriber`, `Policy` and `DeadLetter` are written once against `Broker`;
 * `NatsBroker` implements it over NATS JetStream and `MemoryBroker` in process. Everything here is our
 * own vocabulary: no nats.js type crosses this seam, so a second implementation only has to honour
 * the semantics the conformance suite checks.
 *
 * Users do not call `Broker` directly; they provide one of its layers.
 *
 * @since 0.1.0
 */
import type { Duration, Effect, Option, Stream } from "effect"
import { Context } from "effect"
import type { NatsError } from "./NatsError.js"

/**
 * Message headers as ordered name/value pairs (NATS allows a name more than once).
 *
 * @category models
 * @since 0.1.0
 */
export type Headers = ReadonlyArray<readonly [name: string, value: string]>

/**
 * One JetStream publish.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishRequest {
  readonly subject: string
  readonly payload: Uint8Array
  readonly headers: Headers
  /** Sent as `Nats-Msg-Id`: the server stores one message per id within the duplicate window. */
  readonly messageId?: string | undefined
  /** Sent as `Nats-Expected-Last-Sequence`: the publish fails unless the stream's last sequence is this. */
  readonly expectedLastSequence?: number | undefined
  /** How long to wait for the server's acknowledgement. */
  readonly timeout: Duration.Duration
}

/**
 * The server's acknowledgement of a publish.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishAck {
  readonly stream: string
  readonly seq: number
  /** The message id was seen within the duplicate window: nothing new was stored, `seq` is the original's. */
  readonly duplicate: boolean
}

/**
 * @category models
 * @since 0.1.0
 */
export type Retention = "limits" | "interest" | "workqueue"

/**
 * @category models
 * @since 0.1.0
 */
export type Storage = "file" | "memory"

/**
 * @category models
 * @since 0.1.0
 */
export type Discard = "old" | "new"

/**
 * A stream's configuration with every default resolved. `undefined` limits mean "unlimited".
 *
 * @category models
 * @since 0.1.0
 */
export interface StreamConfig {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
  readonly description: string | undefined
  readonly retention: Retention
  readonly storage: Storage
  readonly discard: Discard
  readonly maxAge: Duration.Duration | undefined
  readonly maxMessages: number | undefined
  readonly maxBytes: number | undefined
  readonly maxMessageSize: number | undefined
  readonly maxMessagesPerSubject: number | undefined
  readonly duplicateWindow: Duration.Duration
  readonly replicas: number
}

/**
 * @category models
 * @since 0.1.0
 */
export interface StreamState {
  readonly messages: number
  readonly bytes: number
  readonly firstSeq: number
  readonly lastSeq: number
  readonly consumerCount: number
}

/**
 * One member of a replicated stream or consumer other than its leader, as the leader sees it.
 *
 * @category models
 * @since 0.1.0
 */
export interface ReplicaInfo {
  /** The server name, as the server was started with (`--server_name`). */
  readonly name: string
  /** Whether it has caught up with the leader. */
  readonly current: boolean
  /** Whether the group considers it offline. */
  readonly offline: boolean
  /** How long ago the leader last heard from it, in milliseconds. */
  readonly activeMillis: number
  /** Operations it is behind the leader (the server leaves a lag of 0 out: it reads as 0 here). */
  readonly lag: number
}

/**
 * Where a stream or consumer lives in a JetStream cluster: the cluster's name, the server leading it
 * (`undefined` while none is elected) and the other replicas.
 *
 * @category models
 * @since 0.1.0
 */
export interface ClusterInfo {
  readonly name: string | undefined
  readonly leader: string | undefined
  readonly replicas: ReadonlyArray<ReplicaInfo>
}

/**
 * @category models
 * @since 0.1.0
 */
export interface StreamInfo {
  readonly config: StreamConfig
  readonly state: StreamState
  /** `undefined` on a server that is not part of a cluster, and on the in-memory broker. */
  readonly cluster: ClusterInfo | undefined
}

/**
 * @category models
 * @since 0.1.0
 */
export type DeliverPolicy = "all" | "new" | "last" | "lastPerSubject"

/**
 * A durable pull consumer's configuration with every default resolved. Acknowledgement is always explicit.
 *
 * @category models
 * @since 0.1.0
 */
export interface ConsumerConfig {
  readonly stream: string
  readonly name: string
  readonly description: string | undefined
  readonly filterSubject: string | undefined
  readonly deliverPolicy: DeliverPolicy
  readonly ackWait: Duration.Duration
  /** `undefined`: the server redelivers forever. */
  readonly maxDeliver: number | undefined
  readonly maxAckPending: number
}

/**
 * A position in a consumer's view of a stream.
 *
 * @category models
 * @since 0.1.0
 */
export interface SequencePair {
  readonly streamSeq: number
  readonly consumerSeq: number
}

/**
 * @category models
 * @since 0.1.0
 */
export interface ConsumerState {
  /** Messages in the stream that match the filter and were not yet delivered. */
  readonly numPending: number
  /** Messages delivered and not yet acknowledged. */
  readonly numAckPending: number
  readonly numRedelivered: number
  /** Pull requests waiting for messages (at the server; consumes with free room on the in-memory broker). */
  readonly numWaiting: number
  readonly delivered: SequencePair
  readonly ackFloor: SequencePair
  /** When the consumer last delivered a message; `undefined` before its first delivery. */
  readonly lastDelivered: Date | undefined
}

/**
 * @category models
 * @since 0.1.0
 */
export interface ConsumerInfo {
  readonly config: ConsumerConfig
  readonly state: ConsumerState
  /** `undefined` on a server that is not part of a cluster, and on the in-memory broker. */
  readonly cluster: ClusterInfo | undefined
}

/**
 * Where a broker's server is: its host (name or address) and port.
 *
 * @category models
 * @since 0.1.0
 */
export interface ServerAddress {
  readonly address: string
  readonly port: number
}

/**
 * A message stored in a stream, read by sequence (dead-letter records, advisories, replay).
 *
 * @category models
 * @since 0.1.0
 */
export interface StoredMessage {
  readonly stream: string
  readonly subject: string
  readonly seq: number
  readonly payload: Uint8Array
  readonly headers: Headers
  /** When the server stored it, in milliseconds since the epoch. */
  readonly timestampMillis: number
}

/**
 * One delivery of a message by a durable pull consumer.
 *
 * The settlement verbs are plain synchronous methods, as in nats.js: they send one protocol message and
 * do not wait for the server. The first of `ack`, `nak` or `term` settles the delivery and later calls
 * are no-ops; `working` may be called any number of times before that. Call them on the message
 * (`message.ack()`), not detached.
 *
 * Settle every delivery: until it is settled it holds one of the `maxMessages` slots of its consume,
 * and a consume whose slots are all held pulls nothing more.
 *
 * @category models
 * @since 0.1.0
 */
export interface Message {
  readonly stream: string
  readonly consumer: string
  readonly subject: string
  readonly payload: Uint8Array
  readonly headers: Headers
  readonly streamSeq: number
  readonly consumerSeq: number
  /** 1 on the first delivery, incremented by every redelivery. */
  readonly deliveryCount: number
  /** Messages left for this consumer after this one, as the server counted when delivering it. */
  readonly pending: number
  /** When the server stored the message, in milliseconds since the epoch. */
  readonly timestampMillis: number
  /** Done: the message will not be delivered again. */
  ack(): void
  /** Deliver again, after `delayMillis` (the server holds the delay, so it survives a crash of this process). */
  nak(delayMillis?: number): void
  /**
   * Never deliver again. The reason is sent only to servers that understand it (2.11 and newer; 2.9
   * ignores a `term` that carries a reason and redelivers the message after ack-wait).
   */
  term(reason?: string): void
  /** Still being handled: restarts the ack-wait clock. Does not settle. */
  working(): void
}

/**
 * Which messages `Broker.purgeStream` removes.
 *
 * @category models
 * @since 0.3.0
 */
export interface PurgeOptions {
  /** Remove the messages whose sequence is below this one. Default: every message of the stream. */
  readonly before?: number | undefined
}

/**
 * How a consume loop pulls.
 *
 * @category models
 * @since 0.1.0
 */
export interface ConsumeOptions {
  /**
   * At most this many deliveries are held by the client at once: buffered, or emitted and not yet settled.
   * Only free slots are pulled from the server.
   */
  readonly maxMessages: number
  /**
   * How many of the `maxMessages` slots may be held now: asked whenever the consume decides what to pull
   * (after a delivery settles, when a pull ends, on a restart), so a caller can narrow and widen it while
   * the consume runs. Narrowed, no pull is sent until the held deliveries fall under it; pull requests the
   * server already holds still deliver. Default: `maxMessages`.
   */
  readonly window?: (() => number) | undefined
  /** How often the server must show it is alive while nothing is delivered; missed heartbeats re-pull. */
  readonly idleHeartbeat?: Duration.Duration | undefined
  /**
   * Emit every delivery waiting at a pull as one chunk, instead of one element per pull (the default).
   * A caller asking for chunks settles every message of a chunk it received, also when it is
   * interrupted midway; otherwise the rest of the chunk waits out its ack-wait. The `Subscriber` hands
   * a whole chunk to its handlers in one synchronous step, so that never happens to it.
   */
  readonly chunked?: boolean | undefined
}

/**
 * The broker service: publishing and the administration of streams and consumers.
 *
 * Every operation fails only with `NatsError`; "not found" on a lookup is `Option.none()`, not an error.
 *
 * @category services
 * @since 0.1.0
 */
export class Broker extends Context.Service<
  Broker,
  {
    /** A short name for logs and spans: `"nats"` or `"memory"`. */
    readonly system: string
    /** The server connected to now, for spans (`server.address`, `server.port`); `undefined` in memory. */
    readonly server: () => ServerAddress | undefined
    readonly publish: (request: PublishRequest) => Effect.Effect<PublishAck, NatsError>
    readonly streamInfo: (name: string) => Effect.Effect<Option.Option<StreamInfo>, NatsError>
    readonly addStream: (config: StreamConfig) => Effect.Effect<StreamInfo, NatsError>
    readonly updateStream: (config: StreamConfig) => Effect.Effect<StreamInfo, NatsError>
    /** `false` when there was no such stream. */
    readonly deleteStream: (name: string) => Effect.Effect<boolean, NatsError>
    readonly listStreams: Effect.Effect<ReadonlyArray<StreamInfo>, NatsError>
    /** The name of the stream that captures `subject` (a subject without wildcards), if any does. */
    readonly streamFor: (subject: string) => Effect.Effect<Option.Option<string>, NatsError>
    readonly consumerInfo: (stream: string, name: string) => Effect.Effect<Option.Option<ConsumerInfo>, NatsError>
    readonly addConsumer: (config: ConsumerConfig) => Effect.Effect<ConsumerInfo, NatsError>
    readonly updateConsumer: (config: ConsumerConfig) => Effect.Effect<ConsumerInfo, NatsError>
    /**
     * The stream's durable consumers, by name (since 0.3.0). Fails with a `StreamNotFound` naming the
     * stream when there is no such stream.
     */
    readonly listConsumers: (stream: string) => Effect.Effect<ReadonlyArray<ConsumerInfo>, NatsError>
    /** `false` when there was no such consumer. */
    readonly deleteConsumer: (stream: string, name: string) => Effect.Effect<boolean, NatsError>
    /**
     * Removes the messages below `options.before` (every message when it is left out) and returns how
     * many were removed (since 0.3.0). The sequences go on where they were: the next message stored gets
     * the next sequence, and a `before` past the last message removes them all without skipping any.
     * Consumers move past what was removed (deliveries of it count as acknowledged); message ids seen
     * within the duplicate window stay seen. Fails with a `StreamNotFound` naming the stream when there
     * is no such stream.
     */
    readonly purgeStream: (stream: string, options: PurgeOptions) => Effect.Effect<number, NatsError>
    /** A stored message by sequence; `Option.none()` when there is none (deleted, expired, never stored). */
    readonly getMessage: (stream: string, seq: number) => Effect.Effect<Option.Option<StoredMessage>, NatsError>
    /**
     * The deliveries of a durable pull consumer, until the stream is interrupted (which stops pulling
     * and hands back, with a nak, what arrived but was never emitted). It fails at once when the
     * consumer does not exist. Once started it keeps going across server restarts and across the
     * consumer (or its stream) being deleted and created again, waiting for it as long as it takes; it
     * fails only when it cannot go on: permissions refused, a pull the server rejects, the connection
     * closed under it.
     */
    readonly consume: (stream: string, consumer: string, options: ConsumeOptions) => Stream.Stream<Message, NatsError>
    /** Whether `term(reason)` reaches the server with its reason (nats-server 2.11 and newer). */
    readonly supportsTermReason: Effect.Effect<boolean>
  }
>()("@glam/messaging/Broker") {}

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
import type { Duration, Effect, Option } from "effect"
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
 * @category models
 * @since 0.1.0
 */
export interface StreamInfo {
  readonly config: StreamConfig
  readonly state: StreamState
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
  readonly delivered: SequencePair
  readonly ackFloor: SequencePair
}

/**
 * @category models
 * @since 0.1.0
 */
export interface ConsumerInfo {
  readonly config: ConsumerConfig
  readonly state: ConsumerState
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
    readonly publish: (request: PublishRequest) => Effect.Effect<PublishAck, NatsError>
    readonly streamInfo: (name: string) => Effect.Effect<Option.Option<StreamInfo>, NatsError>
    readonly addStream: (config: StreamConfig) => Effect.Effect<StreamInfo, NatsError>
    readonly updateStream: (config: StreamConfig) => Effect.Effect<StreamInfo, NatsError>
    /** `false` when there was no such stream. */
    readonly deleteStream: (name: string) => Effect.Effect<boolean, NatsError>
    readonly listStreams: Effect.Effect<ReadonlyArray<StreamInfo>, NatsError>
    readonly consumerInfo: (stream: string, name: string) => Effect.Effect<Option.Option<ConsumerInfo>, NatsError>
    readonly addConsumer: (config: ConsumerConfig) => Effect.Effect<ConsumerInfo, NatsError>
    readonly updateConsumer: (config: ConsumerConfig) => Effect.Effect<ConsumerInfo, NatsError>
    /** `false` when there was no such consumer. */
    readonly deleteConsumer: (stream: string, name: string) => Effect.Effect<boolean, NatsError>
  }
>()("@glam/messaging/Broker") {}

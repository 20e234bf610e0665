/**
 * The one infrastructure error of the library: everything that can go wrong between this process and
 * the NATS server (or the in-memory broker that stands in for it).
 *
 * A `NatsError` carries a `reason`, a small tagged value that says what happened and whether trying
 * again can help (`isRetryable`). Decoding failures are not `NatsError`s (see `Envelope.DecodeError`),
 * and neither are the errors of user handlers.
 *
 * @since 0.1.0
 */
import { Predicate, Schema } from "effect"

const TypeId = "~@glam/messaging/NatsError" as const

const ReasonFields = {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}

/**
 * Nothing accepted the connection (no server listening, DNS failure, connection closed).
 *
 * @category errors
 * @since 0.1.0
 */
export class ConnectionRefused extends Schema.TaggedError<ConnectionRefused>()("ConnectionRefused", ReasonFields) {
  get isRetryable(): boolean {
    return true
  }
}

/**
 * The server refused the credentials (user/password, token, NKey, creds file) or the permissions.
 *
 * @category errors
 * @since 0.1.0
 */
export class AuthFailed extends Schema.TaggedError<AuthFailed>()("AuthFailed", ReasonFields) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * A request or publish got no answer in time; with a `Nats-Msg-Id`, trying again stores no duplicate.
 *
 * @category errors
 * @since 0.1.0
 */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", ReasonFields) {
  get isRetryable(): boolean {
    return true
  }
}

/**
 * Nobody answered a request: during a reconnect this is transient.
 *
 * @category errors
 * @since 0.1.0
 */
export class NoResponders extends Schema.TaggedError<NoResponders>()("NoResponders", ReasonFields) {
  get isRetryable(): boolean {
    return true
  }
}

/**
 * The stream does not exist, or no stream covers the subject that was published to.
 *
 * @category errors
 * @since 0.1.0
 */
export class StreamNotFound extends Schema.TaggedError<StreamNotFound>()("StreamNotFound", {
  ...ReasonFields,
  stream: Schema.optional(Schema.String),
  subject: Schema.optional(Schema.String)
}) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The durable consumer does not exist on the stream.
 *
 * @category errors
 * @since 0.1.0
 */
export class ConsumerNotFound extends Schema.TaggedError<ConsumerNotFound>()("ConsumerNotFound", {
  ...ReasonFields,
  stream: Schema.optional(Schema.String),
  consumer: Schema.optional(Schema.String)
}) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * An optimistic-concurrency publish (`expectedLastSequence`) lost the race.
 *
 * @category errors
 * @since 0.1.0
 */
export class WrongLastSequence extends Schema.TaggedError<WrongLastSequence>()("WrongLastSequence", {
  ...ReasonFields,
  lastSequence: Schema.optional(Schema.Number)
}) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * JetStream answered "not now": no leader or no quorum for the stream, the consumer or the meta layer
 * (API error 10008 "JetStream system temporarily unavailable", and the others in the mapping's table),
 * a leadership change under way, a 503 status. A cluster electing a leader says this for seconds; a
 * cluster that lost its quorum, for as long as that lasts. Retrying is the answer.
 *
 * @category errors
 * @since 0.2.0
 */
export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", {
  ...ReasonFields,
  code: Schema.optional(Schema.Number)
}) {
  get isRetryable(): boolean {
    return true
  }
}

/**
 * The server rejected the request (bad configuration, a limit reached, a field it cannot change): what
 * a retry cannot fix.
 *
 * @category errors
 * @since 0.1.0
 */
export class Rejected extends Schema.TaggedError<Rejected>()("Rejected", {
  ...ReasonFields,
  code: Schema.optional(Schema.Number),
  field: Schema.optional(Schema.String)
}) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The connection is closed or draining: a request can no longer be sent on it.
 *
 * @category errors
 * @since 0.1.0
 */
export class Closed extends Schema.TaggedError<Closed>()("Closed", ReasonFields) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * Anything the client reported that fits none of the other reasons.
 *
 * @category errors
 * @since 0.1.0
 */
export class Other extends Schema.TaggedError<Other>()("Other", {
  ...ReasonFields,
  code: Schema.optional(Schema.Number)
}) {
  get isRetryable(): boolean {
    return false
  }
}

/**
 * The reasons a `NatsError` can have.
 *
 * @category models
 * @since 0.1.0
 */
export const NatsErrorReason = Schema.Union([
  ConnectionRefused,
  AuthFailed,
  Timeout,
  NoResponders,
  StreamNotFound,
  ConsumerNotFound,
  WrongLastSequence,
  Unavailable,
  Rejected,
  Closed,
  Other
])

/**
 * @category models
 * @since 0.1.0
 */
export type NatsErrorReason = typeof NatsErrorReason.Type

/**
 * An infrastructure failure, with the operation that failed and a reason.
 *
 * @category errors
 * @since 0.1.0
 */
export class NatsError extends Schema.TaggedError<NatsError>()("NatsError", {
  operation: Schema.String,
  reason: NatsErrorReason
}) {
  readonly [TypeId] = TypeId

  override get message(): string {
    return `${this.operation}: ${this.reason.message}`
  }

  /** Whether the same operation may succeed if it is tried again. */
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }
}

/**
 * @category guards
 * @since 0.1.0
 */
export const isNatsError = (u: unknown): u is NatsError => Predicate.hasProperty(u, TypeId)

/**
 * Builds a `NatsError` from an operation name and a reason.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (operation: string, reason: NatsErrorReason): NatsError => new NatsError({ operation, reason })

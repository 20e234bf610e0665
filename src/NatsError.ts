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
const ReasonTypeId = "~@glam/messaging/NatsError/Reason" as const

const ReasonFields = {
  message: Schema.String,
  cause: Schema.optional(Schema.Defect())
}

/**
 * Nothing accepted the connection: no server listening, a DNS failure, the socket closed while
 * connecting. A connection that was up and dropped is `Disconnected`.
 *
 * @category errors
 * @since 0.1.0
 */
export class ConnectionRefused extends Schema.TaggedError<ConnectionRefused>()("ConnectionRefused", ReasonFields) {
  readonly [ReasonTypeId] = ReasonTypeId

  get isRetryable(): boolean {
    return true
  }
}

/**
 * The connection was up and dropped: a request or publish in flight lost its answer (it may or may not
 * have reached the server), or one was attempted while the client reconnects (nothing was sent).
 * nats.js reconnects on its own; trying again once it has is the answer.
 *
 * @category errors
 * @since 0.2.0
 */
export class Disconnected extends Schema.TaggedError<Disconnected>()("Disconnected", ReasonFields) {
  readonly [ReasonTypeId] = ReasonTypeId

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
  readonly [ReasonTypeId] = ReasonTypeId

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
  readonly [ReasonTypeId] = ReasonTypeId

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
  readonly [ReasonTypeId] = ReasonTypeId

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
  readonly [ReasonTypeId] = ReasonTypeId

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
  readonly [ReasonTypeId] = ReasonTypeId

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
  readonly [ReasonTypeId] = ReasonTypeId

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
  readonly [ReasonTypeId] = ReasonTypeId

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
  readonly [ReasonTypeId] = ReasonTypeId

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
  readonly [ReasonTypeId] = ReasonTypeId

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
  readonly [ReasonTypeId] = ReasonTypeId

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
  Disconnected,
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
 * An infrastructure failure: the operation that failed, a reason, and for a connect the servers it
 * tried (without credentials). Its `message` names all three; its `cause` is the reason, whose own
 * `cause` is what nats.js threw.
 *
 * @category errors
 * @since 0.1.0
 */
export class NatsError extends Schema.TaggedError<NatsError>()("NatsError", {
  operation: Schema.String,
  reason: NatsErrorReason,
  servers: Schema.optional(Schema.Array(Schema.String))
}) {
  readonly [TypeId] = TypeId

  /** The reason, so that the chain of causes reads error, reason, then what nats.js threw. */
  override readonly cause = this.reason

  override get message(): string {
    const servers =
      this.servers === undefined || this.servers.length === 0 ? "" : ` (servers tried: ${this.servers.join(", ")})`
    return `${this.operation}: ${this.reason.message}${servers}`
  }

  /** Whether the same operation may succeed if it is tried again. */
  get isRetryable(): boolean {
    return this.reason.isRetryable
  }
}

/**
 * Whether a value is a `NatsError`.
 *
 * @category guards
 * @since 0.1.0
 */
export const isNatsError = (u: unknown): u is NatsError => Predicate.hasProperty(u, TypeId)

/**
 * Whether a value is one of the reasons of a `NatsError`.
 *
 * @category guards
 * @since 0.2.0
 */
export const isNatsErrorReason = (u: unknown): u is NatsErrorReason => Predicate.hasProperty(u, ReasonTypeId)

/**
 * Whether a value is a `NatsError` with the reason `tag`, narrowing its `reason`. To recover from one
 * reason, `Effect.catchReason("NatsError", "StreamNotFound", f)` does the same in one step.
 *
 * @category guards
 * @since 0.2.0
 */
export const hasReason = <Tag extends NatsErrorReason["_tag"]>(
  u: unknown,
  tag: Tag
): u is NatsError & { readonly reason: Extract<NatsErrorReason, { readonly _tag: Tag }> } =>
  isNatsError(u) && u.reason._tag === tag

/**
 * Builds a `NatsError` from an operation name, a reason and, for a connect, the servers it tried.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  operation: string,
  reason: NatsErrorReason,
  options: { readonly servers?: ReadonlyArray<string> | undefined } = {}
): NatsError =>
  new NatsError(
    options.servers === undefined || options.servers.length === 0
      ? { operation, reason }
      : { operation, reason, servers: options.servers }
  )

/**
 * Dead letters: what the library writes when it gives up on a message, so that nothing is ever dropped.
 *
 * A dead letter is a `Record` (the seed's `ErrorPayload` fields plus what it takes to put the message
 * back: original subject, headers and exact bytes, stream sequence, consumer, delivery count, failure
 * times, decision) in a normal GLAM envelope on `dlq.<subject without evt./cmd.>`, stored by `GLAM_DLQ`.
 * `publish` sends it as `Nats-Msg-Id: dlq:<stream>:<seq>` and succeeds only once the server stored it,
 * so a subscriber settles the original after the record is durable, and a second attempt (a crash in
 * between, another instance, the max-deliveries advisory) stores nothing new within the duplicate window.
 *
 * The original bytes: valid UTF-8 JSON is kept as text in `original_payload` (the JSON string gives the
 * bytes back exactly), anything else as base64 in `original_payload_base64`. When that record would not
 * fit in one message (a body near the 1 MiB max payload), the raw bytes go into chunk messages on
 * `dlq._chunk` first, each as `dlq:<stream>:<seq>:chunk:<i>/<n>`, and the record lists their sequences
 * with the size and sha256 of the whole; both text fields are then null. `originalBytes` reassembles
 * and checks them. `dlq._chunk`, `dlq._replayed` and `dlq._missing.<stream>` are reserved subjects.
 *
 * The dedupe key is the stream message, not the consumer: when two consumers give up on the same
 * message, the first record stands for both, and one replay redelivers it to every consumer.
 *
 * `list` reads the dead-letter stream; `replay` republishes original bytes to original subjects and
 * records each replay with a marker on `dlq._replayed`; `watchAdvisories` dead-letters what a consumer
 * was given `maxDeliver` times without ever settling it, from the server's advisories that
 * `GLAM_ADVISORIES` keeps.
 *
 * Not here: when to dead-letter (`Policy`) and the consume loop (`Subscriber`).
 *
 * @since 0.1.0
 */
import { Buffer, isUtf8 } from "node:buffer"
import { createHash } from "node:crypto"
import { DateTime, Duration, Effect, Exit, Option, Predicate, Result, type Schedule, Schema, Stream } from "effect"
import { Broker, type Headers, type Message, type StoredMessage } from "./Broker.js"
import * as Envelope from "./Envelope.js"
import { MerchantIdentifiers } from "./glam/MerchantIdentifiers.js"
import * as NatsError from "./NatsError.js"
import { defaultRetry } from "./Publisher.js"
import { ServiceIdentity } from "./ServiceIdentity.js"
import * as Topology from "./Topology.js"

/**
 * Why the message was given up on: its bytes could not be decoded, the policy said so, or it was
 * delivered as often as allowed.
 *
 * @category models
 * @since 0.1.0
 */
export const Decision = Schema.Literals(["decode failure", "policy", "max deliveries"])

/**
 * @category models
 * @since 0.1.0
 */
export type Decision = typeof Decision.Type

const JsonObject = Schema.Record(Schema.String, Schema.Json)

/**
 * The dead-letter record, camelCase here and snake_case on the wire.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Record = Schema.Struct({
  identifiers: Schema.NullOr(MerchantIdentifiers),
  errorCode: Schema.String,
  errorMessage: Schema.String,
  failedOperation: Schema.String,
  retryCount: Schema.Int,
  maxRetries: Schema.Int,
  originalData: Schema.NullOr(JsonObject),
  /** Null only when the message was gone before it could be read (max-deliveries advisory path). */
  originalSubject: Schema.NullOr(Schema.String),
  originalHeaders: Schema.Record(Schema.String, Schema.Array(Schema.String)),
  originalPayload: Schema.NullOr(Schema.String),
  originalPayloadBase64: Schema.NullOr(Schema.String),
  /** Sequences, in the dead-letter stream, of the chunks holding the bytes; empty when they are inline. */
  originalPayloadChunks: Schema.Array(Schema.Int),
  originalPayloadSize: Schema.NullOr(Schema.Int),
  originalPayloadSha256: Schema.NullOr(Schema.String),
  stream: Schema.String,
  streamSeq: Schema.Int,
  consumer: Schema.String,
  deliveryCount: Schema.Int,
  firstFailureAt: Envelope.Timestamp,
  lastFailureAt: Envelope.Timestamp,
  eventId: Schema.NullOr(Schema.String),
  eventType: Schema.NullOr(Schema.String),
  correlationId: Schema.NullOr(Schema.String),
  decision: Decision
})
  .pipe(
    Schema.encodeKeys({
      errorCode: "error_code",
      errorMessage: "error_message",
      failedOperation: "failed_operation",
      retryCount: "retry_count",
      maxRetries: "max_retries",
      originalData: "original_data",
      originalSubject: "original_subject",
      originalHeaders: "original_headers",
      originalPayload: "original_payload",
      originalPayloadBase64: "original_payload_base64",
      originalPayloadChunks: "original_payload_chunks",
      originalPayloadSize: "original_payload_size",
      originalPayloadSha256: "original_payload_sha256",
      streamSeq: "stream_seq",
      deliveryCount: "delivery_count",
      firstFailureAt: "first_failure_at",
      lastFailureAt: "last_failure_at",
      eventId: "event_id",
      eventType: "event_type",
      correlationId: "correlation_id"
    })
  )
  .annotate({ identifier: "DeadLetterRecord" })

/**
 * @category models
 * @since 0.1.0
 */
export type Record = typeof Record.Type

/**
 * A message that was no longer in its stream when it was to be dead-lettered (expired or deleted).
 *
 * @category models
 * @since 0.1.0
 */
export interface Missing {
  readonly stream: string
  readonly seq: number
}

/**
 * What went wrong, as the record names it.
 *
 * @category models
 * @since 0.1.0
 */
export interface Failure {
  /** The error's tag or class name: `DecodeError`, `PaymentDeclined`, `MaxDeliveriesExceeded`. */
  readonly code: string
  readonly message: string
  /** What was being done: `decode (Payload)`, `handler`. */
  readonly operation: string
}

/**
 * Everything `publish` needs about the message given up on.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishInput {
  readonly message: Message | StoredMessage | Missing
  /** Default: the delivery's consumer, else `""`. */
  readonly consumer?: string | undefined
  /** Default: the delivery's count, else 0. */
  readonly deliveryCount?: number | undefined
  readonly failure: Failure
  readonly decision: Decision
  readonly retryCount: number
  readonly maxRetries: number
  /** Default: `lastFailureAt`. */
  readonly firstFailureAt?: DateTime.Utc | undefined
  /** Default: now. */
  readonly lastFailureAt?: DateTime.Utc | undefined
  /** The envelope, when the bytes decoded to one: its ids are preferred to those read from the bytes. */
  readonly envelope?: Envelope.Envelope<unknown> | undefined
}

/**
 * @category models
 * @since 0.1.0
 */
export interface PublishOptions {
  /** How long to wait for the server's acknowledgement of one attempt. Default 5 seconds. */
  readonly timeout?: Duration.Input | undefined
  /** When to try a retryable failure again. Default: `Publisher.defaultRetry`. */
  readonly retry?: Schedule.Schedule<unknown, NatsError.NatsError> | undefined
  /** The largest message the server takes (its max payload). Default 1 MiB, nats-server's default. */
  readonly maxMessageBytes?: number | undefined
}

/**
 * Where the record was stored; `duplicate` when this dead letter had already been written.
 *
 * @category models
 * @since 0.1.0
 */
export interface Receipt {
  readonly subject: string
  readonly stream: string
  readonly seq: number
  readonly messageId: string
  readonly duplicate: boolean
  /** How many chunk messages hold the original bytes (0 when they are in the record). */
  readonly chunks: number
}

/**
 * The dead-letter subject of a subject: `evt.order.created` → `dlq.order.created`, `cmd.x` → `dlq.x`,
 * anything else gets `dlq.` in front.
 *
 * @category constructors
 * @since 0.1.0
 */
export const subjectFor = (subject: string): string =>
  `dlq.${subject.startsWith("evt.") || subject.startsWith("cmd.") ? subject.slice(4) : subject}`

/**
 * The `Nats-Msg-Id` of the dead letter of a stream message.
 *
 * @category constructors
 * @since 0.1.0
 */
export const messageIdFor = (stream: string, seq: number): string => `dlq:${stream}:${seq}`

const chunkSubject = "dlq._chunk"
const replayedSubject = "dlq._replayed"
const missingSubject = (stream: string) => `dlq._missing.${stream}`
const defaultMaxMessageBytes = 1024 * 1024
// Room for the NATS headers of a record or chunk (`Nats-Msg-Id` and the protocol line).
const headerAllowance = 1024
const chunkBytes = 256 * 1024
const errorMessageLimit = 16 * 1024

const encodeEnvelope = Envelope.encoder(Record)
const decodeEnvelope = Envelope.decoder(Record)
const isJsonObject = Schema.is(JsonObject)
const decodeIdentifiers = Schema.decodeUnknownOption(MerchantIdentifiers)

const asText = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")

const parseJson = (bytes: Uint8Array): Option.Option<unknown> =>
  bytes.byteLength === 0 || !isUtf8(bytes)
    ? Option.none()
    : Result.getSuccess(Result.try({ try: (): unknown => JSON.parse(asText(bytes)), catch: () => undefined }))

const field = (value: unknown, key: string): unknown => (Predicate.hasProperty(value, key) ? value[key] : undefined)

const stringField = (value: unknown, key: string): string | null => {
  const found = field(value, key)
  return typeof found === "string" ? found : null
}

const headerLists = (headers: Headers) => {
  const lists = new Map<string, Array<string>>()
  for (const [name, value] of headers) lists.set(name, [...(lists.get(name) ?? []), value])
  return Object.fromEntries(lists)
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

const send = (
  request: Parameters<Broker["Service"]["publish"]>[0],
  retry: Schedule.Schedule<unknown, NatsError.NatsError>
) =>
  Broker.use((broker) => broker.publish(request)).pipe(
    Effect.tapError((error) =>
      error.isRetryable
        ? Effect.logWarning(`publish to ${request.subject} failed, retrying: ${error.message}`)
        : Effect.void
    ),
    Effect.retry({ while: (error) => error.isRetryable, schedule: retry })
  )

// The record is built here from values already checked, so an encoding failure is a bug, not an outcome.
const encodeOrDie = (envelope: Envelope.Envelope<Record>) =>
  encodeEnvelope(envelope).pipe(
    Effect.mapError((error) => new Error(`the dead-letter record did not encode: ${error.message}`)),
    Effect.orDie
  )

/**
 * Writes the dead letter of a message and returns once the server has stored it. Fails with the
 * `NatsError` of the last attempt (the caller then leaves the original unsettled), never silently.
 *
 * @category constructors
 * @since 0.1.0
 */
export const publish = Effect.fn("DeadLetter.publish")(function* (input: PublishInput, options: PublishOptions = {}) {
  const identity = yield* ServiceIdentity
  const retry = options.retry ?? defaultRetry
  const timeout = Duration.fromInputUnsafe(options.timeout ?? "5 seconds")
  const limit = (options.maxMessageBytes ?? defaultMaxMessageBytes) - headerAllowance
  const original = input.message
  const isDelivery = "streamSeq" in original
  const seq = isDelivery ? original.streamSeq : original.seq
  const payload = "payload" in original ? original.payload : undefined
  const subject = "subject" in original ? original.subject : undefined
  const messageId = messageIdFor(original.stream, seq)
  const recordSubject = subject === undefined ? missingSubject(original.stream) : subjectFor(subject)
  yield* Effect.annotateCurrentSpan({ "messaging.destination.name": recordSubject, "messaging.message.id": messageId })

  const json = payload === undefined ? Option.none() : parseJson(payload)
  const body = Option.getOrUndefined(json)
  const data = field(body, "data")
  const lastFailureAt = input.lastFailureAt ?? (yield* DateTime.now)
  const correlationId = input.envelope?.correlationId ?? stringField(body, "correlation_id")
  const record: Record = {
    identifiers: Option.getOrNull(decodeIdentifiers(field(data, "identifiers"))),
    errorCode: input.failure.code,
    errorMessage:
      input.failure.message.length > errorMessageLimit
        ? `${input.failure.message.slice(0, errorMessageLimit)}… (truncated)`
        : input.failure.message,
    failedOperation: input.failure.operation,
    retryCount: input.retryCount,
    maxRetries: input.maxRetries,
    originalData: isJsonObject(data) ? data : null,
    originalSubject: subject ?? null,
    originalHeaders: headerLists("headers" in original ? original.headers : []),
    originalPayload: payload !== undefined && Option.isSome(json) ? asText(payload) : null,
    originalPayloadBase64:
      payload !== undefined && Option.isNone(json) ? Buffer.from(payload).toString("base64") : null,
    originalPayloadChunks: [],
    originalPayloadSize: payload?.byteLength ?? null,
    originalPayloadSha256: payload === undefined ? null : sha256(payload),
    stream: original.stream,
    streamSeq: seq,
    consumer: input.consumer ?? (isDelivery ? original.consumer : ""),
    deliveryCount: input.deliveryCount ?? (isDelivery ? original.deliveryCount : 0),
    firstFailureAt: input.firstFailureAt ?? lastFailureAt,
    lastFailureAt,
    eventId: input.envelope?.eventId ?? stringField(body, "event_id"),
    eventType: input.envelope?.eventType ?? stringField(body, "event_type"),
    correlationId,
    decision: input.decision
  }
  const envelope: Envelope.Envelope<Record> = {
    eventId: crypto.randomUUID(),
    eventType: recordSubject,
    correlationId: correlationId ?? crypto.randomUUID(),
    sourceService: identity.name,
    timestamp: yield* DateTime.now,
    data: record
  }

  let bytes = yield* encodeOrDie(envelope)
  let chunks: ReadonlyArray<number> = []
  if (bytes.byteLength > limit && payload !== undefined) {
    // Chunks first: a stored record always finds its chunks; chunks without a record are only dead weight.
    const size = Math.max(1, Math.min(chunkBytes, limit))
    const count = Math.ceil(payload.byteLength / size)
    chunks = yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) =>
        send(
          {
            subject: chunkSubject,
            payload: payload.subarray(i * size, (i + 1) * size),
            headers: [],
            messageId: `${messageId}:chunk:${i + 1}/${count}`,
            timeout
          },
          retry
        ).pipe(Effect.map((ack) => ack.seq))
    )
    const chunked = { ...record, originalPayload: null, originalPayloadBase64: null, originalPayloadChunks: chunks }
    bytes = yield* encodeOrDie({ ...envelope, data: chunked })
    if (bytes.byteLength > limit) bytes = yield* encodeOrDie({ ...envelope, data: { ...chunked, originalData: null } })
  }
  const ack = yield* send({ subject: recordSubject, payload: bytes, headers: [], messageId, timeout }, retry)
  if (ack.duplicate) yield* Effect.logDebug(`dead letter ${messageId} was already stored as ${ack.stream}#${ack.seq}`)
  const receipt: Receipt = {
    subject: recordSubject,
    stream: ack.stream,
    seq: ack.seq,
    messageId,
    duplicate: ack.duplicate,
    chunks: chunks.length
  }
  return receipt
})

/**
 * One replay of a dead letter.
 *
 * @category models
 * @since 0.1.0
 */
export interface Replay {
  /** The sequence of the replay's marker in the dead-letter stream. */
  readonly seq: number
  /** Where the replayed copy was stored. */
  readonly stream: string
  readonly streamSeq: number
  readonly messageId: string
  readonly replayedAt: DateTime.Utc
}

const ReplayMarker = Schema.fromJsonString(
  Schema.Struct({
    deadLetterSeq: Schema.Int,
    stream: Schema.String,
    streamSeq: Schema.Int,
    messageId: Schema.String,
    replayedAt: Envelope.Timestamp
  }).pipe(
    Schema.encodeKeys({
      deadLetterSeq: "dead_letter_seq",
      streamSeq: "stream_seq",
      messageId: "message_id",
      replayedAt: "replayed_at"
    })
  )
)
const encodeMarker = Schema.encodeExit(ReplayMarker)
const decodeMarker = Schema.decodeUnknownOption(ReplayMarker)

/**
 * A dead letter as `list` reads it.
 *
 * @category models
 * @since 0.1.0
 */
export interface Entry {
  /** The dead-letter stream and the record's sequence in it. */
  readonly stream: string
  readonly seq: number
  readonly subject: string
  readonly record: Record
  /** The service that wrote the record, and when. */
  readonly recordedBy: string
  readonly recordedAt: DateTime.Utc
  /** Oldest first; empty when it was never replayed. */
  readonly replays: ReadonlyArray<Replay>
}

/**
 * Which dead letters to list or replay; every criterion given must hold.
 *
 * @category models
 * @since 0.1.0
 */
export interface Filter {
  /** Default `GLAM_DLQ`. */
  readonly stream?: string | undefined
  /** The original subject, exactly or as a NATS pattern (`evt.merchant.>`, `evt.*.created.v1`). */
  readonly subject?: string | undefined
  readonly errorCode?: string | undefined
  /** The original envelope's `event_type`. */
  readonly eventType?: string | undefined
  /** Last failure at or after. */
  readonly since?: DateTime.Utc | undefined
  /** Last failure before. */
  readonly until?: DateTime.Utc | undefined
  /** Only these sequences of the dead-letter stream. */
  readonly seqs?: ReadonlyArray<number> | undefined
  /** At most this many, oldest first. */
  readonly limit?: number | undefined
}

const subjectMatches = (pattern: string, subject: string): boolean => {
  const wanted = pattern.split(".")
  const tokens = subject.split(".")
  for (const [i, token] of wanted.entries()) {
    if (token === ">") return tokens.length > i
    if (i >= tokens.length || (token !== "*" && token !== tokens[i])) return false
  }
  return wanted.length === tokens.length
}

const matches =
  (filter: Filter) =>
  ({ seq, record }: Entry): boolean =>
    (filter.subject === undefined ||
      (record.originalSubject !== null && subjectMatches(filter.subject, record.originalSubject))) &&
    (filter.errorCode === undefined || record.errorCode === filter.errorCode) &&
    (filter.eventType === undefined || record.eventType === filter.eventType) &&
    (filter.since === undefined || DateTime.isGreaterThanOrEqualTo(record.lastFailureAt, filter.since)) &&
    (filter.until === undefined || DateTime.isLessThan(record.lastFailureAt, filter.until)) &&
    (filter.seqs === undefined || filter.seqs.includes(seq))

/**
 * The dead letters of the dead-letter stream that pass the filter, oldest first, each with its replays.
 * Reads the whole stream by sequence (markers of replays follow their records).
 *
 * @category accessors
 * @since 0.1.0
 */
export const list = Effect.fn("DeadLetter.list")(function* (filter: Filter = {}) {
  const broker = yield* Broker
  const stream = filter.stream ?? Topology.glamDeadLetterStreamName
  const info = yield* broker.streamInfo(stream)
  if (Option.isNone(info)) {
    return yield* NatsError.make(
      "DeadLetter.list",
      new NatsError.StreamNotFound({ message: `no stream ${stream}`, stream })
    )
  }
  const { firstSeq, lastSeq, messages } = info.value.state
  const entries: Array<Entry> = []
  const replays = new Map<number, Array<Replay>>()
  const read = (stored: StoredMessage) =>
    Effect.gen(function* () {
      if (stored.subject === chunkSubject) return
      if (stored.subject === replayedSubject) {
        const marker = decodeMarker(asText(stored.payload))
        if (Option.isNone(marker)) return yield* Effect.logWarning(`${stream}#${stored.seq} is not a replay marker`)
        const { deadLetterSeq, ...replay } = marker.value
        return void replays.set(deadLetterSeq, [...(replays.get(deadLetterSeq) ?? []), { ...replay, seq: stored.seq }])
      }
      const decoded = decodeEnvelope(stored.payload, stored.subject)
      if (Exit.isFailure(decoded)) {
        return yield* Effect.logWarning(`${stream}#${stored.seq} (${stored.subject}) is not a dead-letter record`)
      }
      const { data, sourceService, timestamp } = decoded.value
      entries.push({
        stream,
        seq: stored.seq,
        subject: stored.subject,
        record: data,
        recordedBy: sourceService,
        recordedAt: timestamp,
        replays: []
      })
    })
  if (messages > 0) {
    yield* Stream.range(firstSeq, lastSeq).pipe(
      Stream.mapEffect((seq) => broker.getMessage(stream, seq), { concurrency: 16 }),
      Stream.runForEach((stored) => (Option.isSome(stored) ? read(stored.value) : Effect.void))
    )
  }
  const selected = entries.filter(matches(filter)).slice(0, filter.limit)
  return selected.map((entry): Entry => ({ ...entry, replays: replays.get(entry.seq) ?? [] }))
})

/**
 * The original bytes of a dead letter, put back together from its chunks when they were too big for the
 * record; `None` when they were not kept (the message was gone) or a chunk is missing or altered.
 *
 * @category accessors
 * @since 0.1.0
 */
export const originalBytes = Effect.fnUntraced(function* (entry: Pick<Entry, "stream" | "seq" | "record">) {
  const { record } = entry
  if (record.originalPayload !== null) return Option.some<Uint8Array>(Buffer.from(record.originalPayload, "utf8"))
  if (record.originalPayloadBase64 !== null) {
    return Option.some<Uint8Array>(Buffer.from(record.originalPayloadBase64, "base64"))
  }
  if (record.originalPayloadChunks.length === 0) return Option.none<Uint8Array>()
  const broker = yield* Broker
  const parts = yield* Effect.forEach(record.originalPayloadChunks, (seq) => broker.getMessage(entry.stream, seq))
  const bytes = Buffer.concat(parts.flatMap((part) => (Option.isSome(part) ? [part.value.payload] : [])))
  if (bytes.byteLength !== record.originalPayloadSize || sha256(bytes) !== record.originalPayloadSha256) {
    yield* Effect.logWarning(`the chunks of dead letter ${entry.stream}#${entry.seq} are missing or altered`)
    return Option.none<Uint8Array>()
  }
  return Option.some<Uint8Array>(bytes)
})

/**
 * @category models
 * @since 0.1.0
 */
export interface ReplayOptions extends Filter {
  /** Replay entries that were replayed before once more. Default `false`: they are skipped. */
  readonly force?: boolean | undefined
  readonly timeout?: Duration.Input | undefined
  readonly retry?: Schedule.Schedule<unknown, NatsError.NatsError> | undefined
}

/**
 * What `replay` did with one dead letter.
 *
 * @category models
 * @since 0.1.0
 */
export type ReplayOutcome =
  | {
      readonly _tag: "Replayed"
      readonly seq: number
      readonly subject: string
      readonly stream: string
      readonly streamSeq: number
      readonly messageId: string
      /** The server had already stored this replay (a replay interrupted before its marker was written). */
      readonly duplicate: boolean
    }
  | { readonly _tag: "Skipped"; readonly seq: number; readonly reason: string }

/**
 * The header a replayed message carries: `<dead-letter stream>:<record seq>`.
 *
 * @category constants
 * @since 0.1.0
 */
export const replayedFromHeader = "Glam-Replayed-From"

const keptOnReplay = (name: string): boolean => {
  const lower = name.toLowerCase()
  return lower !== "nats-msg-id" && !lower.startsWith("nats-expected-") && lower !== replayedFromHeader.toLowerCase()
}

/**
 * Publishes the original bytes of the selected dead letters to their original subjects again, with
 * their original headers but a new `Nats-Msg-Id` (`replay:<seq>:<n>`), and records each replay with a
 * marker in the dead-letter stream. An entry replayed before is skipped unless `force` is set.
 *
 * @category constructors
 * @since 0.1.0
 */
export const replay = Effect.fn("DeadLetter.replay")(function* (options: ReplayOptions = {}) {
  const retry = options.retry ?? defaultRetry
  const timeout = Duration.fromInputUnsafe(options.timeout ?? "5 seconds")
  const entries = yield* list(options)
  return yield* Effect.forEach(entries, (entry) =>
    Effect.gen(function* () {
      const skipped = (reason: string): ReplayOutcome => ({ _tag: "Skipped", seq: entry.seq, reason })
      const times = entry.replays.length
      if (times > 0 && options.force !== true) return skipped(`replayed ${times} time(s) already; force replays again`)
      const subject = entry.record.originalSubject
      if (subject === null) return skipped("the original subject is unknown")
      const bytes = yield* originalBytes(entry)
      if (Option.isNone(bytes)) return skipped("the original bytes were not kept")
      const messageId = `replay:${entry.seq}:${times + 1}`
      const headers: Headers = [
        ...Object.entries(entry.record.originalHeaders).flatMap(([name, values]) =>
          keptOnReplay(name) ? values.map((value) => [name, value] as const) : []
        ),
        [replayedFromHeader, `${entry.stream}:${entry.seq}`]
      ]
      const ack = yield* send({ subject, payload: bytes.value, headers, messageId, timeout }, retry)
      const marker = yield* Effect.orDie(
        encodeMarker({
          deadLetterSeq: entry.seq,
          stream: ack.stream,
          streamSeq: ack.seq,
          messageId,
          replayedAt: yield* DateTime.now
        })
      )
      yield* send(
        {
          subject: replayedSubject,
          payload: Buffer.from(marker),
          headers: [],
          messageId: `replayed:${entry.stream}:${entry.seq}:${times + 1}`,
          timeout
        },
        retry
      )
      const outcome: ReplayOutcome = {
        _tag: "Replayed",
        seq: entry.seq,
        subject,
        stream: ack.stream,
        streamSeq: ack.seq,
        messageId,
        duplicate: ack.duplicate
      }
      return outcome
    })
  )
})

/**
 * The subject of the server's max-deliveries advisories for one consumer.
 *
 * @category constructors
 * @since 0.1.0
 */
export const advisorySubject = (stream: string, consumer: string): string =>
  `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${consumer}`

// The fields of the server's advisory that matter here (it has no subject and no data).
const decodeAdvisory = Schema.decodeUnknownExit(
  Schema.fromJsonString(
    Schema.Struct({
      stream: Schema.String,
      consumer: Schema.String,
      streamSeq: Schema.Int,
      deliveries: Schema.Int,
      timestamp: Envelope.Timestamp
    }).pipe(Schema.encodeKeys({ streamSeq: "stream_seq" }))
  )
)

/**
 * @category models
 * @since 0.1.0
 */
export interface WatchOptions {
  /** The stream and durable consumer whose given-up messages are to be dead-lettered. */
  readonly stream: string
  readonly consumer: string
  /** Default `GLAM_ADVISORIES`. */
  readonly advisoryStream?: string | undefined
  /** The durable consumer on the advisory stream. Default `dlq-<stream>-<consumer>`. */
  readonly durable?: string | undefined
  /** How long an advisory whose dead letter could not be written waits before it is tried again. Default 5 s. */
  readonly retryDelay?: Duration.Input | undefined
  readonly publish?: PublishOptions | undefined
}

/**
 * Dead-letters the messages a consumer was given as often as its `maxDeliver` allows without ever
 * settling them (the process died on them each time), until interrupted.
 *
 * It reads their max-deliveries advisories from the advisory stream (provisioning a durable consumer
 * there), fetches each original by sequence, writes its dead letter (decision "max deliveries", error
 * code `MaxDeliveriesExceeded`; without bytes when the original is gone), and only then acks the
 * advisory. The server emits the advisory when it would redeliver past `maxDeliver` while a pull waits.
 *
 * @category constructors
 * @since 0.1.0
 */
export const watchAdvisories = Effect.fnUntraced(function* (options: WatchOptions) {
  const broker = yield* Broker
  const advisoryStream = options.advisoryStream ?? Topology.glamAdvisoriesStreamName
  const durable = options.durable ?? `dlq-${options.stream}-${options.consumer}`
  const retryDelay = Duration.toMillis(Duration.fromInputUnsafe(options.retryDelay ?? "5 seconds"))
  yield* Topology.provision(
    Topology.make({
      consumers: [
        {
          stream: advisoryStream,
          name: durable,
          description: `dead-letters what ${options.stream}/${options.consumer} never settled`,
          filterSubject: advisorySubject(options.stream, options.consumer),
          ackWait: "1 minute"
        }
      ]
    })
  )

  const handle = (message: Message) =>
    Effect.gen(function* () {
      const advisory = decodeAdvisory(asText(message.payload))
      if (Exit.isFailure(advisory)) {
        yield* Effect.logError(`${advisoryStream}#${message.streamSeq} is not a max-deliveries advisory; terminated`)
        return message.term()
      }
      const { stream, streamSeq: seq, consumer, deliveries, timestamp } = advisory.value
      const written = yield* broker.getMessage(stream, seq).pipe(
        Effect.flatMap((original) =>
          publish(
            {
              message: Option.getOrElse(original, (): Missing => ({ stream, seq })),
              consumer,
              deliveryCount: deliveries,
              failure: {
                code: "MaxDeliveriesExceeded",
                message: Option.isSome(original)
                  ? `delivered ${deliveries} times and never settled: the handler never decided (the process died or hung on it each time)`
                  : `delivered ${deliveries} times and never settled, and gone from ${stream} (expired or deleted) before it could be dead-lettered: its bytes are lost`,
                operation: "handler"
              },
              decision: "max deliveries",
              retryCount: deliveries - 1,
              maxRetries: deliveries - 1,
              firstFailureAt: timestamp,
              lastFailureAt: timestamp
            },
            options.publish
          )
        ),
        Effect.exit
      )
      if (Exit.isFailure(written)) {
        yield* Effect.logError(
          `could not dead-letter ${stream}#${seq}; its advisory comes back in ${retryDelay} ms`,
          written.cause
        )
        return message.nak(retryDelay)
      }
      const { stream: dlq, seq: dlqSeq } = written.value
      yield* Effect.logWarning(
        `${stream}#${seq} reached max deliveries on ${consumer}: dead-lettered as ${dlq}#${dlqSeq}`
      )
      message.ack()
    })

  yield* broker.consume(advisoryStream, durable, { maxMessages: 8 }).pipe(Stream.runForEach(handle))
  return yield* Effect.never
})

/**
 * Writing a dead letter's messages: each publish retried and deduplicated by its message id, the
 * bytes of a record that would not fit in one message, with the original bytes moved into chunk
 * messages written first, and the record in its envelope.
 *
 * Not public: `DeadLetter.publish` is `writeRecord`, and `DeadLetter.replay` writes its copies and
 * markers with `sender`.
 */
import { DateTime, Duration, Effect, Metric, type Schedule } from "effect"
import { Broker, type Headers, type Message, type PublishAck, type StoredMessage } from "../../Broker.js"
import type * as Envelope from "../../Envelope.js"
import * as Metrics from "../../Metrics.js"
import type { NatsError } from "../../NatsError.js"
import { defaultRetry, defaults, type OutageLog, retryTransient } from "../../Publisher.js"
import { ServiceIdentity } from "../../ServiceIdentity.js"
import { chunksOf, encodeOrDie, type Failed, originOf, type Record, recordOf } from "./record.js"
import { chunkSubject, messageIdFor, missingSubject, subjectFor } from "./subjects.js"

const defaultMaxMessageBytes = 1024 * 1024
// Room for the NATS headers of a record or chunk (`Nats-Msg-Id` and the protocol line).
const headerAllowance = 1024

/** Publishes one message with its id, its subject and bytes, and headers. */
export type Send = (
  subject: string,
  payload: Uint8Array,
  messageId: string,
  headers?: Headers
) => Effect.Effect<PublishAck, NatsError, Broker>

/**
 * Publishes with the options' timeout and retry (defaults `Publisher.defaults.timeout` and `Publisher.defaultRetry`);
 * retrying is safe because every publish here has a message id.
 */
export const sender = (options: {
  readonly timeout?: Duration.Input | undefined
  readonly retry?: Schedule.Schedule<unknown, NatsError> | undefined
  readonly outages?: OutageLog | undefined
}): Send => {
  const timeout = options.timeout === undefined ? defaults.timeout : Duration.fromInputUnsafe(options.timeout)
  const retry = options.retry ?? defaultRetry
  return (subject, payload, messageId, headers = []) =>
    Broker.use((broker) => broker.publish({ subject, payload, headers, messageId, timeout })).pipe(
      retryTransient(subject, retry, options.outages)
    )
}

/**
 * The bytes of a record's envelope for a message of `stream`, and the sequences of the chunks holding its
 * original bytes: none when the record fits in a message of `maxMessageBytes` (default 1 MiB) as it is.
 */
export const recordBytes = Effect.fnUntraced(function* (
  write: Send,
  envelope: Envelope.Envelope<Record>,
  original: { readonly stream: string; readonly payload: Uint8Array | undefined },
  messageId: string,
  maxMessageBytes = defaultMaxMessageBytes
) {
  const limit = maxMessageBytes - headerAllowance
  const bytes = yield* encodeOrDie(envelope)
  if (bytes.byteLength <= limit || original.payload === undefined) return { bytes, chunks: [] }
  // Chunks first: a stored record always finds its chunks; chunks without a record are only dead weight.
  const parts = chunksOf(original.payload, limit)
  const chunks = yield* Effect.forEach(parts, (part, i) =>
    write(chunkSubject(original.stream), part, `${messageId}:chunk:${i + 1}/${parts.length}`).pipe(
      Effect.map((ack) => ack.seq)
    )
  )
  const chunked = {
    ...envelope.data,
    originalPayload: null,
    originalPayloadBase64: null,
    originalPayloadChunks: chunks
  }
  const withData = yield* encodeOrDie({ ...envelope, data: chunked })
  if (withData.byteLength <= limit) return { bytes: withData, chunks }
  return { bytes: yield* encodeOrDie({ ...envelope, data: { ...chunked, originalData: null } }), chunks }
})

/** A dead letter written for the first time, counted when metrics are on. */
export const counted = (stream: string, decision: string): Effect.Effect<void> =>
  Effect.flatMap(Metrics.Enabled, (enabled) =>
    enabled
      ? Metric.update(
          Metric.withAttributes(Metrics.deadLettersWritten, { "messaging.nats.stream": stream, decision }),
          1
        )
      : Effect.void
  )

/** The dead letter of `input.message` written, once the server stored it; what `DeadLetter.publish` documents. */
export const writeRecord = Effect.fnUntraced(function* (
  input: Failed & {
    readonly message: Message | StoredMessage | { readonly stream: string; readonly seq: number }
    readonly lastFailureAt?: DateTime.Utc | undefined
  },
  options: Parameters<typeof sender>[0] & { readonly maxMessageBytes?: number | undefined }
) {
  const identity = yield* ServiceIdentity
  const write = sender(options)
  const origin = originOf(input.message)
  const messageId = messageIdFor(origin.stream, origin.seq)
  const subject = origin.subject === undefined ? missingSubject(origin.stream) : subjectFor(origin.subject)
  yield* Effect.annotateCurrentSpan({ "messaging.destination.name": subject, "messaging.message.id": messageId })

  const now = yield* DateTime.now
  const data = recordOf(input, origin, input.lastFailureAt ?? now)
  const envelope: Envelope.Envelope<Record> = {
    eventId: crypto.randomUUID(),
    eventType: subject,
    correlationId: data.correlationId ?? crypto.randomUUID(),
    sourceService: identity.name,
    timestamp: now,
    data
  }
  const { bytes, chunks } = yield* recordBytes(write, envelope, origin, messageId, options.maxMessageBytes)
  const ack = yield* write(subject, bytes, messageId)
  if (ack.duplicate) yield* Effect.logDebug(`dead letter ${messageId} was already stored as ${ack.stream}#${ack.seq}`)
  else yield* counted(origin.stream, input.decision)
  return { subject, stream: ack.stream, seq: ack.seq, messageId, duplicate: ack.duplicate, chunks: chunks.length }
})

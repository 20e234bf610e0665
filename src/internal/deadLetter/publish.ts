/**
 * Writing a dead letter: its chunks first when the original bytes would not fit in the record, then
 * the record, each publish retried and deduplicated by its message id.
 *
 * Not public: `DeadLetter.publish` is `publish` here; `sender` also writes replays.
 */
import { DateTime, Duration, Effect, type Schedule } from "effect"
import { Broker, type Headers } from "../../Broker.js"
import type { PublishInput, PublishOptions, Receipt } from "../../DeadLetter.js"
import type * as Envelope from "../../Envelope.js"
import type { NatsError } from "../../NatsError.js"
import { defaultRetry, defaults, type OutageLog, retryTransient } from "../../Publisher.js"
import { ServiceIdentity } from "../../ServiceIdentity.js"
import { chunksOf, encodeOrDie, originOf, type Record, recordOf } from "./record.js"
import { chunkSubject, messageIdFor, missingSubject, subjectFor } from "./subjects.js"

const defaultMaxMessageBytes = 1024 * 1024
// Room for the NATS headers of a record or chunk (`Nats-Msg-Id` and the protocol line).
const headerAllowance = 1024

/**
 * Publishes with the options' timeout and retry (defaults `Publisher.defaults.timeout` and `Publisher.defaultRetry`);
 * retrying is safe because every publish here has a message id.
 */
export const sender = (options: {
  readonly timeout?: Duration.Input | undefined
  readonly retry?: Schedule.Schedule<unknown, NatsError> | undefined
  readonly outages?: OutageLog | undefined
}) => {
  const timeout = options.timeout === undefined ? defaults.timeout : Duration.fromInputUnsafe(options.timeout)
  const retry = options.retry ?? defaultRetry
  return (subject: string, payload: Uint8Array, messageId: string, headers: Headers = []) =>
    Broker.use((broker) => broker.publish({ subject, payload, headers, messageId, timeout })).pipe(
      retryTransient(subject, retry, options.outages)
    )
}

/** Documented as `DeadLetter.publish`. */
export const publish = Effect.fn("DeadLetter.publish")(function* (input: PublishInput, options: PublishOptions = {}) {
  const identity = yield* ServiceIdentity
  const write = sender(options)
  const limit = (options.maxMessageBytes ?? defaultMaxMessageBytes) - headerAllowance
  const origin = originOf(input.message)
  const messageId = messageIdFor(origin.stream, origin.seq)
  const subject = origin.subject === undefined ? missingSubject(origin.stream) : subjectFor(origin.subject)
  yield* Effect.annotateCurrentSpan({ "messaging.destination.name": subject, "messaging.message.id": messageId })

  const now = yield* DateTime.now
  const record = recordOf(input, origin, input.lastFailureAt ?? now)
  const envelope: Envelope.Envelope<Record> = {
    eventId: crypto.randomUUID(),
    eventType: subject,
    correlationId: record.correlationId ?? crypto.randomUUID(),
    sourceService: identity.name,
    timestamp: now,
    data: record
  }
  let bytes = yield* encodeOrDie(envelope)
  let chunks: ReadonlyArray<number> = []
  if (bytes.byteLength > limit && origin.payload !== undefined) {
    // Chunks first: a stored record always finds its chunks; chunks without a record are only dead weight.
    const parts = chunksOf(origin.payload, limit)
    chunks = yield* Effect.forEach(parts, (part, i) =>
      write(chunkSubject(origin.stream), part, `${messageId}:chunk:${i + 1}/${parts.length}`).pipe(
        Effect.map((ack) => ack.seq)
      )
    )
    const chunked = { ...record, originalPayload: null, originalPayloadBase64: null, originalPayloadChunks: chunks }
    bytes = yield* encodeOrDie({ ...envelope, data: chunked })
    if (bytes.byteLength > limit) bytes = yield* encodeOrDie({ ...envelope, data: { ...chunked, originalData: null } })
  }
  const ack = yield* write(subject, bytes, messageId)
  if (ack.duplicate) yield* Effect.logDebug(`dead letter ${messageId} was already stored as ${ack.stream}#${ack.seq}`)
  const receipt: Receipt = {
    subject,
    stream: ack.stream,
    seq: ack.seq,
    messageId,
    duplicate: ack.duplicate,
    chunks: chunks.length
  }
  return receipt
})

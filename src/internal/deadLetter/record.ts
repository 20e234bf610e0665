/**
 * The dead-letter record on the wire, and the original bytes it keeps.
 *
 * The bytes are kept exactly: valid UTF-8 JSON as text (the JSON string gives them back), anything
 * else as base64, or, when the record would not fit in one message, in chunk messages that the record
 * lists with the size and sha256 of the whole; `DeadLetter.originalBytes` undoes all three.
 *
 * Not public: `DeadLetter` documents and exports `Decision` and `Record`, builds records with `recordOf`
 * when it publishes them and reads them back when it lists them.
 */
import { Buffer, isUtf8 } from "node:buffer"
import { createHash } from "node:crypto"
import { type DateTime, Effect, Option, Predicate, Result, Schema } from "effect"
import type { Headers, Message, StoredMessage } from "../../Broker.js"
import * as Envelope from "../../Envelope.js"
import { parseJson } from "../json.js"

/** Documented as `DeadLetter.Decision`. */
export const Decision = Schema.Literals(["decode failure", "policy", "max deliveries"])

const JsonObject = Schema.Record(Schema.String, Schema.Json)

/** Documented as `DeadLetter.Record`. */
export const Record = Schema.Struct({
  /**
   * The payload's `identifiers` object as it arrived (the `identifiers` of the seed's `ErrorPayload`
   * when the payload is a GLAM one); null when the payload has none.
   */
  identifiers: Schema.NullOr(JsonObject),
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

/** Documented as `DeadLetter.Record`. */
export type Record = typeof Record.Type

/** A dead-letter record in its GLAM envelope, from the bytes of a message of the dead-letter stream. */
export const decodeEnvelope = Envelope.decoder(Record)

const encodeEnvelope = Envelope.encoder(Record)

/** The bytes of a record's envelope; a failure is a defect, since the record is built from checked values. */
export const encodeOrDie = (envelope: Envelope.Envelope<Record>) =>
  encodeEnvelope(envelope).pipe(
    Effect.mapError((error) => new Error(`the dead-letter record did not encode: ${error.message}`)),
    Effect.orDie
  )

/** The bytes as UTF-8 text, without copying them. */
export const asText = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex")

const jsonOf = (bytes: Uint8Array): Option.Option<unknown> =>
  bytes.byteLength === 0 || !isUtf8(bytes) ? Option.none() : Result.getSuccess(parseJson(asText(bytes)))

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

const isJsonObject = Schema.is(JsonObject)
const errorMessageLimit = 16 * 1024

// Kept as JSON, not checked against a catalogue: the core knows no payload schema, and a record written
// from a GLAM payload carries its merchant identifiers exactly as the Python `ErrorPayload` does.
const identifiersOf = (data: unknown) => {
  const identifiers = field(data, "identifiers")
  return isJsonObject(identifiers) ? identifiers : null
}

/** The message given up on, whichever form it came in; `subject` and `payload` are absent when it was gone. */
export interface Origin {
  readonly stream: string
  readonly seq: number
  readonly subject: string | undefined
  readonly payload: Uint8Array | undefined
  readonly headers: Headers
  readonly consumer: string
  readonly deliveryCount: number
}

/** Reads the message given up on: a delivery, a message read by sequence, or the place of one gone. */
export const originOf = (
  message: Message | StoredMessage | { readonly stream: string; readonly seq: number }
): Origin => ({
  stream: message.stream,
  seq: "streamSeq" in message ? message.streamSeq : message.seq,
  subject: "subject" in message ? message.subject : undefined,
  payload: "payload" in message ? message.payload : undefined,
  headers: "headers" in message ? message.headers : [],
  consumer: "consumer" in message ? message.consumer : "",
  deliveryCount: "deliveryCount" in message ? message.deliveryCount : 0
})

/** What a record says about the failure besides the message: what `DeadLetter.PublishInput` gives it. */
export interface Failed {
  readonly consumer?: string | undefined
  readonly deliveryCount?: number | undefined
  readonly failure: { readonly code: string; readonly message: string; readonly operation: string }
  readonly decision: typeof Decision.Type
  readonly retryCount: number
  readonly maxRetries: number
  readonly firstFailureAt?: DateTime.Utc | undefined
  readonly envelope?: Pick<Envelope.Envelope<unknown>, "eventId" | "eventType" | "correlationId"> | undefined
}

/**
 * The record of a failure, with the original bytes inline. The ids come from the decoded envelope when
 * there is one, else from the bytes when they are JSON.
 */
export const recordOf = (input: Failed, origin: Origin, lastFailureAt: DateTime.Utc): Record => {
  const { payload } = origin
  const json = payload === undefined ? Option.none() : jsonOf(payload)
  const body = Option.getOrUndefined(json)
  const data = field(body, "data")
  const { code, message, operation } = input.failure
  return {
    identifiers: identifiersOf(data),
    errorCode: code,
    errorMessage: message.length > errorMessageLimit ? `${message.slice(0, errorMessageLimit)}… (truncated)` : message,
    failedOperation: operation,
    retryCount: input.retryCount,
    maxRetries: input.maxRetries,
    originalData: isJsonObject(data) ? data : null,
    originalSubject: origin.subject ?? null,
    originalHeaders: headerLists(origin.headers),
    originalPayload: payload !== undefined && Option.isSome(json) ? asText(payload) : null,
    originalPayloadBase64:
      payload !== undefined && Option.isNone(json) ? Buffer.from(payload).toString("base64") : null,
    originalPayloadChunks: [],
    originalPayloadSize: payload?.byteLength ?? null,
    originalPayloadSha256: payload === undefined ? null : sha256(payload),
    stream: origin.stream,
    streamSeq: origin.seq,
    consumer: input.consumer ?? origin.consumer,
    deliveryCount: input.deliveryCount ?? origin.deliveryCount,
    firstFailureAt: input.firstFailureAt ?? lastFailureAt,
    lastFailureAt,
    eventId: input.envelope?.eventId ?? stringField(body, "event_id"),
    eventType: input.envelope?.eventType ?? stringField(body, "event_type"),
    correlationId: input.envelope?.correlationId ?? stringField(body, "correlation_id"),
    decision: input.decision
  }
}

const chunkBytes = 256 * 1024

/** The bytes cut into chunks that each fit in a message of `limit` bytes. */
export const chunksOf = (payload: Uint8Array, limit: number): ReadonlyArray<Uint8Array> => {
  const size = Math.max(1, Math.min(chunkBytes, limit))
  return Array.from({ length: Math.ceil(payload.byteLength / size) }, (_, i) =>
    payload.subarray(i * size, (i + 1) * size)
  )
}

/** The original bytes a record holds itself, as text or base64; `None` when they are chunked or were not kept. */
export const inlineBytes = (record: Record): Option.Option<Uint8Array> =>
  record.originalPayload !== null
    ? Option.some(Buffer.from(record.originalPayload, "utf8"))
    : record.originalPayloadBase64 !== null
      ? Option.some(Buffer.from(record.originalPayloadBase64, "base64"))
      : Option.none()

/** The chunks found of a record's original bytes put together; `None` unless they match its size and sha256. */
export const joinChunks = (record: Record, parts: ReadonlyArray<Uint8Array>): Option.Option<Uint8Array> => {
  const bytes = Buffer.concat(parts)
  return bytes.byteLength === record.originalPayloadSize && sha256(bytes) === record.originalPayloadSha256
    ? Option.some(bytes)
    : Option.none()
}

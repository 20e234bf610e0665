/**
 * The envelope every event travels in, byte for byte as the Python services write it.
 *
 * On the wire an envelope is pydantic's `EventEnvelope.model_dump_json()`: compact JSON with the keys
 * `event_id, event_type, correlation_id, source_service, timestamp, data` in that order and the timestamp
 * as Python's `datetime.isoformat()`. In TypeScript it is `Envelope<A>`, camelCase, with a
 * `DateTime.Utc` timestamp and a payload already decoded by its schema.
 *
 * Decoding is staged so that a failure says exactly what was wrong: the bytes (`Json`), the envelope
 * fields (`Envelope`) or the payload (`Payload`). Parsers are compiled once per payload schema
 * (`encoder`, `decoder`); the returned functions are the per-message hot path.
 *
 * The envelope also decides the NATS headers of a message: `Nats-Msg-Id` (the server's dedupe key) and
 * the W3C trace context. Not here: which payload belongs to which subject (`Event`).
 *
 * @since 0.1.0
 */
import { Buffer, isUtf8 } from "node:buffer"
import {
  Context,
  DateTime,
  Effect,
  Exit,
  Option,
  Result,
  Schema,
  SchemaIssue,
  SchemaTransformation,
  Tracer
} from "effect"
import { Headers as HttpHeaders, HttpTraceContext } from "effect/http"
import type { Headers } from "./Broker.js"
import { messageOf } from "./internal/errorText.js"
import * as IsoDateTime from "./internal/isoDateTime.js"
import { parseJson } from "./internal/json.js"
import { firstIssue, issueMessage } from "./internal/schemaIssues.js"

/**
 * An event as the library hands it to handlers and takes it from publishers.
 *
 * @category models
 * @since 0.1.0
 */
export interface Envelope<A> {
  readonly eventId: string
  /** The subject the event was published to, e.g. `evt.merchant.created.v1`. */
  readonly eventType: string
  readonly correlationId: string
  readonly sourceService: string
  /** Millisecond precision: the microseconds Python writes are truncated on decode. */
  readonly timestamp: DateTime.Utc
  readonly data: A
}

/**
 * A UTC date-time as the Python services write it.
 *
 * Decodes `datetime.isoformat()` (`2026-11-26T12:33:37.123456+00:00`), pydantic's `...Z`, any other
 * offset (converted to UTC) and no offset at all (a naive Python datetime, read as UTC). Digits below
 * the millisecond are truncated. Encodes `isoformat()` of the UTC value: six fractional digits when
 * the milliseconds are non-zero (`.123000+00:00`), none otherwise.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Timestamp = Schema.String.pipe(
  Schema.decodeTo(
    Schema.DateTimeUtc,
    SchemaTransformation.transformEffect({
      decode: (text: string, options) => {
        const epochMillis = IsoDateTime.parse(text)
        return epochMillis === undefined
          ? Effect.fail(new SchemaIssue.InvalidValue({ expected: "an ISO-8601 date-time" }, text, options))
          : Effect.succeed(DateTime.makeUnsafe(epochMillis))
      },
      encode: (utc: DateTime.Utc, options) => {
        const text = IsoDateTime.format(DateTime.toEpochMillis(utc))
        return text === undefined
          ? Effect.fail(new SchemaIssue.InvalidValue({ expected: "a date-time in the years 1-9999" }, utc, options))
          : Effect.succeed(text)
      }
    })
  )
).annotate({ identifier: "Timestamp" })

const wireKeys = {
  eventId: "event_id",
  eventType: "event_type",
  correlationId: "correlation_id",
  sourceService: "source_service"
} as const

/**
 * The envelope codec for a payload schema: the snake_case JSON object on one side, `Envelope<A>` on
 * the other.
 *
 * @category schemas
 * @since 0.1.0
 */
export const schema = <S extends Schema.Top>(data: S) =>
  Schema.Struct({
    eventId: Schema.String,
    eventType: Schema.String,
    correlationId: Schema.String,
    sourceService: Schema.String,
    timestamp: Timestamp,
    data
  }).pipe(Schema.encodeKeys(wireKeys))

/**
 * Where decoding stopped: the bytes were not a JSON object, an envelope field was missing or wrong,
 * or the payload did not match its event's schema.
 *
 * @category models
 * @since 0.1.0
 */
export const DecodeStage = Schema.Literals(["Json", "Envelope", "Payload"])

/**
 * @category models
 * @since 0.1.0
 */
export type DecodeStage = typeof DecodeStage.Type

/**
 * Bytes that cannot become an event. Never retryable: the same bytes fail the same way, so the message
 * belongs in the dead-letter stream, which is why the original bytes and whatever envelope fields
 * could be read are kept.
 *
 * @category errors
 * @since 0.1.0
 */
export class DecodeError extends Schema.TaggedError<DecodeError>()("DecodeError", {
  stage: DecodeStage,
  message: Schema.String,
  /** The failing field on the wire, e.g. `data.identifiers.merchant_id`. */
  path: Schema.optional(Schema.String),
  raw: Schema.Uint8Array,
  subject: Schema.optional(Schema.String),
  eventId: Schema.optional(Schema.String),
  eventType: Schema.optional(Schema.String),
  correlationId: Schema.optional(Schema.String)
}) {
  /** Always `false`: decoding is deterministic. */
  get isRetryable(): boolean {
    return false
  }
}

/**
 * A payload (or envelope) that does not match its schema at publish time; nothing was sent.
 *
 * @category errors
 * @since 0.1.0
 */
export class EncodeError extends Schema.TaggedError<EncodeError>()("EncodeError", {
  eventType: Schema.String,
  message: Schema.String,
  /** The failing field on the wire, e.g. `data.identifiers.merchant_id`. */
  path: Schema.optional(Schema.String)
}) {}

type JsonObject = { readonly [key: string]: unknown }

const isJsonObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

// The envelope with the payload left undecoded, keyed as on the wire so that issue paths name wire fields.
const WireEnvelope = Schema.Struct({
  event_id: Schema.String,
  event_type: Schema.String,
  correlation_id: Schema.String,
  source_service: Schema.String,
  timestamp: Timestamp,
  data: Schema.declare(isJsonObject, { expected: "a JSON object" })
})

const decodeWireEnvelope = Schema.decodeUnknownResult(WireEnvelope)

const stringField = (object: JsonObject, key: string): string | undefined => {
  const value = object[key]
  return typeof value === "string" ? value : undefined
}

const jsonFailure = (raw: Uint8Array, subject: string | undefined, detail: string) =>
  Result.fail(new DecodeError({ stage: "Json", message: `Json: ${detail}`, raw, subject }))

/**
 * The envelope of a well-formed object, checked by hand; `undefined` for anything else, which then goes
 * through the `WireEnvelope` schema for the exact error. Same rules, a fraction of the cost: this runs
 * once per message.
 */
const wellFormed = (value: JsonObject): Envelope<JsonObject> | undefined => {
  const { event_id, event_type, correlation_id, source_service, timestamp, data } = value
  if (
    typeof event_id !== "string" ||
    typeof event_type !== "string" ||
    typeof correlation_id !== "string" ||
    typeof source_service !== "string" ||
    typeof timestamp !== "string" ||
    !isJsonObject(data)
  ) {
    return undefined
  }
  const epochMillis = IsoDateTime.parse(timestamp)
  if (epochMillis === undefined) return undefined
  return {
    eventId: event_id,
    eventType: event_type,
    correlationId: correlation_id,
    sourceService: source_service,
    timestamp: DateTime.makeUnsafe(epochMillis),
    data
  }
}

const decodeEnvelopeResult = (
  raw: Uint8Array,
  subject: string | undefined
): Result.Result<Envelope<JsonObject>, DecodeError> => {
  if (raw.byteLength === 0) return jsonFailure(raw, subject, "the body is empty")
  if (!isUtf8(raw)) return jsonFailure(raw, subject, "the body is not UTF-8 text")
  const json = parseJson(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("utf8"))
  if (Result.isFailure(json)) return jsonFailure(raw, subject, `the body is not JSON (${json.failure})`)
  const value = json.success
  if (!isJsonObject(value)) {
    const kind = value === null ? "null" : Array.isArray(value) ? "an array" : `a ${typeof value}`
    return jsonFailure(raw, subject, `the body is ${kind}, not a JSON object`)
  }
  const fast = wellFormed(value)
  if (fast !== undefined) return Result.succeed(fast)
  const wire = decodeWireEnvelope(value)
  if (Result.isFailure(wire)) {
    const { detail, path } = firstIssue(wire.failure)
    return Result.fail(
      new DecodeError({
        stage: "Envelope",
        message: issueMessage("Envelope", path, detail),
        path,
        raw,
        subject,
        eventId: stringField(value, "event_id"),
        eventType: stringField(value, "event_type"),
        correlationId: stringField(value, "correlation_id")
      })
    )
  }
  const envelope = wire.success
  return Result.succeed({
    eventId: envelope.event_id,
    eventType: envelope.event_type,
    correlationId: envelope.correlation_id,
    sourceService: envelope.source_service,
    timestamp: envelope.timestamp,
    data: envelope.data
  })
}

/**
 * Bytes to an envelope whose payload is not decoded yet: the `Json` and `Envelope` stages. Synchronous;
 * the form for hot paths.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeEnvelopeExit = (raw: Uint8Array, subject?: string): Exit.Exit<Envelope<unknown>, DecodeError> => {
  const envelope = decodeEnvelopeResult(raw, subject)
  return Result.isFailure(envelope) ? Exit.fail(envelope.failure) : Exit.succeed(envelope.success)
}

/**
 * Bytes to an envelope whose payload is not decoded yet: the `Json` and `Envelope` stages.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decodeEnvelope: (raw: Uint8Array, subject?: string) => Effect.Effect<Envelope<unknown>, DecodeError> =
  decodeEnvelopeExit

/**
 * Compiles a decoder for one payload schema: bytes to `Envelope<A>` through all three stages.
 * The returned function is synchronous and allocates no parser; call `decoder` once per schema.
 *
 * @category decoding
 * @since 0.1.0
 */
export const decoder = <A>(
  payload: Schema.ConstraintDecoder<A>
): ((raw: Uint8Array, subject?: string) => Exit.Exit<Envelope<A>, DecodeError>) => {
  const decodePayload = Schema.decodeUnknownResult(payload)
  return (raw, subject) => {
    const result = decodeEnvelopeResult(raw, subject)
    if (Result.isFailure(result)) return Exit.fail(result.failure)
    const envelope = result.success
    const data = decodePayload(envelope.data)
    if (Result.isFailure(data)) {
      const { detail, path } = firstIssue(data.failure, "data")
      return Exit.fail(
        new DecodeError({
          stage: "Payload",
          message: issueMessage(`Payload of ${envelope.eventType}`, path, detail),
          path,
          raw,
          subject,
          eventId: envelope.eventId,
          eventType: envelope.eventType,
          correlationId: envelope.correlationId
        })
      )
    }
    return Exit.succeed({ ...envelope, data: data.success })
  }
}

const encodeFailure = (eventType: string, path: string | undefined, detail: string) =>
  Exit.fail(new EncodeError({ eventType, path, message: issueMessage(`Cannot encode ${eventType}`, path, detail) }))

// The wire name of the first envelope field that is not a string (a value that bypassed the types).
const nonStringField = (envelope: Envelope<unknown>): string | undefined =>
  typeof envelope.eventId !== "string"
    ? "event_id"
    : typeof envelope.eventType !== "string"
      ? "event_type"
      : typeof envelope.correlationId !== "string"
        ? "correlation_id"
        : typeof envelope.sourceService !== "string"
          ? "source_service"
          : undefined

/**
 * Compiles an encoder for one payload schema: `Envelope<A>` to the bytes the Python services read.
 * The payload is validated against its schema (a value that bypassed the types fails here, not in the
 * consumer). The returned function is synchronous; call `encoder` once per schema.
 *
 * @category encoding
 * @since 0.1.0
 */
export const encoder = <A>(
  payload: Schema.ConstraintCodec<A, unknown>
): ((envelope: Envelope<A>) => Exit.Exit<Uint8Array, EncodeError>) => {
  const encodePayload = Schema.encodeUnknownResult(payload)
  const formatTimestamp = IsoDateTime.formatter()
  return (envelope) => {
    const eventType = typeof envelope.eventType === "string" ? envelope.eventType : "<no event type>"
    const field = nonStringField(envelope)
    if (field !== undefined) return encodeFailure(eventType, field, "Expected string")
    if (!DateTime.isDateTime(envelope.timestamp)) return encodeFailure(eventType, "timestamp", "Expected a DateTime")
    const timestamp = formatTimestamp(DateTime.toEpochMillis(envelope.timestamp))
    if (timestamp === undefined) {
      return encodeFailure(eventType, "timestamp", "Expected a date-time in the years 1-9999")
    }
    const data = encodePayload(envelope.data)
    if (Result.isFailure(data)) {
      const { detail, path } = firstIssue(data.failure, "data")
      return encodeFailure(eventType, path, detail)
    }
    const wire = {
      event_id: envelope.eventId,
      event_type: eventType,
      correlation_id: envelope.correlationId,
      source_service: envelope.sourceService,
      timestamp,
      data: data.success
    }
    const json = Result.try(() => JSON.stringify(wire))
    return Result.isFailure(json)
      ? encodeFailure(eventType, "data", `not serializable as JSON (${messageOf(json.failure)})`)
      : Exit.succeed(Buffer.from(json.success))
  }
}

/**
 * The W3C `tracestate` that came with a span's trace, kept in the annotations of the span read from
 * the headers so that it travels on with the trace.
 *
 * @category tracing
 * @since 0.1.0
 */
export class TraceState extends Context.Service<TraceState, string>()("@glam/messaging/Envelope/TraceState") {}

const traceStateOf = (span: Tracer.AnySpan): Option.Option<string> => {
  let current: Option.Option<Tracer.AnySpan> = Option.some(span)
  while (Option.isSome(current)) {
    const state = Context.getOption(current.value.annotations, TraceState)
    if (Option.isSome(state) || current.value._tag === "ExternalSpan") return state
    current = current.value.parent
  }
  return Option.none()
}

/**
 * The W3C trace context of a span as NATS headers: `traceparent`, plus `tracestate` when the trace
 * carries one.
 *
 * @category tracing
 * @since 0.1.0
 */
export const traceHeaders = (span: Tracer.AnySpan): Headers => {
  const traceparent = `00-${span.traceId.padStart(32, "0")}-${span.spanId}-${span.sampled ? "01" : "00"}`
  const state = traceStateOf(span)
  return Option.isSome(state)
    ? [
        ["traceparent", traceparent],
        ["tracestate", state.value]
      ]
    : [["traceparent", traceparent]]
}

/**
 * The remote parent span of a received message, from its `traceparent` (and `tracestate`) headers;
 * header names are matched case-insensitively. `None` when there is no valid trace context.
 *
 * @category tracing
 * @since 0.1.0
 */
export const parentSpanFromHeaders = (headers: Headers): Option.Option<Tracer.ExternalSpan> => {
  const byName = HttpHeaders.fromInput(headers)
  return Option.map(HttpTraceContext.w3c(byName), (parent) => {
    const state = byName.tracestate
    return state === undefined || state === ""
      ? parent
      : Tracer.externalSpan({ ...parent, annotations: Context.make(TraceState, state) })
  })
}

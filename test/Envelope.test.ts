import { assert, describe, expect, it } from "@effect/vitest"
import { Context, DateTime, Effect, Exit, Option, Schema, Tracer } from "effect"
import * as Envelope from "../src/Envelope.js"

// Offset-less date-times must read as UTC whatever the machine's zone: run this file far from UTC.
process.env.TZ = "Pacific/Kiritimati"

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
const text = (raw: Uint8Array): string => new TextDecoder().decode(raw)
const utc = (iso: string): DateTime.Utc => DateTime.makeUnsafe(iso)

const Payload = Schema.Struct({
  id: Schema.String.check(Schema.isUUID()),
  count: Schema.Int,
  items: Schema.Array(Schema.Struct({ name: Schema.String }))
})
type Payload = typeof Payload.Type

const encode = Envelope.encoder(Payload)
const decode = Envelope.decoder(Payload)

const envelope: Envelope.Envelope<Payload> = {
  eventId: "e-1",
  eventType: "evt.test.happened.v1",
  correlationId: "c-1",
  sourceService: "svc",
  timestamp: utc("2026-11-26T12:33:37.123Z"),
  data: { id: "0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00", count: 2, items: [{ name: "a" }] }
}

const wire = {
  event_id: "e-1",
  event_type: "evt.test.happened.v1",
  correlation_id: "c-1",
  source_service: "svc",
  timestamp: "2026-11-26T12:33:37.123456+00:00",
  data: { id: "0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00", count: 2, items: [{ name: "a" }] }
}

const succeeded = <A, E>(exit: Exit.Exit<A, E>): A => {
  assert(Exit.isSuccess(exit), `expected a success, got ${String(exit)}`)
  return exit.value
}

const decodeFailure = (exit: Exit.Exit<unknown, Envelope.DecodeError>): Envelope.DecodeError => {
  assert(Exit.isFailure(exit), "expected a decode failure")
  const error = exit.cause.reasons[0]
  assert(error?._tag === "Fail", "expected a typed failure")
  return error.error
}

const encodeFailure = (exit: Exit.Exit<unknown, Envelope.EncodeError>): Envelope.EncodeError => {
  assert(Exit.isFailure(exit), "expected an encode failure")
  const error = exit.cause.reasons[0]
  assert(error?._tag === "Fail", "expected a typed failure")
  return error.error
}

describe("Timestamp", () => {
  const decodeTimestamp = Schema.decodeUnknownSync(Envelope.Timestamp)
  const encodeTimestamp = Schema.encodeSync(Envelope.Timestamp)

  it("reads every form pydantic writes, as UTC, truncating to milliseconds", () => {
    const expected = DateTime.toEpochMillis(utc("2026-11-26T12:33:37.123Z"))
    for (const form of [
      "2026-11-26T12:33:37.123456+00:00",
      "2026-11-26T12:33:37.123999Z",
      "2026-11-26T12:33:37.123456",
      "2026-11-26T14:33:37.123+02:00",
      "2026-11-26T07:03:37.123-05:30",
      "2026-11-26 12:33:37.123"
    ]) {
      expect(DateTime.toEpochMillis(decodeTimestamp(form)), form).toBe(expected)
    }
    expect(DateTime.formatIso(decodeTimestamp("2026-11-26T12:33:37"))).toBe("2026-11-26T12:33:37.000Z")
    expect(DateTime.formatIso(decodeTimestamp("0001-01-01T00:00:00"))).toBe("0001-01-01T00:00:00.000Z")
    expect(DateTime.formatIso(decodeTimestamp("2024-02-29T23:59:59.999999+00:00"))).toBe("2024-02-29T23:59:59.999Z")
  })

  it("rejects what is not a date-time", () => {
    for (const bad of [
      "",
      "yesterday",
      "2026-11-26",
      "2026-13-01T00:00:00",
      "2026-02-29T00:00:00",
      "2026-11-31T00:00:00",
      "2026-11-26T24:00:00",
      "2026-11-26T12:60:00",
      "2026-11-26T12:00:61",
      "0000-01-01T00:00:00",
      "2026-11-26T12:00:00+24:00",
      "2026-11-26T12:00:00 UTC"
    ]) {
      expect(() => decodeTimestamp(bad), bad).toThrow("Expected an ISO-8601 date-time")
    }
  })

  it("writes Python's isoformat() of the UTC value", () => {
    expect(encodeTimestamp(utc("2026-11-26T12:33:37.123Z"))).toBe("2026-11-26T12:33:37.123000+00:00")
    expect(encodeTimestamp(utc("2026-11-26T12:33:37.000Z"))).toBe("2026-11-26T12:33:37+00:00")
    expect(encodeTimestamp(utc("2026-11-26T12:33:37.001Z"))).toBe("2026-11-26T12:33:37.001000+00:00")
    expect(encodeTimestamp(utc("0001-01-01T00:00:00Z"))).toBe("0001-01-01T00:00:00+00:00")
    expect(encodeTimestamp(utc("1969-12-31T23:59:59.999Z"))).toBe("1969-12-31T23:59:59.999000+00:00")
    expect(encodeTimestamp(utc("9999-12-31T23:59:59.999Z"))).toBe("9999-12-31T23:59:59.999000+00:00")
    expect(() => encodeTimestamp(utc("+010000-01-01T00:00:00Z"))).toThrow("years 1-9999")
  })
})

describe("encoder", () => {
  it("writes the exact bytes of pydantic's model_dump_json()", () => {
    const raw = succeeded(encode(envelope))
    expect(text(raw)).toBe(
      '{"event_id":"e-1","event_type":"evt.test.happened.v1","correlation_id":"c-1","source_service":"svc",' +
        '"timestamp":"2026-11-26T12:33:37.123000+00:00",' +
        '"data":{"id":"0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00","count":2,"items":[{"name":"a"}]}}'
    )
  })

  it("writes non-ASCII text as UTF-8, unescaped, as pydantic does", () => {
    const raw = succeeded(encode({ ...envelope, data: { ...envelope.data, items: [{ name: "Café ✓" }] } }))
    expect(text(raw)).toContain('"name":"Café ✓"')
    expect(raw.byteLength).toBe(text(raw).length + 3)
  })

  it("validates the payload and names the failing field", () => {
    const badUuid = encodeFailure(encode({ ...envelope, data: { ...envelope.data, id: "not-a-uuid" } }))
    expect(badUuid).toBeInstanceOf(Envelope.EncodeError)
    expect(badUuid.eventType).toBe("evt.test.happened.v1")
    expect(badUuid.path).toBe("data.id")
    expect(badUuid.message).toContain("Expected a UUID")
    expect(badUuid.message).toContain("data.id")

    expect(encodeFailure(encode({ ...envelope, data: { ...envelope.data, count: 1.5 } })).path).toBe("data.count")
  })

  it("validates values that bypassed the types", () => {
    // Values from untyped code (JSON.parse, a JavaScript caller) reach the encoder as they are.
    const smuggled = <T = Payload>(value: unknown): T => value as T
    const missing = encodeFailure(encode({ ...envelope, data: smuggled({ id: envelope.data.id, items: [] }) }))
    expect(missing.path).toBe("data.count")
    expect(missing.message).toContain("Missing key")
    const wrongType = encodeFailure(encode({ ...envelope, data: smuggled({ ...envelope.data, items: [{ name: 7 }] }) }))
    expect(wrongType.path).toBe("data.items[0].name")
    const notAString = encodeFailure(encode({ ...envelope, correlationId: smuggled<string>(42) }))
    expect(notAString.path).toBe("correlation_id")
  })

  it("refuses timestamps Python cannot hold and payloads JSON cannot hold", () => {
    expect(encodeFailure(encode({ ...envelope, timestamp: utc("+010000-01-01T00:00:00Z") })).path).toBe("timestamp")
    const Loose = Schema.Struct({ value: Schema.Unknown })
    const failure = encodeFailure(Envelope.encoder(Loose)({ ...envelope, data: { value: 10n } }))
    expect(failure.path).toBe("data")
    expect(failure.message).toContain("JSON")
  })
})

describe("decoder", () => {
  it("reads what pydantic writes", () => {
    expect(succeeded(decode(bytes(JSON.stringify(wire))))).toEqual(envelope)
  })

  it("round-trips an envelope", () => {
    expect(succeeded(decode(succeeded(encode(envelope))))).toEqual(envelope)
  })

  it("reads a Uint8Array view into a larger buffer", () => {
    const body = bytes(JSON.stringify(wire))
    const framed = new Uint8Array(body.byteLength + 20)
    framed.set(body, 10)
    expect(Exit.isSuccess(decode(framed.subarray(10, 10 + body.byteLength)))).toBe(true)
  })

  it("fails at the Json stage, keeping the raw bytes", () => {
    const cases: ReadonlyArray<readonly [string, Uint8Array, string]> = [
      ["empty body", new Uint8Array(), "empty"],
      ["not JSON", bytes("{event_id: 1"), "not JSON"],
      ["truncated JSON", bytes(JSON.stringify(wire).slice(0, 40)), "not JSON"],
      ["an array", bytes("[1,2,3]"), "an array"],
      ["a number", bytes("42"), "a number"],
      ["a string", bytes('"evt"'), "a string"],
      ["null", bytes("null"), "null"],
      ["invalid UTF-8", new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), "UTF-8"],
      ["binary garbage", new Uint8Array([0x00, 0x9f, 0x92, 0x96, 0xc3, 0x28, 0x01]), "UTF-8"]
    ]
    for (const [name, raw, detail] of cases) {
      const error = decodeFailure(decode(raw, "evt.test.happened.v1"))
      expect(error, name).toBeInstanceOf(Envelope.DecodeError)
      expect(error.stage, name).toBe("Json")
      expect(error.message, name).toContain("Json")
      expect(error.message, name).toContain(detail)
      expect(error.raw, name).toEqual(raw)
      expect(error.subject, name).toBe("evt.test.happened.v1")
      expect(error.isRetryable, name).toBe(false)
    }
  })

  it("fails at the Envelope stage on each missing field, naming it", () => {
    for (const field of Object.keys(wire)) {
      const raw = bytes(JSON.stringify(Object.fromEntries(Object.entries(wire).filter(([key]) => key !== field))))
      const error = decodeFailure(decode(raw))
      expect(error.stage, field).toBe("Envelope")
      expect(error.path, field).toBe(field)
      expect(error.message, field).toBe(`Envelope: Missing key at ${field}`)
      expect(error.raw, field).toEqual(raw)
      expect(error.eventId, field).toBe(field === "event_id" ? undefined : "e-1")
      expect(error.correlationId, field).toBe(field === "correlation_id" ? undefined : "c-1")
    }
  })

  it("fails at the Envelope stage on wrong types and bad timestamps", () => {
    const cases: ReadonlyArray<readonly [string, unknown, string]> = [
      ["event_id", 17, "Expected string"],
      ["event_type", null, "Expected string"],
      ["source_service", ["svc"], "Expected string"],
      ["timestamp", "2026-11-26", "Expected an ISO-8601 date-time"],
      ["timestamp", 1_764_160_417, "Expected string"],
      ["data", [1, 2], "Expected a JSON object"],
      ["data", null, "Expected a JSON object"]
    ]
    for (const [field, value, detail] of cases) {
      const raw = bytes(JSON.stringify({ ...wire, [field]: value }))
      const error = decodeFailure(decode(raw))
      expect(error.stage, field).toBe("Envelope")
      expect(error.path, field).toBe(field)
      expect(error.message, field).toContain(detail)
      expect(error.eventType, field).toBe(field === "event_type" ? undefined : "evt.test.happened.v1")
    }
  })

  it("fails at the Payload stage with the wire path of the field", () => {
    const cases: ReadonlyArray<readonly [unknown, string, string]> = [
      [{ ...wire.data, id: "nope" }, "data.id", "Expected a UUID"],
      [{ ...wire.data, count: "2" }, "data.count", "Expected number"],
      [{ id: wire.data.id, items: [] }, "data.count", "Missing key"],
      [{ ...wire.data, items: [{ name: "a" }, { title: "b" }] }, "data.items[1].name", "Missing key"]
    ]
    for (const [data, path, detail] of cases) {
      const raw = bytes(JSON.stringify({ ...wire, data }))
      const error = decodeFailure(decode(raw, "evt.test.happened.v1"))
      expect(error.stage, path).toBe("Payload")
      expect(error.path, path).toBe(path)
      expect(error.message, path).toBe(`Payload of evt.test.happened.v1: ${detail} at ${path}`)
      expect(error.raw, path).toEqual(raw)
      expect([error.eventId, error.eventType, error.correlationId, error.subject], path).toEqual([
        "e-1",
        "evt.test.happened.v1",
        "c-1",
        "evt.test.happened.v1"
      ])
    }
  })

  it.effect("decodeEnvelope leaves the payload undecoded and fails as a typed error", () =>
    Effect.gen(function* () {
      const decoded = yield* Envelope.decodeEnvelope(bytes(JSON.stringify({ ...wire, data: { anything: [1] } })))
      expect(decoded.data).toEqual({ anything: [1] })
      expect(decoded.timestamp).toEqual(envelope.timestamp)
      const error = yield* Effect.flip(Envelope.decodeEnvelope(bytes("[]")))
      expect(error._tag).toBe("DecodeError")
      expect(error.stage).toBe("Json")
    })
  )
})

describe("schema", () => {
  const codec = Envelope.schema(Payload)

  it("is a codec between the wire object and Envelope<A>, in the wire's key order", () => {
    const encoded = Schema.encodeSync(codec)(envelope)
    expect(Object.keys(encoded)).toEqual([
      "event_id",
      "event_type",
      "correlation_id",
      "source_service",
      "timestamp",
      "data"
    ])
    expect(encoded.timestamp).toBe("2026-11-26T12:33:37.123000+00:00")
    expect(Schema.decodeUnknownSync(codec)(wire)).toEqual(envelope)
  })
})

describe("headers", () => {
  const traceId = "0af7651916cd43dd8448eb211c80319c"
  const spanId = "b7ad6b7169203331"

  it("writes W3C traceparent from the span", () => {
    expect(Envelope.traceHeaders(Tracer.externalSpan({ traceId, spanId, sampled: true }))).toEqual([
      ["traceparent", `00-${traceId}-${spanId}-01`]
    ])
    expect(Envelope.traceHeaders(Tracer.externalSpan({ traceId, spanId, sampled: false }))).toEqual([
      ["traceparent", `00-${traceId}-${spanId}-00`]
    ])
  })

  it("reads the parent span back, tracestate included, with header names in any case", () => {
    const parent = Envelope.parentSpanFromHeaders([
      ["Nats-Msg-Id", "e-1"],
      ["TraceParent", `00-${traceId}-${spanId}-01`],
      ["TraceState", "vendor=abc,other=1"]
    ])
    assert(Option.isSome(parent))
    expect([parent.value.traceId, parent.value.spanId, parent.value.sampled]).toEqual([traceId, spanId, true])
    expect(Context.getOption(parent.value.annotations, Envelope.TraceState)).toEqual(Option.some("vendor=abc,other=1"))
    expect(Envelope.traceHeaders(parent.value)).toEqual([
      ["traceparent", `00-${traceId}-${spanId}-01`],
      ["tracestate", "vendor=abc,other=1"]
    ])
  })

  it("finds no parent in missing or malformed trace headers", () => {
    expect(Envelope.parentSpanFromHeaders([["Nats-Msg-Id", "e-1"]])).toEqual(Option.none())
    expect(Envelope.parentSpanFromHeaders([["traceparent", "00-xyz-b7ad6b7169203331-01"]])).toEqual(Option.none())
    expect(Envelope.parentSpanFromHeaders([["traceparent", `00-${"0".repeat(32)}-${spanId}-01`]])).toEqual(
      Option.none()
    )
  })

  it.effect("a child span continues the remote trace and keeps its tracestate", () =>
    Effect.gen(function* () {
      const remote = Envelope.parentSpanFromHeaders([
        ["traceparent", `00-${traceId}-${spanId}-01`],
        ["tracestate", "vendor=abc"]
      ])
      assert(Option.isSome(remote))
      const child = yield* Effect.currentSpan.pipe(Effect.withSpan("handle", { parent: remote.value }))
      const headers = Envelope.traceHeaders(child)
      expect(child.spanId).not.toBe(spanId)
      expect(headers).toEqual([
        ["traceparent", `00-${traceId}-${child.spanId}-01`],
        ["tracestate", "vendor=abc"]
      ])
    })
  )
})

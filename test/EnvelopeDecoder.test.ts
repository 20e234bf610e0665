/**
 * The envelope decoder's fast path (fields checked by hand, once per message) against the envelope
 * schema, over generated wire objects: valid envelopes and envelopes with a field dropped or of the
 * wrong type, a timestamp in another form, or `data` that is not an object. Both must accept the same
 * objects and give the same envelope; a difference would mean two sources of truth had drifted.
 */
import { describe, expect, it } from "@effect/vitest"
import { Arbitrary, DateTime, Exit, Schema } from "effect"
import * as Envelope from "../src/Envelope.js"

// `data` is any JSON object on the wire; the payload schema comes later.
const JsonObject = Schema.declare(
  (value: unknown): value is { readonly [key: string]: unknown } =>
    typeof value === "object" && value !== null && !Array.isArray(value)
)
const decodeBySchema = Schema.decodeUnknownExit(Envelope.schema(JsonObject))

const fields = ["event_id", "event_type", "correlation_id", "source_service", "timestamp", "data"] as const

// A wrong value of some JSON type, or the field left out.
const Broken = Schema.Union([
  Schema.Literal("<missing>"),
  Schema.Number,
  Schema.Boolean,
  Schema.Null,
  Schema.Array(Schema.Number),
  Schema.Record(Schema.String, Schema.String),
  Schema.String
])

// Timestamps as Python writes them and in the forms around them that are or are not ISO-8601.
const timestampForms = [
  "as is",
  "+00:00",
  "+02:00",
  "no zone",
  "micros",
  "space",
  "date only",
  "month 13",
  "garbage"
] as const
const timestampOf = (millis: number, form: (typeof timestampForms)[number]): string => {
  const iso = DateTime.formatIso(DateTime.makeUnsafe(millis))
  switch (form) {
    case "as is":
      return iso
    case "+00:00":
      return iso.replace("Z", "+00:00")
    case "+02:00":
      return iso.replace("Z", "+02:00")
    case "no zone":
      return iso.replace("Z", "")
    case "micros":
      return iso.replace("Z", "123Z")
    case "space":
      return iso.replace("T", " ")
    case "date only":
      return iso.slice(0, 10)
    case "month 13":
      return `${iso.slice(0, 5)}13${iso.slice(7)}`
    case "garbage":
      return `${iso}x`
  }
}

const wireObject = Arbitrary.map(
  Arbitrary.all({
    ids: Arbitrary.schema(Schema.Tuple([Schema.String, Schema.String, Schema.String, Schema.String])),
    millis: Arbitrary.schema(Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 4_102_444_800_000 }))),
    form: Arbitrary.schema(Schema.Literals(timestampForms)),
    data: Arbitrary.schema(Schema.Record(Schema.String, Schema.Union([Schema.String, Schema.Number]))),
    breaks: Arbitrary.array(Arbitrary.all([Arbitrary.schema(Schema.Literals(fields)), Arbitrary.schema(Broken)]), {
      maxLength: 2
    })
  }),
  ({ ids: [eventId, eventType, correlationId, sourceService], millis, form, data, breaks }) => {
    const object: Record<string, unknown> = {
      event_id: eventId,
      event_type: eventType,
      correlation_id: correlationId,
      source_service: sourceService,
      timestamp: timestampOf(millis, form),
      data
    }
    for (const [field, value] of breaks) {
      if (value === "<missing>") delete object[field]
      else object[field] = value
    }
    return object
  }
)

describe("the envelope decoder", () => {
  it.prop(
    "accepts exactly what the envelope schema accepts, and gives the same envelope",
    { object: wireObject },
    ({ object }) => {
      const text = JSON.stringify(object)
      const fast = Envelope.decodeEnvelopeExit(new TextEncoder().encode(text), "evt.test.checked.v1")
      // The schema reads the object as it arrives, after JSON (which writes -0 as 0).
      const bySchema = decodeBySchema(JSON.parse(text))
      expect(Exit.isSuccess(fast)).toBe(Exit.isSuccess(bySchema))
      if (Exit.isSuccess(fast) && Exit.isSuccess(bySchema)) expect(fast.value).toEqual(bySchema.value)
      if (Exit.isFailure(fast)) expect(fast.cause.toString()).toContain("DecodeError")
    },
    { arbitrary: { runs: 2000 } }
  )
})

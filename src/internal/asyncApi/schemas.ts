/**
 * The JSON Schemas of an AsyncAPI document, generated from Effect schemas: the NATS headers and one
 * envelope per event. They are generated together, so a named schema (`MerchantIdentifiers`, a payload
 * with an `identifier`) is defined once, in `components.schemas`, and referenced from every message.
 *
 * AsyncAPI's default schema format is a superset of JSON Schema draft 07, so Effect's draft 2020-12
 * output goes through its OpenAPI 3.1 conversion (component keys and `$ref`s under
 * `#/components/schemas/`) and then its draft-07 conversion (tuples, `$defs`). Both conversions throw on
 * what they cannot express; the caller turns that into its error.
 */
import { JsonSchema, Schema, SchemaRepresentation } from "effect"
import * as Envelope from "../../Envelope.js"
import type * as Event from "../../Event.js"

// `u`: Effect exports a pattern to JSON Schema only for a RegExp with Unicode semantics, as JSON Schema's.
const traceparentPattern = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/u

/** The headers `Publisher` writes. None is required: the Python services publish without headers. */
const Headers = Schema.StructWithRest(
  Schema.Struct({
    "Nats-Msg-Id": Schema.optionalKey(
      Schema.String.annotate({
        description:
          "The event id (`event_id`): JetStream stores a message once per id within the stream's duplicate window."
      })
    ),
    traceparent: Schema.optionalKey(
      Schema.String.check(Schema.isPattern(traceparentPattern)).annotate({
        description: "W3C trace context of the span that published the event."
      })
    ),
    tracestate: Schema.optionalKey(
      Schema.String.annotate({ description: "W3C trace state, when the publishing trace carries one." })
    ),
    "Nats-Expected-Last-Sequence": Schema.optionalKey(
      Schema.String.check(Schema.isPattern(/^[0-9]+$/u)).annotate({
        description: "Sent with `expectedLastSequence`: stored only if it is the stream's last sequence."
      })
    )
  }),
  [Schema.Record(Schema.String, Schema.String)]
).annotate({
  identifier: "NatsHeaders",
  description:
    "NATS headers written by the @glam/messaging publisher, and any the caller adds. Messages published by the Python services carry none."
})

/**
 * The schemas of a document: `headers` and `payloads` (one per event, in order) are what the messages
 * hold, `$ref`s into `components` among them.
 */
export interface MessageSchemas {
  readonly headers: JsonSchema.JsonSchema
  readonly payloads: ReadonlyArray<JsonSchema.JsonSchema>
  readonly components: JsonSchema.Definitions
}

const toDraft07 = (schema: JsonSchema.JsonSchema, definitions: JsonSchema.Definitions = {}) =>
  JsonSchema.toDocumentDraft07({ dialect: "draft-2020-12", schema, definitions })

/** Throws when Effect cannot express a schema in JSON Schema draft 07. */
export const messageSchemas = (events: ReadonlyArray<Event.Any>): MessageSchemas => {
  const envelopes = events.map((event) => Schema.toCodecJson(Envelope.schema(event.payload)).ast)
  const generated = SchemaRepresentation.toJsonSchemaMultiDocument(
    SchemaRepresentation.toRepresentations([Schema.toCodecJson(Headers).ast, ...envelopes])
  )
  // Refs already point at `#/components/schemas/`: the draft-07 conversion leaves them as they are.
  const { schemas, definitions } = JsonSchema.toMultiDocumentOpenApi3_1(generated)
  const [headers, ...payloads] = schemas
  return {
    headers: toDraft07(headers).schema,
    payloads: payloads.map((payload) => toDraft07(payload).schema),
    components: toDraft07({}, definitions).definitions
  }
}

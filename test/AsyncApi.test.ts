// The generated documents are checked by the AsyncAPI parser (the JSON Schema of AsyncAPI 3.0 and its
// Spectral rules), and their payload schemas against real envelopes: the pydantic fixtures the Python
// services' format was taken from, and what the library's own encoders write.
import { readdirSync, readFileSync } from "node:fs"
import { Parser } from "@asyncapi/parser"
import { assert, describe, expect, it } from "@effect/vitest"
import { Ajv } from "ajv"
import { DateTime, Effect, Exit, Schema } from "effect"
import * as AsyncApi from "../src/AsyncApi.js"
import * as Envelope from "../src/Envelope.js"
import * as Event from "../src/Event.js"
import * as GlamAsyncApi from "../src/glam/AsyncApi.js"
import * as Events from "../src/glam/Events.js"
import { samples } from "./glam/samples.js"

const parser = new Parser()
const parse = (text: string) => Effect.promise(() => parser.parse(text))

// Spectral's severities: 0 error, 1 warning, 2 information, 3 hint.
const errorsAndWarnings = (diagnostics: ReadonlyArray<{ readonly severity: number }>) =>
  diagnostics.filter((diagnostic) => diagnostic.severity <= 1)

const servers = [{ name: "local", url: "nats://localhost:4222", description: "nats-server of docker compose" }]

const Invoice = Schema.Struct({ invoice_id: Schema.String, amount_cents: Schema.Int }).annotate({
  identifier: "Invoice"
})
const InvoiceIssued = Event.make("evt.billing.invoice.issued.v1", Invoice)
const SendInvoice = Event.make("cmd.billing.invoice.send.v1", Schema.Struct({ invoice: Invoice }))

const fixtureDir = new URL("fixtures/pydantic/", import.meta.url)

// Every envelope of the fixtures with a GLAM subject (error_payload.jsonl holds dead letters, `dlq.*`).
const fixtureEnvelopes = (): ReadonlyArray<{ readonly subject: string; readonly json: unknown }> =>
  readdirSync(fixtureDir)
    .filter((file) => file.endsWith(".jsonl") && file !== "error_payload.jsonl")
    .flatMap((file) => readFileSync(new URL(file, fixtureDir), "utf8").split("\n"))
    .filter((line) => line !== "")
    .map((line) => {
      const envelope = Envelope.decodeEnvelopeExit(new TextEncoder().encode(line))
      assert(Exit.isSuccess(envelope), String(envelope))
      return { subject: envelope.value.eventType, json: JSON.parse(line) }
    })

const encodedSamples = (): ReadonlyArray<{ readonly subject: string; readonly json: unknown }> =>
  samples.map(({ event, payload }) => {
    const raw = event.encode({
      eventId: "5f0c6a57-3f0e-4a43-9d0f-2b8f4c1e7a10",
      eventType: event.subject,
      correlationId: "corr-1",
      sourceService: "test-service",
      timestamp: DateTime.makeUnsafe("2026-11-26T12:33:37.123Z"),
      data: payload
    })
    assert(Exit.isSuccess(raw), String(raw))
    return { subject: event.subject, json: JSON.parse(new TextDecoder().decode(raw.value)) }
  })

// A validator per subject, for the payload schema of its message, its `$ref`s resolved in `components`.
const payloadValidators = (document: AsyncApi.Document) => {
  const ajv = new Ajv({ strict: true, allErrors: true })
  ajv.addKeyword("components")
  const components = { schemas: document.components.schemas }
  return new Map(
    Object.values(document.components.messages).map((message) => {
      const channel = document.channels[message.name]
      assert(channel !== undefined, `no channel ${message.name}`)
      return [channel.address, ajv.compile({ ...message.payload, components })] as const
    })
  )
}

const tricky = [
  "a: b",
  "- item",
  "-",
  "#comment",
  "x #y",
  'say "hi"',
  "it's",
  "line 1\nline 2",
  "true",
  "False",
  "null",
  "~",
  "yes",
  "off",
  "1.0",
  "0x1F",
  "1e3",
  "",
  " padded ",
  "[a]",
  "{b}",
  "*alias",
  "&anchor",
  "!tag",
  "%directive",
  "@at",
  "`tick",
  "? key",
  "a\tb",
  "Müller",
  "\u0085\u2028\ufeff"
]

describe("AsyncApi", () => {
  it.effect("the GLAM document is valid AsyncAPI 3.0 as JSON and as YAML, and both read the same", () =>
    Effect.gen(function* () {
      const document = yield* GlamAsyncApi.document({ servers })
      const fromJson = yield* parse(AsyncApi.toJson(document))
      const fromYaml = yield* parse(AsyncApi.toYaml(document))
      for (const { diagnostics } of [fromJson, fromYaml]) {
        expect(errorsAndWarnings(diagnostics)).toEqual([])
        // No warning; one piece of information: the parser recommends its latest AsyncAPI, 3.1.0. These
        // documents are AsyncAPI 3.0.0 by design, the version the module writes and documents.
        expect(diagnostics.map((diagnostic) => diagnostic.code)).toEqual(["asyncapi-latest-version"])
      }
      expect(fromYaml.document?.json()).toEqual(fromJson.document?.json())
    })
  )

  it.effect("describes one channel per GLAM subject, each message with its NATS headers", () =>
    Effect.gen(function* () {
      const { document } = yield* parse(AsyncApi.toJson(yield* GlamAsyncApi.document({ servers })))
      assert(document !== undefined)
      const channels = document.channels().all()
      expect(channels).toHaveLength(Events.all.events.length)
      expect(channels.map((channel) => channel.address())).toEqual(Events.all.subjects)
      expect(document.operations().all()).toEqual([])
      const messages = document.messages().all()
      expect(messages).toHaveLength(Events.all.events.length)
      for (const message of messages) {
        expect(message.contentType()).toBe("application/json")
        expect(Object.keys(message.headers()?.properties() ?? {})).toEqual(
          expect.arrayContaining(["Nats-Msg-Id", "traceparent", "tracestate"])
        )
        expect(message.payload()?.properties()?.data).toBeDefined()
      }
      const server = document.servers().get("local")
      expect([server?.host(), server?.protocol()]).toEqual(["localhost:4222", "nats"])
    })
  )

  it.effect("a user catalogue has exactly the declared operations, with their NATS bindings", () =>
    Effect.gen(function* () {
      const made = yield* AsyncApi.make({
        title: "Billing",
        version: "2.1.0",
        id: "urn:glam:billing",
        events: [InvoiceIssued, SendInvoice],
        operations: { send: [InvoiceIssued], receive: [SendInvoice], queue: "billing-workers" }
      })
      expect(Object.keys(made.channels)).toEqual(["evtBillingInvoiceIssuedV1", "cmdBillingInvoiceSendV1"])
      expect(Object.keys(made.components.schemas)).toEqual(["NatsHeaders", "Invoice"])
      const { document, diagnostics } = yield* parse(AsyncApi.toYaml(made))
      expect(errorsAndWarnings(diagnostics)).toEqual([])
      assert(document !== undefined)
      const operations = document.operations().all()
      expect(
        operations.map((operation) => [
          operation.id(),
          operation.action(),
          operation.channels().all()[0]?.address(),
          operation.messages().all()[0]?.name(),
          operation.bindings().get("nats")?.json()
        ])
      ).toEqual([
        [
          "sendEvtBillingInvoiceIssuedV1",
          "send",
          InvoiceIssued.subject,
          "evtBillingInvoiceIssuedV1",
          { bindingVersion: "0.1.0" }
        ],
        [
          "receiveCmdBillingInvoiceSendV1",
          "receive",
          SendInvoice.subject,
          "cmdBillingInvoiceSendV1",
          { queue: "billing-workers", bindingVersion: "0.1.0" }
        ]
      ])
      const withoutOperations = yield* AsyncApi.make({ title: "Billing", version: "1", events: [InvoiceIssued] })
      expect("operations" in withoutOperations).toBe(false)
    })
  )

  it.effect("real GLAM envelopes validate against the payload schemas, and broken ones do not", () =>
    Effect.gen(function* () {
      const validators = payloadValidators(yield* GlamAsyncApi.document())
      const envelopes = [...fixtureEnvelopes(), ...encodedSamples()]
      expect(envelopes.length).toBeGreaterThan(Events.all.events.length)
      expect(new Set(envelopes.map(({ subject }) => subject))).toEqual(new Set(Events.all.subjects))
      for (const { subject, json } of envelopes) {
        const validate = validators.get(subject)
        assert(validate !== undefined, `no message for ${subject}`)
        expect(validate(json) ? [] : validate.errors, subject).toEqual([])
      }
      const merchantCreated = validators.get(Events.MerchantCreated.subject)
      assert(merchantCreated !== undefined)
      const created = encodedSamples().find(({ subject }) => subject === Events.MerchantCreated.subject)?.json
      assert(typeof created === "object" && created !== null && "data" in created)
      expect(merchantCreated({ ...created, data: { name: "no identifiers" } })).toBe(false)
      expect(merchantCreated({ ...created, timestamp: 1 })).toBe(false)
    })
  )

  it.effect("refuses a catalogue or options that make no valid document", () =>
    Effect.gen(function* () {
      const twice = yield* Effect.flip(
        AsyncApi.make({ title: "t", version: "1", events: [InvoiceIssued, InvoiceIssued] })
      )
      expect([twice.reason, twice.subject]).toEqual(["DuplicateSubject", InvoiceIssued.subject])
      const sameId = yield* Effect.flip(
        AsyncApi.make({
          title: "t",
          version: "1",
          events: [Event.make("evt.a.b1.v1", Invoice), Event.make("evt.a.b.1.v1", Invoice)]
        })
      )
      expect([sameId.reason, sameId.subject]).toEqual(["DuplicateChannelId", "evt.a.b.1.v1"])
      const unknown = yield* Effect.flip(
        AsyncApi.make({ title: "t", version: "1", events: [InvoiceIssued], operations: { receive: [SendInvoice] } })
      )
      expect([unknown.reason, unknown.subject]).toEqual(["UnknownEvent", SendInvoice.subject])
      const withCredentials = yield* Effect.flip(
        AsyncApi.make({
          title: "t",
          version: "1",
          events: [InvoiceIssued],
          servers: [{ name: "prod", url: "nats://user:secret@nats.example:4222" }]
        })
      )
      expect(withCredentials.reason).toBe("InvalidServer")
      expect(withCredentials.message).not.toContain("secret")
      const queue = yield* Effect.flip(
        AsyncApi.make({ title: "t", version: "1", events: [InvoiceIssued], operations: { queue: "q".repeat(256) } })
      )
      expect(queue.reason).toBe("InvalidQueue")
    })
  )

  it.effect("YAML keeps tricky strings as they are, as keys and as values", () =>
    Effect.gen(function* () {
      const Tricky = Schema.Struct(
        Object.fromEntries(tricky.map((text) => [text, Schema.optionalKey(Schema.Literals(tricky))]))
      ).annotate({ identifier: "Tricky" })
      const made = yield* AsyncApi.make({
        title: tricky.join(" | "),
        version: "1.0",
        description: "line 1\nline 2: #3",
        events: [Event.make("evt.tricky.strings.v1", Tricky)]
      })
      const fromYaml = yield* parse(AsyncApi.toYaml(made))
      const fromJson = yield* parse(AsyncApi.toJson(made))
      expect(errorsAndWarnings(fromYaml.diagnostics)).toEqual([])
      expect(fromYaml.document?.json()).toEqual(fromJson.document?.json())
      expect(fromYaml.document?.info().title()).toBe(tricky.join(" | "))
      expect(fromYaml.document?.info().version()).toBe("1.0")
      expect(fromYaml.document?.info().description()).toBe("line 1\nline 2: #3")
      const schema = fromYaml.document?.components().schemas().get("Tricky")
      expect(Object.keys(schema?.properties() ?? {})).toEqual(tricky)
      expect(schema?.properties()?.["a: b"]?.enum()).toEqual(tricky)
    })
  )
})

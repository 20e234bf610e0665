import { createHash, randomBytes } from "node:crypto"
import { assert, describe, expect, it, layer } from "@effect/vitest"
import { DateTime, Duration, Effect, Fiber, Layer, Option, Ref, Stream } from "effect"
import { Broker, type Headers, type StoredMessage } from "../src/Broker.js"
import * as DeadLetter from "../src/DeadLetter.js"
import * as Envelope from "../src/Envelope.js"
import * as ErrorPayload from "../src/glam/ErrorPayload.js"
import { Events } from "../src/glam/index.js"
import * as Streams from "../src/glam/Streams.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as NatsClient from "../src/NatsClient.js"
import * as Publisher from "../src/Publisher.js"
import * as ServiceIdentity from "../src/ServiceIdentity.js"
import * as Topology from "../src/Topology.js"
import { eventually } from "./support/Eventually.js"
import * as NatsServer from "./support/NatsServer.js"

const identifiers = {
  merchant_id: "0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00",
  platform_name: "shopify",
  platform_shop_id: "gid://shopify/Shop/1001",
  domain: "demo-shop.myshopify.com"
}
const lowBalance = { identifiers, balance: 4.5, email: "owner@demo-shop.example" }

const otherStream: Topology.StreamSpec = { name: "OTHER", subjects: ["other.>"] }

const messaging = (
  topology: Topology.Topology = Topology.make({ streams: [...Streams.topology.streams, otherStream] })
) =>
  Publisher.layer().pipe(
    Layer.provideMerge(Topology.layer(topology)),
    Layer.provideMerge(ServiceIdentity.layer("dlq-test-service")),
    Layer.provideMerge(NatsBroker.layerFromClient),
    Layer.provideMerge(
      Layer.unwrap(Effect.map(NatsServer.NatsServerService, (server) => NatsClient.layer({ servers: server.url })))
    ),
    Layer.provideMerge(NatsServer.layer())
  )

const bytes = (text: string) => new TextEncoder().encode(text)
const text = (payload: Uint8Array) => new TextDecoder().decode(payload)
const sha256 = (payload: Uint8Array) => createHash("sha256").update(payload).digest("hex")
const at = (iso: string) => DateTime.makeUnsafe(iso)
const failure = { code: "PaymentDeclined", message: "card declined", operation: "handler" }

/** Publishes raw bytes and reads them back as the stream stored them. */
const storeOriginal = (subject: string, payload: Uint8Array, headers: Headers = []) =>
  Effect.gen(function* () {
    const broker = yield* Broker
    const ack = yield* broker.publish({ subject, payload, headers, timeout: Duration.seconds(5) })
    return yield* broker.getMessage(ack.stream, ack.seq).pipe(Effect.flatMap(Effect.fromOption))
  })

const readStored = (stream: string, seq: number) =>
  Broker.use((broker) => broker.getMessage(stream, seq)).pipe(Effect.flatMap(Effect.fromOption))

const messageCount = (stream: string) =>
  Broker.use((broker) => broker.streamInfo(stream)).pipe(
    Effect.flatMap(Effect.fromOption),
    Effect.map((info) => info.state.messages)
  )

const deadLetterOf = (original: StoredMessage, extra: Partial<DeadLetter.PublishInput> = {}) =>
  DeadLetter.publish({
    message: original,
    consumer: "reader",
    deliveryCount: 3,
    failure,
    decision: "policy",
    retryCount: 2,
    maxRetries: 4,
    ...extra
  })

const entryAt = (seq: number) =>
  DeadLetter.list({ seqs: [seq] }).pipe(
    Effect.map((entries) => entries[0]),
    Effect.flatMap(Effect.fromNullishOr)
  )

describe("DeadLetter", () => {
  it("names dead-letter subjects as the seed does", () => {
    expect(DeadLetter.subjectFor("evt.order.created")).toBe("dlq.order.created")
    expect(DeadLetter.subjectFor("cmd.notification.email.send.v1")).toBe("dlq.notification.email.send.v1")
    expect(DeadLetter.subjectFor("other.thing")).toBe("dlq.other.thing")
    expect(DeadLetter.subjectFor("orders.evt.x")).toBe("dlq.orders.evt.x")
    expect(DeadLetter.messageIdFor("GLAM_EVENTS", 42)).toBe("dlq:GLAM_EVENTS:42")
  })

  layer(messaging(), { excludeTestServices: true })("writing records on a real nats-server (real clock)", (it) => {
    it.effect("records a consumed delivery: every field, the envelope around it, subject and Nats-Msg-Id", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const publisher = yield* Publisher.Publisher
        yield* Topology.provision(
          Topology.make({
            consumers: [{ stream: "GLAM_EVENTS", name: "reader", filterSubject: "evt.credit.balance.low.v1" }]
          })
        )
        const sent = yield* publisher.publish(Events.CreditBalanceLow, lowBalance, {
          correlationId: "corr-1",
          headers: { "X-Tenant": "eu-1" }
        })
        const [message] = yield* broker
          .consume("GLAM_EVENTS", "reader", { maxMessages: 1 })
          .pipe(Stream.take(1), Stream.runCollect)
        assert(message !== undefined)
        const receipt = yield* DeadLetter.publish({
          message,
          failure,
          decision: "policy",
          retryCount: 2,
          maxRetries: 4,
          firstFailureAt: at("2026-03-01T10:00:00.123Z"),
          lastFailureAt: at("2026-03-01T10:00:05Z")
        })
        message.ack()
        expect(receipt).toStrictEqual({
          subject: "dlq.credit.balance.low.v1",
          stream: "GLAM_DLQ",
          seq: receipt.seq,
          messageId: `dlq:GLAM_EVENTS:${sent.seq}`,
          duplicate: false,
          chunks: 0
        })

        const stored = yield* readStored("GLAM_DLQ", receipt.seq)
        expect(stored.subject).toBe("dlq.credit.balance.low.v1")
        expect(stored.headers).toStrictEqual([["Nats-Msg-Id", `dlq:GLAM_EVENTS:${sent.seq}`]])
        const envelope = JSON.parse(text(stored.payload))
        expect(Object.keys(envelope)).toStrictEqual([
          "event_id",
          "event_type",
          "correlation_id",
          "source_service",
          "timestamp",
          "data"
        ])
        expect(envelope.event_id).toMatch(/^[0-9a-f-]{36}$/)
        expect(envelope.event_id).not.toBe(sent.eventId)
        expect(envelope.event_type).toBe("dlq.credit.balance.low.v1")
        expect(envelope.correlation_id).toBe("corr-1")
        expect(envelope.source_service).toBe("dlq-test-service")
        expect(envelope.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$/)
        const originalText = text(message.payload)
        const originalHeaders: { [name: string]: Array<string> } = {}
        for (const [name, value] of message.headers) originalHeaders[name] = [...(originalHeaders[name] ?? []), value]
        expect(originalHeaders["Nats-Msg-Id"]).toStrictEqual([sent.eventId])
        expect(originalHeaders["X-Tenant"]).toStrictEqual(["eu-1"])
        expect(Object.keys(envelope.data)).toStrictEqual([
          "identifiers",
          "error_code",
          "error_message",
          "failed_operation",
          "retry_count",
          "max_retries",
          "original_data",
          "original_subject",
          "original_headers",
          "original_payload",
          "original_payload_base64",
          "original_payload_chunks",
          "original_payload_size",
          "original_payload_sha256",
          "stream",
          "stream_seq",
          "consumer",
          "delivery_count",
          "first_failure_at",
          "last_failure_at",
          "event_id",
          "event_type",
          "correlation_id",
          "decision"
        ])
        expect(envelope.data).toStrictEqual({
          identifiers,
          error_code: "PaymentDeclined",
          error_message: "card declined",
          failed_operation: "handler",
          retry_count: 2,
          max_retries: 4,
          original_data: lowBalance,
          original_subject: "evt.credit.balance.low.v1",
          original_headers: originalHeaders,
          original_payload: originalText,
          original_payload_base64: null,
          original_payload_chunks: [],
          original_payload_size: message.payload.byteLength,
          original_payload_sha256: sha256(message.payload),
          stream: "GLAM_EVENTS",
          stream_seq: sent.seq,
          consumer: "reader",
          delivery_count: 1,
          first_failure_at: "2026-03-01T10:00:00.123000+00:00",
          last_failure_at: "2026-03-01T10:00:05+00:00",
          event_id: sent.eventId,
          event_type: "evt.credit.balance.low.v1",
          correlation_id: "corr-1",
          decision: "policy"
        })

        const entry = yield* entryAt(receipt.seq)
        expect(entry.record.lastFailureAt).toStrictEqual(at("2026-03-01T10:00:05Z"))
        expect(entry.recordedBy).toBe("dlq-test-service")
        expect(entry.replays).toStrictEqual([])
      })
    )

    it.effect("names the record's subject after the original's, for evt., cmd. and other subjects", () =>
      Effect.gen(function* () {
        const cases = [
          ["evt.merchant.created.v1", "dlq.merchant.created.v1"],
          ["cmd.notification.email.send.v1", "dlq.notification.email.send.v1"],
          ["other.orders.placed", "dlq.other.orders.placed"]
        ] as const
        for (const [subject, expected] of cases) {
          const original = yield* storeOriginal(subject, bytes("{}"))
          const receipt = yield* deadLetterOf(original)
          expect(receipt.subject).toBe(expected)
          expect((yield* readStored("GLAM_DLQ", receipt.seq)).subject).toBe(expected)
          expect(receipt.messageId).toBe(`dlq:${original.stream}:${original.seq}`)
        }
      })
    )

    it.effect("a second attempt for the same message stores nothing: one record, the second receipt a duplicate", () =>
      Effect.gen(function* () {
        const original = yield* storeOriginal("evt.twice.happened.v1", bytes('{"a":1}'))
        const before = yield* messageCount("GLAM_DLQ")
        const first = yield* deadLetterOf(original)
        const second = yield* deadLetterOf(original, { failure: { ...failure, message: "another instance" } })
        expect(first.duplicate).toBe(false)
        expect(second).toStrictEqual({ ...first, duplicate: true })
        expect(yield* messageCount("GLAM_DLQ")).toBe(before + 1)
        expect((yield* entryAt(first.seq)).record.errorMessage).toBe("card declined")
      })
    )

    it.effect("keeps the exact bytes of every kind of body, up to near the 1 MiB max payload", () =>
      Effect.gen(function* () {
        const nearMaxPayload = 1024 * 1024 - 512
        // 13 bytes a repetition once written as JSON (é is 2 bytes, \n and \" 2 each, \u0001 6), 21 around them.
        const bigJson = bytes(
          JSON.stringify({ data: { blob: 'x\u00e9\n"\u0001'.repeat(Math.floor((nearMaxPayload - 21) / 13)) } })
        )
        const bodies = {
          envelopeJson: bytes(JSON.stringify({ event_id: "e-1", data: { note: "caf\u00e9 \u2603" } })),
          jsonArray: bytes('[1, 2.50, "three"]\n'),
          nonJsonText: bytes("hello, w\u00f6rld: not JSON"),
          jsonWithByteOrderMark: new Uint8Array([0xef, 0xbb, 0xbf, ...bytes('{"a":1}')]),
          binaryGarbage: new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0x7b, 0x22]),
          empty: new Uint8Array(0),
          nearMaxJson: bigJson,
          nearMaxBinary: new Uint8Array(randomBytes(nearMaxPayload))
        }
        expect(bigJson.byteLength).toBeGreaterThan(1024 * 1024 - 1024)
        expect(bigJson.byteLength).toBeLessThanOrEqual(nearMaxPayload)
        for (const [kind, body] of Object.entries(bodies)) {
          const original = yield* storeOriginal(`other.body.${kind}`, body, [["X-Kind", kind]])
          expect(Buffer.from(original.payload).equals(Buffer.from(body))).toBe(true)
          const receipt = yield* deadLetterOf(original)
          const entry = yield* entryAt(receipt.seq)
          const { record } = entry
          const restored = yield* DeadLetter.originalBytes(entry)
          assert(Option.isSome(restored), kind)
          expect(Buffer.from(restored.value).equals(Buffer.from(body)), kind).toBe(true)
          expect(record.originalPayloadSize).toBe(body.byteLength)
          expect(record.originalPayloadSha256).toBe(sha256(body))
          expect(record.originalHeaders).toStrictEqual({ "X-Kind": [kind] })
          const isJson = kind === "envelopeJson" || kind === "jsonArray"
          const isBig = kind.startsWith("nearMax")
          expect(record.originalPayload, kind).toBe(isJson ? text(body) : null)
          expect(record.originalPayloadBase64, kind).toBe(isJson || isBig ? null : Buffer.from(body).toString("base64"))
          expect(receipt.chunks, kind).toBe(isBig ? 4 : 0)
          expect(record.originalPayloadChunks.length, kind).toBe(isBig ? 4 : 0)
          if (isBig) {
            // The chunks hold the raw bytes in order, in GLAM_DLQ itself.
            const chunks = yield* Effect.forEach(record.originalPayloadChunks, (seq) => readStored("GLAM_DLQ", seq))
            expect(chunks.map((c) => c.subject)).toStrictEqual(Array(4).fill("dlq._chunk.OTHER"))
            expect(chunks.map((c) => c.headers)).toStrictEqual(
              [1, 2, 3, 4].map((i) => [["Nats-Msg-Id", `dlq:OTHER:${original.seq}:chunk:${i}/4`]])
            )
            expect(Buffer.concat(chunks.map((c) => c.payload)).equals(Buffer.from(body))).toBe(true)
          }
        }
        // Chunks are not records: `list` shows one entry per dead letter.
        const listed = yield* DeadLetter.list({ subject: "other.body.>" })
        expect(listed.map((e) => e.record.originalSubject)).toStrictEqual(
          Object.keys(bodies).map((kind) => `other.body.${kind}`)
        )
      })
    )

    it.effect("a big record written twice stores its chunks and record once", () =>
      Effect.gen(function* () {
        const body = new Uint8Array(randomBytes(800 * 1024))
        const original = yield* storeOriginal("other.big.twice", body)
        const before = yield* messageCount("GLAM_DLQ")
        const first = yield* deadLetterOf(original)
        const second = yield* deadLetterOf(original)
        expect(first.chunks).toBe(4)
        expect(second).toStrictEqual({ ...first, duplicate: true })
        expect(yield* messageCount("GLAM_DLQ")).toBe(before + 5)
      })
    )

    it.effect(
      "keeps data.identifiers as it arrived when it is an object, else null; a GLAM reader decodes it as ErrorPayload",
      () =>
        Effect.gen(function* () {
          const envelopeWith = (data: unknown) =>
            bytes(JSON.stringify({ event_id: "e", event_type: "evt.x.y.v1", correlation_id: "c", data }))
          const upper = { ...identifiers, merchant_id: identifiers.merchant_id.toUpperCase() }
          const cases = [
            [envelopeWith({ identifiers }), identifiers],
            [envelopeWith({ identifiers: upper }), upper],
            [envelopeWith({ identifiers: { tenant: "t-1", region: "eu" } }), { tenant: "t-1", region: "eu" }],
            [envelopeWith({ identifiers: "merchant-1" }), null],
            [envelopeWith({ amount: 1 }), null],
            [bytes('{"identifiers":{}}'), null],
            [bytes("not json"), null]
          ] as const
          for (const [body, expected] of cases) {
            const original = yield* storeOriginal("evt.identified.thing.v1", body)
            const record = (yield* entryAt((yield* deadLetterOf(original)).seq)).record
            expect(record.identifiers).toStrictEqual(expected)
          }
          // The bytes on the wire, read by the GLAM catalogue's ErrorPayload (the Python model's fields).
          const glam = yield* storeOriginal("evt.identified.thing.v1", envelopeWith({ identifiers: upper, n: 2 }))
          const written = yield* deadLetterOf(glam)
          const stored = yield* readStored(Streams.deadLettersName, written.seq)
          const asErrorPayload = yield* Envelope.decoder(ErrorPayload.ErrorPayload)(stored.payload, stored.subject)
          expect(asErrorPayload.data.identifiers).toStrictEqual(identifiers)
          expect(asErrorPayload.data.error_code).toBe(failure.code)
          const decoded = yield* storeOriginal("evt.identified.thing.v1", envelopeWith({ n: 1 }))
          const record = (yield* entryAt((yield* deadLetterOf(decoded)).seq)).record
          expect(record.originalData).toStrictEqual({ n: 1 })
          expect([record.eventId, record.eventType, record.correlationId]).toStrictEqual(["e", "evt.x.y.v1", "c"])
          const opaque = yield* storeOriginal("evt.identified.thing.v1", bytes("[1]"))
          const bare = (yield* entryAt((yield* deadLetterOf(opaque)).seq)).record
          expect([bare.originalData, bare.eventId, bare.eventType, bare.correlationId]).toStrictEqual([
            null,
            null,
            null,
            null
          ])
        })
    )

    it.effect("list filters by subject (exact or pattern), error code, event type, time range and limit", () =>
      Effect.gen(function* () {
        const write = (subject: string, code: string, lastFailureAt: string) =>
          Effect.gen(function* () {
            const body = JSON.stringify({ event_id: subject, event_type: subject, correlation_id: "c", data: {} })
            const original = yield* storeOriginal(subject, bytes(body))
            return (yield* deadLetterOf(original, {
              failure: { ...failure, code },
              lastFailureAt: at(lastFailureAt)
            })).seq
          })
        const a = yield* write("evt.filter.alpha.v1", "Timeout", "2030-01-01T00:00:00Z")
        const b = yield* write("evt.filter.beta.v1", "Declined", "2030-01-02T00:00:00Z")
        const c = yield* write("cmd.filter.alpha.v1", "Timeout", "2030-01-03T00:00:00Z")
        const d = yield* write("evt.filter.alpha.v2", "Declined", "2030-01-04T00:00:00Z")
        const seqs = (filter: DeadLetter.Filter) =>
          DeadLetter.list({ since: at("2030-01-01T00:00:00Z"), ...filter }).pipe(
            Effect.map((entries) => entries.map((e) => e.seq))
          )
        expect(yield* seqs({})).toStrictEqual([a, b, c, d])
        expect(yield* seqs({ subject: "evt.filter.alpha.v1" })).toStrictEqual([a])
        expect(yield* seqs({ subject: "evt.filter.>" })).toStrictEqual([a, b, d])
        expect(yield* seqs({ subject: "*.filter.alpha.*" })).toStrictEqual([a, c, d])
        expect(yield* seqs({ subject: "evt.filter" })).toStrictEqual([])
        expect(yield* seqs({ errorCode: "Timeout" })).toStrictEqual([a, c])
        expect(yield* seqs({ eventType: "evt.filter.beta.v1" })).toStrictEqual([b])
        expect(yield* seqs({ since: at("2030-01-02T00:00:00Z"), until: at("2030-01-04T00:00:00Z") })).toStrictEqual([
          b,
          c
        ])
        expect(yield* seqs({ errorCode: "Declined", limit: 1 })).toStrictEqual([b])
        expect(yield* seqs({ seqs: [d, a] })).toStrictEqual([a, d])
        expect(yield* seqs({ limit: 0 })).toStrictEqual([])
      })
    )
  })

  it.live("without a stream for dlq.> writing fails with a typed NatsError, nothing swallowed", () =>
    Effect.gen(function* () {
      const original = yield* storeOriginal("evt.no.dlq.v1", bytes("{}"))
      const error = yield* deadLetterOf(original).pipe(Effect.flip)
      assert(error._tag === "NatsError")
      expect(error.reason._tag).toBe("StreamNotFound")
      expect(error.message).toContain("no stream for subject dlq.no.dlq.v1")
      const listError = yield* DeadLetter.list().pipe(Effect.flip)
      expect(listError.reason._tag).toBe("StreamNotFound")
    }).pipe(Effect.provide(messaging(Topology.make({ streams: [Streams.events] }))))
  )

  /** Delivers one message to a consumer with `maxDeliver: 2` twice without settling it, until the server gives up. */
  const exhaustDeliveries = (subject: string, consumer: string, body: Uint8Array) =>
    Effect.gen(function* () {
      const broker = yield* Broker
      yield* Topology.provision(
        Topology.make({
          consumers: [
            { stream: "GLAM_EVENTS", name: consumer, filterSubject: subject, ackWait: "1 second", maxDeliver: 2 }
          ]
        })
      )
      const advisoriesBefore = yield* messageCount("GLAM_ADVISORIES")
      const original = yield* storeOriginal(subject, body)
      const deliveries = yield* Ref.make<ReadonlyArray<number>>([])
      // Keeps pulls waiting and never settles: the process "dies" on the message every time.
      const crashing = yield* broker.consume("GLAM_EVENTS", consumer, { maxMessages: 10 }).pipe(
        Stream.runForEach((message) => Ref.update(deliveries, (counts) => [...counts, message.deliveryCount])),
        Effect.forkChild
      )
      yield* eventually(
        Effect.flatMap(messageCount("GLAM_ADVISORIES"), (count) =>
          count > advisoriesBefore ? Effect.void : Effect.fail("none yet")
        )
      )
      yield* Fiber.interrupt(crashing)
      expect(yield* Ref.get(deliveries)).toStrictEqual([1, 2])
      return original
    })

  const advisoryState = (consumer: string) =>
    Broker.use((broker) => broker.consumerInfo("GLAM_ADVISORIES", `dlq-GLAM_EVENTS-${consumer}`)).pipe(
      Effect.flatMap(Effect.fromOption),
      Effect.map((info) => info.state)
    )

  it.live("max deliveries: the advisory is kept while nobody listens, then the watcher dead-letters and acks it", () =>
    Effect.gen(function* () {
      const body = bytes(
        JSON.stringify({ event_id: "crash-1", event_type: "evt.crash.loop.v1", data: { identifiers } })
      )
      const original = yield* exhaustDeliveries("evt.crash.loop.v1", "crashy", body)
      const advisory = JSON.parse(text((yield* readStored("GLAM_ADVISORIES", 1)).payload))
      expect(advisory).toMatchObject({
        stream: "GLAM_EVENTS",
        consumer: "crashy",
        stream_seq: original.seq,
        deliveries: 2
      })
      expect(yield* messageCount("GLAM_DLQ")).toBe(0)

      const watcher = yield* DeadLetter.watchAdvisories({ stream: "GLAM_EVENTS", consumer: "crashy" }).pipe(
        Effect.forkChild
      )
      const entry = yield* eventually(
        DeadLetter.list({ subject: "evt.crash.loop.v1" }).pipe(
          Effect.map((entries) => entries[0]),
          Effect.flatMap(Effect.fromNullishOr)
        )
      )
      const { record } = entry
      expect(record).toMatchObject({
        decision: "max deliveries",
        errorCode: "MaxDeliveriesExceeded",
        stream: "GLAM_EVENTS",
        streamSeq: original.seq,
        consumer: "crashy",
        deliveryCount: 2,
        retryCount: 1,
        maxRetries: 1,
        eventId: "crash-1",
        identifiers,
        originalPayload: text(body)
      })
      const restored = yield* DeadLetter.originalBytes(entry)
      assert(Option.isSome(restored))
      expect(Buffer.from(restored.value).equals(Buffer.from(body))).toBe(true)
      const stored = yield* readStored("GLAM_DLQ", entry.seq)
      expect(stored.headers).toStrictEqual([["Nats-Msg-Id", `dlq:GLAM_EVENTS:${original.seq}`]])

      // Acked: nothing pending or waiting for an ack, and a restarted watcher writes nothing more.
      const state = yield* eventually(
        Effect.flatMap(advisoryState("crashy"), (s) =>
          s.ackFloor.streamSeq === 1 ? Effect.succeed(s) : Effect.fail(s)
        )
      )
      expect([state.numPending, state.numAckPending]).toStrictEqual([0, 0])
      yield* Fiber.interrupt(watcher)
      const restarted = yield* DeadLetter.watchAdvisories({ stream: "GLAM_EVENTS", consumer: "crashy" }).pipe(
        Effect.forkChild
      )
      const next = yield* exhaustDeliveries("evt.crash.loop.v1", "crashy", bytes("second"))
      const entries = yield* eventually(
        DeadLetter.list({ subject: "evt.crash.loop.v1" }).pipe(
          Effect.flatMap((all) => (all.length >= 2 ? Effect.succeed(all) : Effect.fail("waiting")))
        )
      )
      expect(entries.map((e) => e.record.streamSeq)).toStrictEqual([original.seq, next.seq])
      yield* Fiber.interrupt(restarted)
    }).pipe(Effect.provide(messaging()))
  )

  it.live("max deliveries of a message gone from its stream: a record without bytes that says so", () =>
    Effect.gen(function* () {
      const original = yield* exhaustDeliveries("evt.crash.gone.v1", "doomed", bytes("{}"))
      const { manager } = yield* NatsClient.NatsClient
      yield* Effect.promise(() => manager.streams.deleteMessage("GLAM_EVENTS", original.seq))
      const watcher = yield* DeadLetter.watchAdvisories({ stream: "GLAM_EVENTS", consumer: "doomed" }).pipe(
        Effect.forkChild
      )
      const entry = yield* eventually(
        DeadLetter.list().pipe(
          Effect.map((entries) => entries[0]),
          Effect.flatMap(Effect.fromNullishOr)
        )
      )
      yield* Fiber.interrupt(watcher)
      expect(entry.subject).toBe("dlq._missing.GLAM_EVENTS")
      expect(entry.record).toMatchObject({
        decision: "max deliveries",
        errorCode: "MaxDeliveriesExceeded",
        originalSubject: null,
        originalPayload: null,
        originalPayloadBase64: null,
        originalPayloadChunks: [],
        originalPayloadSize: null,
        streamSeq: original.seq,
        consumer: "doomed"
      })
      expect(entry.record.errorMessage).toContain("its bytes are lost")
      expect(yield* DeadLetter.originalBytes(entry)).toStrictEqual(Option.none())
      expect(yield* DeadLetter.replay()).toStrictEqual([
        { _tag: "Skipped", seq: entry.seq, reason: "the original subject is unknown" }
      ])
    }).pipe(Effect.provide(messaging()))
  )

  it.live(
    "max deliveries while GLAM_DLQ is missing: the advisory is not acked, and dead-lettered once the stream exists",
    () =>
      Effect.gen(function* () {
        const original = yield* exhaustDeliveries("evt.crash.later.v1", "patient", bytes('{"later":true}'))
        const watcher = yield* DeadLetter.watchAdvisories({
          stream: "GLAM_EVENTS",
          consumer: "patient",
          retryDelay: "200 millis"
        }).pipe(Effect.forkChild)
        const refused = yield* eventually(
          Effect.flatMap(advisoryState("patient"), (s) => (s.numRedelivered > 0 ? Effect.succeed(s) : Effect.fail(s)))
        )
        expect(refused.ackFloor.streamSeq).toBe(0)
        yield* Topology.provision(Topology.make({ streams: [Streams.deadLetters] }))
        const entry = yield* eventually(
          DeadLetter.list().pipe(
            Effect.map((entries) => entries[0]),
            Effect.flatMap(Effect.fromNullishOr)
          )
        )
        expect(entry.record.streamSeq).toBe(original.seq)
        expect(entry.record.originalPayload).toBe('{"later":true}')
        yield* eventually(
          Effect.flatMap(advisoryState("patient"), (s) => (s.ackFloor.streamSeq === 1 ? Effect.void : Effect.fail(s)))
        )
        yield* Fiber.interrupt(watcher)
      }).pipe(Effect.provide(messaging(Topology.make({ streams: [Streams.events, Streams.advisories] }))))
  )
})

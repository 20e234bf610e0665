/**
 * Nothing is dropped: a corpus of poison messages, published raw among good ones, each ends in
 * `GLAM_DLQ` with its exact bytes, while the subscriber keeps handling the good ones in order.
 */
import { randomBytes } from "node:crypto"
import { assert, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Option, Ref, Schedule, Schema, Scope } from "effect"
import { Broker } from "../src/Broker.js"
import * as DeadLetter from "../src/DeadLetter.js"
import * as Event from "../src/Event.js"
import * as Streams from "../src/glam/Streams.js"
import * as Policy from "../src/Policy.js"
import * as Publisher from "../src/Publisher.js"
import * as Subscriber from "../src/Subscriber.js"
import * as Topology from "../src/Topology.js"
import { eventually } from "./support/Eventually.js"
import { consumerState, messaging, storedMessages } from "./support/Messaging.js"

const OrderPlaced = Event.make(
  "evt.poison.placed.v1",
  Schema.Struct({ order_id: Schema.String.check(Schema.isUUID()), n: Schema.Number, total: Schema.Number })
)
const OrderShipped = Event.make(
  "evt.poison.shipped.v1",
  Schema.Struct({ order_id: Schema.String.check(Schema.isUUID()), n: Schema.Number })
)
/** Covered by the subscriber's filter (`evt.poison.>`), known to none of its events. */
const unknownSubject = "evt.poison.unknown.v1"

/** Runs a subscriber in a scope of its own, returning the scope to close it. */
const run = <E, R>(subscriber: Effect.Effect<void, E, R>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* subscriber.pipe(Scope.provide(scope))
    return scope
  })

const atLeast = <A>(ref: Ref.Ref<ReadonlyArray<A>>, count: number) =>
  Effect.flatMap(Ref.get(ref), (items) => (items.length >= count ? Effect.void : Effect.fail("not yet")))

const deadLetterCount = (count: number) =>
  Effect.flatMap(DeadLetter.list(), (entries) =>
    entries.length >= count ? Effect.succeed(entries) : Effect.fail(`${entries.length} of ${count} dead letters`)
  )

/** Publishes bytes as they are, with a `Nats-Msg-Id` of their own. */
const publishRaw = (subject: string, payload: Uint8Array) =>
  Effect.gen(function* () {
    const broker = yield* Broker
    const messageId = crypto.randomUUID()
    const ack = yield* broker.publish({ subject, payload, headers: [], messageId, timeout: Duration.seconds(5) })
    return { seq: ack.seq, messageId }
  })

const utf8 = (text: string): Uint8Array => Buffer.from(text, "utf8")
const json = (value: unknown): Uint8Array => utf8(JSON.stringify(value))

/** A valid envelope as a Python service writes it, on the wire. */
const wireEnvelope = (subject: string, data: unknown): Record<string, unknown> => ({
  event_id: crypto.randomUUID(),
  event_type: subject,
  correlation_id: crypto.randomUUID(),
  source_service: "legacy-python-service",
  timestamp: "2026-03-01T10:00:00.123456+00:00",
  data
})
const placedPayload = (n: number) => ({ order_id: crypto.randomUUID(), n, total: 12.5 })
const without = (object: Record<string, unknown>, key: string) =>
  Object.fromEntries(Object.entries(object).filter(([name]) => name !== key))

/** `size` bytes of a JSON object that looks like an envelope but is not one. */
const nearLimitJson = (size: number): Uint8Array => {
  const head = `{"event_id":"${crypto.randomUUID()}","event_type":"evt.poison.placed.v1","padding":"`
  const tail = `"}`
  const unit = 'lorem \\"ipsum\\" '
  const room = size - head.length - tail.length
  const filler = unit.repeat(Math.floor(room / unit.length)).padEnd(room, "x")
  return utf8(`${head}${filler}${tail}`)
}

/** `size` random bytes that are certainly not UTF-8 (they start with 0xff). */
const randomGarbage = (size: number): Uint8Array => {
  const bytes = randomBytes(size)
  bytes[0] = 0xff
  return bytes
}

interface PoisonCase {
  readonly name: string
  readonly subject: string
  readonly bytes: Uint8Array
  /** The decode stage the record names in `failed_operation`. */
  readonly stage: "Json" | "Envelope" | "Payload"
}

const placed = OrderPlaced.subject

const corpus = (): ReadonlyArray<PoisonCase> => {
  const base = wireEnvelope(placed, placedPayload(0))
  const envelopeCase = (name: string, value: unknown): PoisonCase => ({
    name,
    subject: placed,
    bytes: json(value),
    stage: "Envelope"
  })
  const jsonCase = (name: string, bytes: Uint8Array): PoisonCase => ({ name, subject: placed, bytes, stage: "Json" })
  return [
    jsonCase("not JSON", utf8('{"event_id": "3f1c", "event_type": ')),
    jsonCase("a JSON array", utf8("[1,2,3]")),
    jsonCase("a JSON number", utf8("42")),
    jsonCase("a JSON string", utf8('"evt.poison.placed.v1"')),
    jsonCase("JSON null", utf8("null")),
    jsonCase("JSON true", utf8("true")),
    ...["event_id", "event_type", "correlation_id", "source_service", "timestamp", "data"].map((field) =>
      envelopeCase(`no ${field}`, without(base, field))
    ),
    envelopeCase("event_id a number", { ...base, event_id: 12345 }),
    envelopeCase("timestamp not a date", { ...base, timestamp: "last tuesday" }),
    envelopeCase("data a string", { ...base, data: "order 7" }),
    envelopeCase("event_type of another event", { ...base, event_type: OrderShipped.subject }),
    {
      name: "payload missing a field",
      subject: placed,
      bytes: json({ ...base, data: without(placedPayload(0), "total") }),
      stage: "Payload"
    },
    {
      name: "payload field of the wrong type",
      subject: placed,
      bytes: json({ ...base, data: { ...placedPayload(0), total: "12.50" } }),
      stage: "Payload"
    },
    {
      name: "payload with a non-UUID where a UUID is required",
      subject: placed,
      bytes: json({ ...base, data: { ...placedPayload(0), order_id: "order-7" } }),
      stage: "Payload"
    },
    jsonCase("invalid UTF-8", Uint8Array.from([0x7b, 0x22, 0xc3, 0x28, 0xa0, 0xa1, 0xff, 0xfe, 0x00, 0x80, 0x7d])),
    jsonCase("an empty body", new Uint8Array(0)),
    jsonCase("a byte-order mark before the envelope", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json(base)])),
    {
      // Re-serialising it would change its bytes: spacing, key order, `\u00e9` against `é`, the newline.
      name: "pretty-printed, non-ASCII text and escapes, no data",
      subject: placed,
      bytes: utf8(
        `{\n  "event_type" : "${placed}",\n  "event_id": "${crypto.randomUUID()}",\n` +
          `  "correlation_id": "caf\\u00e9-ü-😀-\\ud83d\\ude00",\n  "source_service": "naïve",\n` +
          `  "timestamp": "2026-03-01T10:00:00+00:00"\n}\n`
      ),
      stage: "Envelope"
    },
    {
      name: "1,000,000 bytes of JSON, not an envelope",
      subject: placed,
      bytes: nearLimitJson(1_000_000),
      stage: "Envelope"
    },
    jsonCase("1,000,000 random bytes", randomGarbage(1_000_000)),
    {
      name: "a valid envelope on a subject no event of the group has",
      subject: unknownSubject,
      bytes: json(wireEnvelope(unknownSubject, placedPayload(0))),
      stage: "Envelope"
    }
  ]
}

const withMessaging = <A, E, R>(effect: Effect.Effect<A, E, R>, topology?: Topology.Topology) =>
  Effect.provide(effect, messaging(topology === undefined ? {} : { topology }))

describe("Poison messages", () => {
  it.live(
    "every poison message ends in GLAM_DLQ with its exact bytes; the good ones around it are handled once, in order",
    () =>
      withMessaging(
        Effect.gen(function* () {
          const publisher = yield* Publisher.Publisher
          const cases = corpus()
          expect(cases.length).toBeGreaterThanOrEqual(20)

          // good, poison, good, poison, ..., good; one good message is itself raw, to show the raw baseline decodes.
          const expectedHandled: Array<string> = []
          const sent: Array<PoisonCase & { readonly seq: number; readonly messageId: string }> = []
          const publishGood = (n: number) =>
            Effect.gen(function* () {
              if (n === 3) {
                yield* publishRaw(placed, json(wireEnvelope(placed, placedPayload(n))))
                expectedHandled.push(`${placed}#${n}`)
              } else if (n % 2 === 0) {
                yield* publisher.publish(OrderShipped, { order_id: crypto.randomUUID(), n })
                expectedHandled.push(`${OrderShipped.subject}#${n}`)
              } else {
                yield* publisher.publish(OrderPlaced, placedPayload(n))
                expectedHandled.push(`${placed}#${n}`)
              }
            })
          for (const [index, poison] of cases.entries()) {
            yield* publishGood(index + 1)
            const { seq, messageId } = yield* publishRaw(poison.subject, poison.bytes)
            sent.push({ ...poison, seq, messageId })
          }
          yield* publishGood(cases.length + 1)
          const lastSeq = cases.length * 2 + 1

          const handled = yield* Ref.make<ReadonlyArray<string>>([])
          yield* run(
            Subscriber.make([OrderPlaced, OrderShipped], {
              durable: "poison",
              handler: (envelope) =>
                Ref.update(handled, (list) => [...list, `${envelope.eventType}#${envelope.data.n}`])
            })
          )

          const entries = yield* eventually(deadLetterCount(cases.length), { timeout: "20 seconds" })
          yield* eventually(atLeast(handled, expectedHandled.length), { timeout: "20 seconds" })
          const state = yield* eventually(
            Effect.flatMap(consumerState("GLAM_EVENTS", "poison"), (s) =>
              s !== undefined && s.ackFloor.streamSeq === lastSeq ? Effect.succeed(s) : Effect.fail("not settled")
            ),
            { timeout: "20 seconds" }
          )

          expect(yield* Ref.get(handled)).toStrictEqual(expectedHandled)
          expect(entries).toHaveLength(cases.length)
          for (const poison of sent) {
            const entry = entries.find((e) => e.record.streamSeq === poison.seq)
            assert(entry !== undefined, `no dead letter for "${poison.name}" (#${poison.seq})`)
            const { record } = entry
            expect({ name: poison.name, subject: entry.subject, record }).toMatchObject({
              name: poison.name,
              subject: DeadLetter.subjectFor(poison.subject),
              record: {
                decision: "decode failure",
                errorCode: "DecodeError",
                failedOperation: `decode (${poison.stage})`,
                originalSubject: poison.subject,
                originalHeaders: { "Nats-Msg-Id": [poison.messageId] },
                stream: "GLAM_EVENTS",
                streamSeq: poison.seq,
                consumer: "poison",
                deliveryCount: 1,
                retryCount: 0,
                originalPayloadSize: poison.bytes.byteLength
              }
            })
            const bytes = yield* DeadLetter.originalBytes(entry)
            assert(Option.isSome(bytes), `the bytes of "${poison.name}" were not kept`)
            expect(Buffer.compare(Buffer.from(bytes.value), Buffer.from(poison.bytes)), poison.name).toBe(0)
          }
          // The big ones did not fit in a record: their bytes are in chunks.
          const chunked = sent.filter((poison) => poison.bytes.byteLength === 1_000_000)
          for (const poison of chunked) {
            const entry = entries.find((e) => e.record.streamSeq === poison.seq)
            expect(entry?.record.originalPayloadChunks.length, poison.name).toBeGreaterThan(1)
          }

          expect(state.numAckPending).toBe(0)
          expect(state.numPending).toBe(0)
          expect(state.numRedelivered).toBe(0)
          expect(state.delivered.streamSeq).toBe(lastSeq)
          expect(state.delivered.consumerSeq).toBe(lastSeq)
        })
      ),
    60_000
  )

  it.live("a handler's typed error with a deadLetter rule, and a thrown exception, end in GLAM_DLQ", () =>
    withMessaging(
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        class PaymentDeclined extends Schema.TaggedError<PaymentDeclined>()("PaymentDeclined", {
          message: Schema.String
        }) {}
        const policy = Policy.make<PaymentDeclined>({
          rules: { PaymentDeclined: Policy.deadLetter },
          defect: Policy.deadLetter
        })
        const declined = yield* publisher.publish(OrderPlaced, { ...placedPayload(1), total: 99.99 })
        const crashing = yield* publisher.publish(OrderPlaced, { ...placedPayload(2), total: -1 })
        const fine = yield* publisher.publish(OrderPlaced, placedPayload(3))
        const runs = yield* Ref.make<ReadonlyArray<number>>([])
        const handled = yield* Ref.make<ReadonlyArray<number>>([])
        yield* run(
          Subscriber.make(OrderPlaced, {
            durable: "failing",
            policy,
            handler: (envelope) =>
              Effect.gen(function* () {
                const { n, total } = envelope.data
                yield* Ref.update(runs, (list) => [...list, n])
                if (total === 99.99) return yield* new PaymentDeclined({ message: `card declined for ${total}` })
                if (total < 0) {
                  return yield* Effect.sync(() => {
                    throw new RangeError(`a total of ${total} is impossible`)
                  })
                }
                yield* Ref.update(handled, (list) => [...list, n])
              })
          })
        )
        const entries = yield* eventually(deadLetterCount(2), { timeout: "20 seconds" })
        yield* eventually(atLeast(handled, 1), { timeout: "20 seconds" })
        const state = yield* eventually(
          Effect.flatMap(consumerState("GLAM_EVENTS", "failing"), (s) =>
            s !== undefined && s.ackFloor.streamSeq === fine.seq ? Effect.succeed(s) : Effect.fail("not settled")
          ),
          { timeout: "20 seconds" }
        )
        expect(yield* Ref.get(runs)).toStrictEqual([1, 2, 3])
        expect(yield* Ref.get(handled)).toStrictEqual([3])
        const stored = yield* storedMessages("GLAM_EVENTS")
        for (const [receipt, errorCode, errorMessage] of [
          [declined, "PaymentDeclined", "card declined for 99.99"],
          [crashing, "RangeError", "a total of -1 is impossible"]
        ] as const) {
          const entry = entries.find((e) => e.record.streamSeq === receipt.seq)
          assert(entry !== undefined, `no dead letter for ${errorCode}`)
          expect(entry.record).toMatchObject({
            decision: "policy",
            errorCode,
            errorMessage,
            failedOperation: "handler",
            originalSubject: placed,
            streamSeq: receipt.seq,
            deliveryCount: 1,
            eventId: receipt.eventId,
            eventType: placed
          })
          const original = stored.find((m) => m.seq === receipt.seq)
          assert(original !== undefined)
          const bytes = yield* DeadLetter.originalBytes(entry)
          assert(Option.isSome(bytes))
          expect(Buffer.compare(Buffer.from(bytes.value), Buffer.from(original.payload))).toBe(0)
          expect(entry.record.originalData).toStrictEqual(JSON.parse(Buffer.from(original.payload).toString()).data)
        }
        expect(state.numAckPending).toBe(0)
        expect(state.numRedelivered).toBe(0)
      })
    )
  )

  it.live(
    "GLAM_DLQ deleted under a running subscriber: a poison message is not dropped, it is redelivered until GLAM_DLQ exists, then dead-lettered",
    () =>
      withMessaging(
        Effect.gen(function* () {
          const broker = yield* Broker
          const publisher = yield* Publisher.Publisher
          const poisonBytes = utf8('{"event_id": "not an envelope"}')
          const handled = yield* Ref.make<ReadonlyArray<number>>([])
          yield* run(
            Subscriber.make(OrderPlaced, {
              durable: "no-dlq",
              policy: Policy.make<never>({
                rules: {},
                decodeFailure: Policy.deadLetter,
                // the nak delay after a dead letter could not be written
                defect: Policy.redeliver(Schedule.spaced("300 millis")),
                maxDeliveries: 30
              }),
              handler: (envelope) => Ref.update(handled, (list) => [...list, envelope.data.n])
            })
          )
          // The subscriber starts only with a dead-letter stream; this one goes away after it started.
          expect(yield* broker.deleteStream("GLAM_DLQ")).toBe(true)
          const poison = yield* publishRaw(placed, poisonBytes)
          const good = yield* publisher.publish(OrderPlaced, placedPayload(1))
          // The good message behind it is handled; the poison one keeps coming back, unsettled.
          yield* eventually(atLeast(handled, 1), { timeout: "20 seconds" })
          const waiting = yield* eventually(
            Effect.flatMap(consumerState("GLAM_EVENTS", "no-dlq"), (s) =>
              s !== undefined && s.delivered.consumerSeq >= 4 ? Effect.succeed(s) : Effect.fail("not redelivered yet")
            ),
            { timeout: "20 seconds" }
          )
          expect(waiting.numRedelivered).toBe(1)
          expect(waiting.ackFloor.streamSeq).toBe(0)
          expect(Option.isNone(yield* broker.streamInfo("GLAM_DLQ"))).toBe(true)
          expect(Option.isSome(yield* broker.getMessage("GLAM_EVENTS", poison.seq))).toBe(true)

          yield* Topology.provision(Streams.topology)
          const [entry] = yield* eventually(deadLetterCount(1), { timeout: "20 seconds" })
          assert(entry !== undefined)
          expect(entry.record).toMatchObject({
            decision: "decode failure",
            errorCode: "DecodeError",
            originalSubject: placed,
            streamSeq: poison.seq,
            consumer: "no-dlq"
          })
          expect(entry.record.deliveryCount).toBeGreaterThanOrEqual(3)
          expect(entry.record.originalPayload).toBe('{"event_id": "not an envelope"}')
          const bytes = yield* DeadLetter.originalBytes(entry)
          assert(Option.isSome(bytes))
          expect(Buffer.compare(Buffer.from(bytes.value), Buffer.from(poisonBytes))).toBe(0)
          const settled = yield* eventually(
            Effect.flatMap(consumerState("GLAM_EVENTS", "no-dlq"), (s) =>
              s !== undefined && s.ackFloor.streamSeq === good.seq ? Effect.succeed(s) : Effect.fail("not settled")
            ),
            { timeout: "20 seconds" }
          )
          expect(settled.numAckPending).toBe(0)
          expect(yield* Ref.get(handled)).toStrictEqual([1])
        })
      ),
    30_000
  )
})

/**
 * Contract scenarios that end in `GLAM_DLQ`: a message delivered `maxDeliver` times and never settled
 * (the broker's max-deliveries advisory, kept by `GLAM_ADVISORIES`, read by `DeadLetter.watchAdvisories`),
 * and poison bodies a subscriber cannot decode. Both must keep the original bytes exactly.
 */
import { expect } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Broker } from "../../src/Broker.js"
import * as DeadLetter from "../../src/DeadLetter.js"
import * as Streams from "../../src/glam/Streams.js"
import * as Publisher from "../../src/Publisher.js"
import * as Subscriber from "../../src/Subscriber.js"
import { eventually } from "../support/Eventually.js"
import {
  bytes,
  check,
  consumeRaw,
  consumerState,
  consumers,
  Item,
  messageCount,
  publishRaw,
  runScoped,
  type Scenario,
  sameBytes,
  text
} from "./Harness.js"

const deadLettersOf = (subject: string, count: number) =>
  eventually(
    Effect.flatMap(DeadLetter.list({ subject }), (entries) =>
      Effect.as(check(entries.length >= count, `${entries.length} of ${count} dead letters for ${subject}`), entries)
    )
  )

export const maxDeliveries: Scenario = {
  name: "max deliveries: an unsettled message is delivered maxDeliver times, then advised in GLAM_ADVISORIES and dead-lettered with its bytes",
  realTime: true,
  run: Effect.gen(function* () {
    const broker = yield* Broker
    yield* consumers({ name: "doomed", filterSubject: "evt.doomed.>", ackWait: "1 second", maxDeliver: 2 })
    yield* DeadLetter.watchAdvisories({ stream: "GLAM_EVENTS", consumer: "doomed" }).pipe(Effect.forkScoped)
    const body = bytes(JSON.stringify({ event_id: "doomed-1", event_type: "evt.doomed.crash.v1", data: { x: 1 } }))
    const original = yield* publishRaw("evt.doomed.crash.v1", body, { headers: [["X-Origin", "contract"]] })
    // A consumer that never settles: the process "dies" on the message every time.
    const raw = yield* consumeRaw("doomed")
    const first = yield* raw.next()
    const second = yield* raw.next("5 seconds")
    expect([first.message.deliveryCount, second.message.deliveryCount]).toStrictEqual([1, 2])

    yield* eventually(Effect.flatMap(messageCount(Streams.advisoriesName), (count) => check(count >= 1, "no advisory")))
    const stored = yield* broker.getMessage(Streams.advisoriesName, 1)
    expect(Option.map(stored, (m) => m.subject)).toStrictEqual(
      Option.some(DeadLetter.advisorySubject("GLAM_EVENTS", "doomed"))
    )
    const advisory = Option.map(stored, (m) => JSON.parse(text(m.payload)))
    expect(Option.getOrUndefined(advisory)).toMatchObject({
      stream: "GLAM_EVENTS",
      consumer: "doomed",
      stream_seq: original.seq,
      deliveries: 2
    })

    const [entry] = yield* deadLettersOf("evt.doomed.>", 1)
    expect(entry?.record).toMatchObject({
      decision: "max deliveries",
      errorCode: "MaxDeliveriesExceeded",
      stream: "GLAM_EVENTS",
      streamSeq: original.seq,
      consumer: "doomed",
      deliveryCount: 2,
      originalSubject: "evt.doomed.crash.v1",
      eventId: "doomed-1"
    })
    expect(entry?.record.originalHeaders["X-Origin"]).toStrictEqual(["contract"])
    const restored = entry === undefined ? Option.none() : yield* DeadLetter.originalBytes(entry)
    expect(Option.isSome(restored) && sameBytes(restored.value, body)).toBe(true)

    // Never a third delivery; the advisory is acknowledged once its dead letter is stored.
    yield* raw.nothingWithin("1500 millis")
    expect((yield* consumerState("doomed")).numAckPending).toBe(0)
    yield* eventually(
      Effect.flatMap(consumerState("dlq-GLAM_EVENTS-doomed", Streams.advisoriesName), (state) =>
        check(state.ackFloor.streamSeq === 1 && state.numAckPending === 0, "advisory not acknowledged")
      )
    )
    expect(yield* messageCount(Streams.deadLettersName)).toBe(1)
  })
}

/** Bodies no subscriber can decode, published raw on the subscriber's subject. */
const poisons: ReadonlyArray<readonly [string, Uint8Array]> = [
  ["not JSON", bytes("not json at all")],
  ["not UTF-8", Uint8Array.from([0xff, 0xfe, 0x00, 0x80, 0xc3])],
  ["empty", new Uint8Array(0)],
  ["JSON but not an envelope", bytes('{"hello":"world"}')],
  [
    "an envelope whose payload does not match",
    bytes(
      JSON.stringify({
        event_id: "bad-payload",
        event_type: Item.subject,
        correlation_id: "c-1",
        source_service: "elsewhere",
        timestamp: "2026-01-01T00:00:00+00:00",
        data: { n: "not a number", key: 1 }
      })
    )
  ],
  [
    "an envelope of another event type",
    bytes(
      JSON.stringify({
        event_id: "wrong-type",
        event_type: "evt.contract.other.v1",
        correlation_id: "c-2",
        source_service: "elsewhere",
        timestamp: "2026-01-01T00:00:00+00:00",
        data: { n: 1, key: "k" }
      })
    )
  ]
]

export const poisonDeadLettered: Scenario = {
  name: "poison messages: each bad body is dead-lettered once with its exact bytes, the good ones around it are handled once",
  run: Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    const poisonSeqs: Array<number> = []
    const goodIds: Array<string> = []
    for (const [, body] of poisons) {
      goodIds.push((yield* publisher.publish(Item, { n: goodIds.length + 1, key: "k" })).eventId)
      poisonSeqs.push((yield* publishRaw(Item.subject, body)).seq)
    }
    goodIds.push((yield* publisher.publish(Item, { n: goodIds.length + 1, key: "k" })).eventId)
    const handled: Array<string> = []
    yield* runScoped(
      Subscriber.make(Item, {
        durable: "poisoned",
        handler: (envelope) => Effect.sync(() => void handled.push(envelope.eventId))
      })
    )
    const entries = yield* deadLettersOf(Item.subject, poisons.length)
    yield* eventually(
      Effect.flatMap(consumerState("poisoned"), (state) =>
        check(state.ackFloor.streamSeq === poisons.length * 2 + 1 && state.numAckPending === 0, "not all settled")
      )
    )
    expect(handled).toStrictEqual(goodIds)
    expect(entries.map((entry) => entry.record.streamSeq)).toStrictEqual(poisonSeqs)
    for (const [i, entry] of entries.entries()) {
      const [what, body] = poisons[i] ?? ["?", new Uint8Array(0)]
      expect(entry.record, what).toMatchObject({
        decision: "decode failure",
        errorCode: "DecodeError",
        originalSubject: Item.subject,
        consumer: "poisoned",
        deliveryCount: 1
      })
      const restored = yield* DeadLetter.originalBytes(entry)
      expect(Option.isSome(restored) && sameBytes(restored.value, body), `bytes of ${what}`).toBe(true)
    }
    expect(yield* messageCount(Streams.deadLettersName)).toBe(poisons.length)
  })
}

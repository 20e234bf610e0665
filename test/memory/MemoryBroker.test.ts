/**
 * What only `MemoryBroker` has, beside the broker contract (test/contract/, which both brokers run and
 * which holds publish/consume, the settle verbs, ack-wait, maxAckPending, interruption, re-creation and
 * administration): timing driven by `TestClock` to the exact boundary (duplicate window, nak delay,
 * ack-wait and working, max age, max deliveries and its advisory, Policy redeliveries), its imitation of
 * nats-server's details (stream limits, subjects overlapping, deliver policies down to lastPerSubject,
 * the order of due redeliveries, a pending message leaving the stream), and each build of the layer
 * being a broker of its own.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Layer, Option, Queue, Ref, Schedule, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import {
  Broker,
  type ConsumeOptions,
  type ConsumerConfig,
  type Headers,
  type Message,
  type StreamConfig
} from "../../src/Broker.js"
import * as DeadLetter from "../../src/DeadLetter.js"
import * as Event from "../../src/Event.js"
import * as Streams from "../../src/glam/Streams.js"
import * as MemoryBroker from "../../src/MemoryBroker.js"
import type { NatsError } from "../../src/NatsError.js"
import * as Policy from "../../src/Policy.js"
import * as Publisher from "../../src/Publisher.js"
import * as ServiceIdentity from "../../src/ServiceIdentity.js"
import * as Subscriber from "../../src/Subscriber.js"
import * as Topology from "../../src/Topology.js"
import { bytes, consumerConfig, streamConfig, text } from "../support/configs.js"
import { eventually } from "../support/Eventually.js"

const timeout = Duration.seconds(5)

/** Every test gets a broker of its own, built on the test's clock. */
const fresh = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, MemoryBroker.layer)

const publishTo = (subject: string, payload: string, extra: { messageId?: string; headers?: Headers } = {}) =>
  Broker.use((broker) =>
    broker.publish({
      subject,
      payload: bytes(payload),
      headers: extra.headers ?? [],
      messageId: extra.messageId,
      timeout
    })
  )

const publishMany = (subject: string, count: number, headers: Headers = []) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => i + 1),
    (n) => publishTo(subject, `message ${n}`, { headers })
  )

/** A stream `<NAME>` on `<name>.>` and a durable `worker` on it. */
const setup = (name: string, consumer: Partial<ConsumerConfig> = {}, stream: Partial<StreamConfig> = {}) =>
  Effect.gen(function* () {
    const broker = yield* Broker
    yield* broker.addStream({ ...streamConfig(name, [`${name.toLowerCase()}.>`]), ...stream })
    yield* broker.addConsumer({ ...consumerConfig(name, "worker"), ...consumer })
    return { broker, subject: `${name.toLowerCase()}.x` }
  })

/** Runs a consume in the test's scope; deliveries land in a queue. */
const consumeInto = (stream: string, options: ConsumeOptions = { maxMessages: 100 }, consumer = "worker") =>
  Effect.gen(function* () {
    const broker = yield* Broker
    const received = yield* Queue.unbounded<Message, NatsError>()
    const fiber = yield* broker.consume(stream, consumer, options).pipe(
      Stream.runForEach((message) => Queue.offer(received, message)),
      Effect.catchCause((cause) => Queue.failCause(received, cause)),
      Effect.forkScoped
    )
    return { received, fiber }
  })

const takeN = (received: Queue.Queue<Message, NatsError>, count: number) =>
  Effect.forEach(Array.from({ length: count }), () => Queue.take(received))

/** Lets every fiber run (no time passes), then checks that nothing more arrived. */
const nothingMore = (received: Queue.Queue<Message, NatsError>) =>
  Effect.gen(function* () {
    for (let turn = 0; turn < 50; turn++) yield* Effect.yieldNow
    expect(yield* Queue.size(received)).toBe(0)
  })

const state = (stream: string, consumer = "worker") =>
  Broker.use((broker) => broker.consumerInfo(stream, consumer)).pipe(
    Effect.flatMap(Effect.fromOption),
    Effect.map((info) => info.state)
  )

const streamState = (stream: string) =>
  Broker.use((broker) => broker.streamInfo(stream)).pipe(
    Effect.flatMap(Effect.fromOption),
    Effect.map((info) => info.state)
  )

describe("MemoryBroker publishing and streams", () => {
  it.live("says it is memory and supports term reasons, and every build of the layer is a new broker", () =>
    Effect.gen(function* () {
      const first = yield* fresh(
        Effect.gen(function* () {
          yield* setup("ONE")
          yield* publishTo("one.x", "a")
          return yield* Broker
        })
      )
      expect(first.system).toBe("memory")
      expect(yield* first.supportsTermReason).toBe(true)
      const other = yield* fresh(Broker.use((broker) => broker.streamInfo("ONE")))
      expect(other).toStrictEqual(Option.none())
      expect(Option.map(yield* first.streamInfo("ONE"), (info) => info.state.messages)).toStrictEqual(Option.some(1))
    })
  )

  it.effect("the same message id within the window stores once (first payload kept), and again after it", () =>
    fresh(
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream({ ...streamConfig("DEDUPE", ["dedupe.>"]), duplicateWindow: Duration.seconds(30) })
        expect(yield* publishTo("dedupe.x", "first", { messageId: "event-1" })).toStrictEqual({
          stream: "DEDUPE",
          seq: 1,
          duplicate: false
        })
        yield* TestClock.adjust("29 seconds")
        expect(yield* publishTo("dedupe.x", "second", { messageId: "event-1" })).toStrictEqual({
          stream: "DEDUPE",
          seq: 1,
          duplicate: true
        })
        expect((yield* streamState("DEDUPE")).messages).toBe(1)
        const stored = yield* broker.getMessage("DEDUPE", 1).pipe(Effect.flatMap(Effect.fromOption))
        expect(text(stored.payload)).toBe("first")
        yield* TestClock.adjust("1 second")
        expect(yield* publishTo("dedupe.x", "third", { messageId: "event-1" })).toStrictEqual({
          stream: "DEDUPE",
          seq: 2,
          duplicate: false
        })
      })
    )
  )

  it.live("subjects shared with another stream are refused, on create and on update", () =>
    fresh(
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream(streamConfig("ORDERS", ["orders.*.created", "billing.>"]))
        for (const subjects of [["orders.eu.created"], ["orders.>"], ["*.eu.created"], ["billing.x.y"], [">"]]) {
          const refused = yield* broker.addStream(streamConfig("OTHER", subjects)).pipe(Effect.flip)
          assert(refused.reason._tag === "Rejected", subjects.join())
          expect(refused.reason.message).toMatch(/overlap/)
        }
        yield* broker.addStream(streamConfig("OTHER", ["orders.eu.deleted", "billing"]))
        const moved = yield* broker.updateStream(streamConfig("OTHER", ["orders.>"])).pipe(Effect.flip)
        assert(moved.reason._tag === "Rejected")
        expect(moved.reason.code).toBe(10065)
        expect((yield* publishTo("orders.eu.deleted", "x")).stream).toBe("OTHER")
        expect((yield* publishTo("orders.eu.created", "x")).stream).toBe("ORDERS")
      })
    )
  )

  it.live("max messages and max bytes discard the oldest, or refuse the new with discard new", () =>
    fresh(
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream({ ...streamConfig("OLD", ["old.>"]), maxMessages: 3 })
        yield* publishMany("old.x", 5)
        expect(yield* streamState("OLD")).toMatchObject({ messages: 3, firstSeq: 3, lastSeq: 5 })
        expect(yield* broker.getMessage("OLD", 2)).toStrictEqual(Option.none())

        yield* broker.addStream({ ...streamConfig("NEW", ["new.>"]), maxMessages: 2, discard: "new" })
        yield* publishMany("new.x", 2)
        const full = yield* publishTo("new.x", "three").pipe(Effect.flip)
        expect(full.reason.message).toBe("maximum messages exceeded")
        expect(yield* streamState("NEW")).toMatchObject({ messages: 2, firstSeq: 1, lastSeq: 2 })

        // each record is 30 + 7 (subject) + 9 (payload) = 46 bytes
        yield* broker.addStream({ ...streamConfig("BYTES", ["bytes.>"]), maxBytes: 100 })
        yield* publishMany("bytes.x", 3)
        expect(yield* streamState("BYTES")).toMatchObject({ messages: 2, bytes: 92, firstSeq: 2 })
      })
    )
  )

  it.live("max messages per subject keeps the newest of each subject", () =>
    fresh(
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream({ ...streamConfig("PERSUBJ", ["per.>"]), maxMessagesPerSubject: 2 })
        for (const subject of ["per.a", "per.b", "per.a", "per.a", "per.b", "per.a"]) yield* publishTo(subject, subject)
        expect(yield* streamState("PERSUBJ")).toMatchObject({ messages: 4, firstSeq: 2, lastSeq: 6 })
        const kept = yield* Effect.forEach([2, 3, 4, 5, 6], (seq) => broker.getMessage("PERSUBJ", seq))
        expect(kept.map((m) => Option.map(m, (s) => s.subject))).toStrictEqual([
          Option.some("per.b"),
          Option.none(),
          Option.some("per.a"),
          Option.some("per.b"),
          Option.some("per.a")
        ])
      })
    )
  )

  it.effect("max age removes messages as the clock passes it, and they are never delivered", () =>
    fresh(
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream({ ...streamConfig("AGE", ["age.>"]), maxAge: Duration.minutes(10) })
        yield* publishTo("age.x", "old")
        yield* TestClock.adjust("6 minutes")
        yield* publishTo("age.x", "young")
        expect((yield* streamState("AGE")).messages).toBe(2)
        yield* TestClock.adjust("4 minutes")
        expect(yield* streamState("AGE")).toMatchObject({ messages: 1, firstSeq: 2, lastSeq: 2 })
        expect(yield* broker.getMessage("AGE", 1)).toStrictEqual(Option.none())
        yield* broker.addConsumer(consumerConfig("AGE", "worker"))
        const { received } = yield* consumeInto("AGE")
        const only = yield* Queue.take(received)
        expect([only.streamSeq, text(only.payload)]).toStrictEqual([2, "young"])
      })
    )
  )
})

describe("MemoryBroker consumers", () => {
  it.live("deliver policies: all reads history, new only what comes next, last and lastPerSubject the newest", () =>
    fresh(
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream(streamConfig("POL", ["pol.>"]))
        for (const subject of ["pol.a", "pol.b", "pol.a", "pol.c", "pol.b"]) yield* publishTo(subject, subject)
        const firstOf = (name: string, deliverPolicy: ConsumerConfig["deliverPolicy"], count: number) =>
          Effect.gen(function* () {
            // nats-server 2.9 wants a filter with lastPerSubject
            const filterSubject = deliverPolicy === "lastPerSubject" ? "pol.*" : undefined
            const info = yield* broker.addConsumer({ ...consumerConfig("POL", name), deliverPolicy, filterSubject })
            const { received } = yield* consumeInto("POL", { maxMessages: 10 }, name)
            const messages = yield* takeN(received, count)
            return { pending: info.state.numPending, seqs: messages.map((m) => m.streamSeq) }
          })
        expect(yield* firstOf("all", "all", 5)).toStrictEqual({ pending: 5, seqs: [1, 2, 3, 4, 5] })
        expect(yield* firstOf("last", "last", 1)).toStrictEqual({ pending: 1, seqs: [5] })
        expect(yield* firstOf("per-subject", "lastPerSubject", 3)).toStrictEqual({ pending: 3, seqs: [3, 4, 5] })
        const unfiltered = yield* broker
          .addConsumer({ ...consumerConfig("POL", "unfiltered"), deliverPolicy: "lastPerSubject" })
          .pipe(Effect.flip)
        expect(unfiltered.reason._tag).toBe("Rejected")
        const fresh = yield* broker.addConsumer({ ...consumerConfig("POL", "new"), deliverPolicy: "new" })
        expect(fresh.state).toMatchObject({ numPending: 0, delivered: { streamSeq: 5, consumerSeq: 0 } })
        const { received } = yield* consumeInto("POL", { maxMessages: 10 }, "new")
        yield* publishTo("pol.d", "d")
        expect((yield* Queue.take(received)).streamSeq).toBe(6)
      })
    )
  )

  it.live("due redeliveries are served first come, first served, before new messages", () =>
    fresh(
      Effect.gen(function* () {
        const { broker, subject } = yield* setup("FIFO")
        yield* publishMany(subject, 4)
        const held = yield* broker.consume("FIFO", "worker", { maxMessages: 3 }).pipe(Stream.take(3), Stream.runCollect)
        // nobody pulls while they are nak'ed: they wait in the order of the naks
        held[2]?.nak()
        held[0]?.nak()
        const { received } = yield* consumeInto("FIFO", { maxMessages: 10 })
        const next = yield* takeN(received, 3)
        expect(next.map((m) => [m.streamSeq, m.deliveryCount])).toStrictEqual([
          [3, 2],
          [1, 2],
          [4, 1]
        ])
        yield* nothingMore(received)
      })
    )
  )

  it.live("a pending message that leaves the stream is settled for its consumer, as the server does", () =>
    fresh(
      Effect.gen(function* () {
        const { subject } = yield* setup("LEAVES", {}, { maxMessagesPerSubject: 1 })
        yield* publishMany(subject, 1)
        const { received } = yield* consumeInto("LEAVES")
        yield* Queue.take(received)
        yield* publishMany(subject, 1)
        const second = yield* Queue.take(received)
        expect(second.streamSeq).toBe(2)
        expect(yield* state("LEAVES")).toMatchObject({
          numAckPending: 1,
          ackFloor: { streamSeq: 1, consumerSeq: 1 }
        })
      })
    )
  )

  it.effect("nak(5 minutes) redelivers when TestClock passes 5 minutes, not before", () =>
    fresh(
      Effect.gen(function* () {
        const { subject } = yield* setup("NAKDELAY")
        yield* publishMany(subject, 1)
        const { received } = yield* consumeInto("NAKDELAY")
        const first = yield* Queue.take(received)
        first.nak(Duration.toMillis(Duration.minutes(5)))
        expect((yield* state("NAKDELAY")).numAckPending).toBe(1)
        yield* TestClock.adjust("4 minutes")
        yield* TestClock.adjust("59 seconds")
        yield* nothingMore(received)
        yield* TestClock.adjust("1 second")
        const again = yield* Queue.take(received)
        expect([again.streamSeq, again.deliveryCount]).toStrictEqual([1, 2])
      })
    )
  )

  it.effect("ack-wait expiry redelivers; working restarts the ack-wait clock", () =>
    fresh(
      Effect.gen(function* () {
        const { subject } = yield* setup("ACKWAIT", { ackWait: Duration.seconds(30) })
        yield* publishMany(subject, 2)
        const { received } = yield* consumeInto("ACKWAIT")
        const [kept, dropped] = yield* takeN(received, 2)
        assert(kept !== undefined && dropped !== undefined)
        yield* TestClock.adjust("20 seconds")
        kept.working()
        yield* TestClock.adjust("10 seconds")
        const back = yield* Queue.take(received)
        expect([back.streamSeq, back.deliveryCount]).toStrictEqual([2, 2])
        yield* nothingMore(received)
        yield* TestClock.adjust("20 seconds")
        const late = yield* Queue.take(received)
        expect([late.streamSeq, late.deliveryCount]).toStrictEqual([1, 2])
        expect((yield* state("ACKWAIT")).numRedelivered).toBe(2)
      })
    )
  )

  it.effect(
    "maxDeliver: the advisory goes to GLAM_ADVISORIES, the message is not delivered again, the floor stays",
    () =>
      fresh(
        Effect.gen(function* () {
          const broker = yield* Broker
          yield* Topology.provision(Streams.topology)
          yield* broker.addConsumer({
            ...consumerConfig("GLAM_EVENTS", "crashy"),
            ackWait: Duration.seconds(10),
            maxDeliver: 2
          })
          const original = yield* publishTo("evt.crash.v1", "boom")
          const { received } = yield* consumeInto("GLAM_EVENTS", { maxMessages: 10 }, "crashy")
          expect((yield* Queue.take(received)).deliveryCount).toBe(1)
          yield* TestClock.adjust("10 seconds")
          expect((yield* Queue.take(received)).deliveryCount).toBe(2)
          yield* TestClock.adjust("10 seconds")
          const advisory = yield* broker.getMessage("GLAM_ADVISORIES", 1).pipe(Effect.flatMap(Effect.fromOption))
          expect(advisory.subject).toBe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.GLAM_EVENTS.crashy")
          const body = JSON.parse(text(advisory.payload))
          expect(body).toStrictEqual({
            type: "io.nats.jetstream.advisory.v1.max_deliver",
            id: body.id,
            timestamp: "1970-01-01T00:00:20.000Z",
            stream: "GLAM_EVENTS",
            consumer: "crashy",
            stream_seq: original.seq,
            deliveries: 2
          })
          yield* TestClock.adjust("1 hour")
          yield* nothingMore(received)
          expect((yield* streamState("GLAM_ADVISORIES")).messages).toBe(1)
          expect(yield* state("GLAM_EVENTS", "crashy")).toMatchObject({
            numAckPending: 0,
            numRedelivered: 1,
            ackFloor: { streamSeq: 0, consumerSeq: 0 }
          })
        })
      )
  )
})

const Happened = Event.make("evt.test.happened.v1", Schema.Struct({ n: Schema.Number }))

class Flaky extends Schema.TaggedError<Flaky>()("Flaky", {}) {}

/** The GLAM topology, a publisher and a service identity over a fresh in-memory broker. */
const library = Publisher.layer().pipe(
  Layer.provideMerge(Topology.layer(Streams.topology)),
  Layer.provideMerge(ServiceIdentity.layer("memory-test")),
  Layer.provideMerge(MemoryBroker.layer)
)

const deadLetterCount = DeadLetter.list().pipe(
  Effect.flatMap((entries) => (entries.length > 0 ? Effect.succeed(entries) : Effect.fail("no dead letter yet")))
)

describe("MemoryBroker under the library", () => {
  it.effect(
    "Subscriber + Policy: a failing handler is redelivered after its delay, then dead-lettered in GLAM_DLQ",
    () =>
      Effect.gen(function* () {
        const runs = yield* Ref.make<ReadonlyArray<number>>([])
        yield* Subscriber.make(Happened, {
          durable: "flaky",
          policy: Policy.make<Flaky>({
            rules: { Flaky: Policy.redeliver(Schedule.spaced("10 minutes")) },
            maxDeliveries: 3
          }),
          handler: () =>
            Clock.currentTimeMillis.pipe(
              Effect.flatMap((now) => Ref.update(runs, (list) => [...list, now])),
              Effect.andThen(Effect.fail(new Flaky()))
            )
        })
        const receipt = yield* Publisher.Publisher.use((publisher) => publisher.publish(Happened, { n: 7 }))
        const ranTimes = (count: number) =>
          Effect.flatMap(Ref.get(runs), (list) =>
            list.length >= count ? Effect.succeed(list) : Effect.fail("waiting")
          )
        yield* eventually(ranTimes(1), { withoutTime: true })
        for (let minute = 1; minute < 10; minute++) yield* TestClock.adjust("1 minute")
        expect(yield* Ref.get(runs)).toHaveLength(1)
        yield* TestClock.adjust("1 minute")
        yield* eventually(ranTimes(2), { withoutTime: true })
        yield* TestClock.adjust("10 minutes")
        const times = yield* eventually(ranTimes(3), { withoutTime: true })
        expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(Duration.toMillis(Duration.minutes(10)))
        expect((times[2] ?? 0) - (times[1] ?? 0)).toBeGreaterThanOrEqual(Duration.toMillis(Duration.minutes(10)))

        const [entry] = yield* eventually(deadLetterCount, { withoutTime: true })
        assert(entry !== undefined)
        expect(entry.subject).toBe("dlq.test.happened.v1")
        expect(entry.record).toMatchObject({
          decision: "max deliveries",
          errorCode: "Flaky",
          stream: "GLAM_EVENTS",
          streamSeq: receipt.seq,
          consumer: "flaky",
          deliveryCount: 3,
          eventId: receipt.eventId,
          originalSubject: "evt.test.happened.v1"
        })
        const original = yield* Broker.use((broker) => broker.getMessage("GLAM_EVENTS", receipt.seq)).pipe(
          Effect.flatMap(Effect.fromOption)
        )
        expect(entry.record.originalPayload).toBe(text(original.payload))
        const stored = yield* Broker.use((broker) => broker.getMessage("GLAM_DLQ", entry.seq)).pipe(
          Effect.flatMap(Effect.fromOption)
        )
        expect(stored.headers).toStrictEqual([["Nats-Msg-Id", `dlq:GLAM_EVENTS:${receipt.seq}`]])
        const after = yield* eventually(
          Effect.filterOrFail(state("GLAM_EVENTS", "flaky"), (s) => s.numAckPending === 0),
          { withoutTime: true }
        )
        expect(after.ackFloor.streamSeq).toBe(receipt.seq)
        yield* TestClock.adjust("1 hour")
        expect(yield* Ref.get(runs)).toHaveLength(3)
      }).pipe(Effect.provide(library))
  )

  it.effect("DeadLetter.watchAdvisories turns a max-deliveries advisory into a dead letter with the bytes", () =>
    Effect.gen(function* () {
      const broker = yield* Broker
      yield* broker.addConsumer({
        ...consumerConfig("GLAM_EVENTS", "crashy"),
        filterSubject: "evt.crash.loop.v1",
        ackWait: Duration.seconds(10),
        maxDeliver: 2
      })
      const body = JSON.stringify({ event_id: "crash-1", event_type: "evt.crash.loop.v1", data: {} })
      const original = yield* publishTo("evt.crash.loop.v1", body)
      // Never settled: the process "dies" on the message every time.
      const { received } = yield* consumeInto("GLAM_EVENTS", { maxMessages: 10 }, "crashy")
      yield* Queue.take(received)
      yield* TestClock.adjust("10 seconds")
      yield* Queue.take(received)
      yield* TestClock.adjust("10 seconds")
      expect((yield* streamState("GLAM_ADVISORIES")).messages).toBe(1)
      expect(yield* DeadLetter.list()).toHaveLength(0)

      yield* DeadLetter.watchAdvisories({ stream: "GLAM_EVENTS", consumer: "crashy" }).pipe(Effect.forkScoped)
      const [entry] = yield* eventually(deadLetterCount, { withoutTime: true })
      assert(entry !== undefined)
      expect(entry.record).toMatchObject({
        decision: "max deliveries",
        errorCode: "MaxDeliveriesExceeded",
        stream: "GLAM_EVENTS",
        streamSeq: original.seq,
        consumer: "crashy",
        deliveryCount: 2,
        eventId: "crash-1",
        originalPayload: body
      })
      const advisories = yield* eventually(
        Effect.filterOrFail(state("GLAM_ADVISORIES", "dlq-GLAM_EVENTS-crashy"), (s) => s.ackFloor.streamSeq === 1),
        { withoutTime: true }
      )
      expect([advisories.numPending, advisories.numAckPending]).toStrictEqual([0, 0])
    }).pipe(Effect.provide(library))
  )
})

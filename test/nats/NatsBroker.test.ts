import { assert, describe, expect, layer } from "@effect/vitest"
import { AckPolicy } from "@nats-io/jetstream"
import {
  type Cause,
  Clock,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Option,
  Queue,
  Schedule,
  Scope,
  Stream
} from "effect"
import {
  Broker,
  type ConsumeOptions,
  type ConsumerConfig,
  type Headers,
  type Message,
  type StreamConfig
} from "../../src/Broker.js"
import { type LogEntry, PullFlow } from "../../src/internal/nats/pull.js"
import * as NatsBroker from "../../src/NatsBroker.js"
import * as NatsClientModule from "../../src/NatsClient.js"
import { NatsClient } from "../../src/NatsClient.js"
import type { NatsError } from "../../src/NatsError.js"
import { bytes, consumerConfig, streamConfig, text } from "../support/configs.js"
import { eventually } from "../support/Eventually.js"
import * as NatsServer from "../support/NatsServer.js"

const Env = NatsBroker.layerFromClient.pipe(
  Layer.provideMerge(
    Layer.unwrap(Effect.map(NatsServer.NatsServerService, (server) => NatsClientModule.layer({ servers: server.url })))
  ),
  Layer.provideMerge(NatsServer.layer())
)

const timeout = Duration.seconds(5)

describe("NatsBroker", () => {
  layer(Env)("over a real nats-server", (it) => {
    it.effect("says it is nats", () =>
      Effect.gen(function* () {
        expect((yield* Broker).system).toBe("nats")
      })
    )

    it.effect("publish returns the stream and the sequence of each stored message", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream(streamConfig("PUB", ["pub.>"]))
        const first = yield* broker.publish({ subject: "pub.a", payload: bytes("one"), headers: [], timeout })
        const second = yield* broker.publish({ subject: "pub.b", payload: bytes("two"), headers: [], timeout })
        expect(first).toStrictEqual({ stream: "PUB", seq: 1, duplicate: false })
        expect(second).toStrictEqual({ stream: "PUB", seq: 2, duplicate: false })
        const info = yield* broker.streamInfo("PUB").pipe(Effect.flatMap(Effect.fromOption))
        expect(info.state.messages).toBe(2)
        expect(info.state.lastSeq).toBe(2)
      })
    )

    it.effect("the same message id twice stores one message and reports the second as a duplicate", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const { manager } = yield* NatsClient
        yield* broker.addStream(streamConfig("DEDUPE", ["dedupe.>"]))
        const request = { subject: "dedupe.x", headers: [], messageId: "event-1", timeout }
        const first = yield* broker.publish({ ...request, payload: bytes("first") })
        const second = yield* broker.publish({ ...request, payload: bytes("second") })
        expect(first).toStrictEqual({ stream: "DEDUPE", seq: 1, duplicate: false })
        expect(second).toStrictEqual({ stream: "DEDUPE", seq: 1, duplicate: true })
        const info = yield* broker.streamInfo("DEDUPE").pipe(Effect.flatMap(Effect.fromOption))
        expect(info.state.messages).toBe(1)
        const stored = yield* Effect.promise(() => manager.streams.getMessage("DEDUPE", { seq: 1 }))
        expect(new TextDecoder().decode(stored?.data)).toBe("first")
      })
    )

    it.effect("headers arrive with the message, repeated names included, and the id as Nats-Msg-Id", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const { manager } = yield* NatsClient
        yield* broker.addStream(streamConfig("HDRS", ["hdrs.>"]))
        const ack = yield* broker.publish({
          subject: "hdrs.x",
          payload: bytes("{}"),
          headers: [
            ["traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
            ["X-Tag", "a"],
            ["X-Tag", "b"]
          ],
          messageId: "m-1",
          timeout
        })
        const stored = yield* Effect.promise(() => manager.streams.getMessage("HDRS", { seq: ack.seq }))
        assert(stored !== null)
        expect(stored.subject).toBe("hdrs.x")
        expect(stored.header.get("traceparent")).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        expect(stored.header.values("X-Tag")).toStrictEqual(["a", "b"])
        expect(stored.header.get("Nats-Msg-Id")).toBe("m-1")
      })
    )

    it.effect("an expected last sequence that does not match fails with WrongLastSequence", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream(streamConfig("SEQ", ["seq.>"]))
        const base = { subject: "seq.x", payload: bytes("x"), headers: [], timeout }
        yield* broker.publish({ ...base, expectedLastSequence: 0 })
        const error = yield* broker.publish({ ...base, expectedLastSequence: 5 }).pipe(Effect.flip)
        expect(error.reason._tag).toBe("WrongLastSequence")
        assert(error.reason._tag === "WrongLastSequence")
        expect(error.reason.lastSequence).toBe(1)
        expect(error.isRetryable).toBe(false)
        const ok = yield* broker.publish({ ...base, expectedLastSequence: 1 })
        expect(ok.seq).toBe(2)
      })
    )

    it.effect("publishing to a subject no stream covers fails with StreamNotFound naming the subject", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const error = yield* broker
          .publish({ subject: "nowhere.x", payload: bytes("x"), headers: [], timeout })
          .pipe(Effect.flip)
        expect(error.reason._tag).toBe("StreamNotFound")
        assert(error.reason._tag === "StreamNotFound")
        expect(error.reason.subject).toBe("nowhere.x")
        expect(error.message).toContain("no stream for subject nowhere.x")
      })
    )

    it.effect("a body over the max payload and a header value with a line break are Rejected, not defects", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream(streamConfig("LIMITS", ["limits.>"]))
        const tooBig = yield* broker
          .publish({ subject: "limits.big", payload: new Uint8Array(1024 * 1024 + 1), headers: [], timeout })
          .pipe(Effect.flip)
        expect(tooBig.reason._tag).toBe("Rejected")
        expect(tooBig.message).toContain("max_payload")
        const badHeader = yield* broker
          .publish({ subject: "limits.header", payload: bytes("x"), headers: [["X-Note", "one\ntwo"]], timeout })
          .pipe(Effect.flip)
        expect(badHeader.reason._tag).toBe("Rejected")
        expect(badHeader.isRetryable).toBe(false)
        const info = yield* broker.streamInfo("LIMITS")
        expect(Option.map(info, (i) => i.state.messages)).toStrictEqual(Option.some(0))
      })
    )

    it.effect("a stream's configuration round-trips: durations, limits, and unlimited as undefined", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const limited: StreamConfig = {
          name: "ROUND",
          subjects: ["round.a", "round.b.>"],
          description: "round trip",
          retention: "limits",
          storage: "memory",
          discard: "new",
          maxAge: Duration.hours(1),
          maxMessages: 100,
          maxBytes: 1_048_576,
          maxMessageSize: 4096,
          maxMessagesPerSubject: 10,
          duplicateWindow: Duration.seconds(30),
          replicas: 1
        }
        const added = yield* broker.addStream(limited)
        expect(added.config).toStrictEqual(limited)
        expect(yield* broker.streamInfo("ROUND").pipe(Effect.map(Option.map((i) => i.config)))).toStrictEqual(
          Option.some(limited)
        )

        const unlimited = streamConfig("ROUND_UNLIMITED", ["unlimited.>"])
        const info = yield* broker.addStream(unlimited)
        expect(info.config).toStrictEqual(unlimited)
        expect(info.state).toStrictEqual({ messages: 0, bytes: 0, firstSeq: 0, lastSeq: 0, consumerCount: 0 })
      })
    )

    it.effect("updateStream applies changes, clears limits, and the server refuses a storage change", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const original = { ...streamConfig("UPD", ["upd.a"]), maxMessages: 10, description: "before" }
        yield* broker.addStream(original)
        const changed = { ...original, subjects: ["upd.a", "upd.b"], maxMessages: undefined, description: undefined }
        const updated = yield* broker.updateStream(changed)
        expect(updated.config).toStrictEqual(changed)
        const refused = yield* broker.updateStream({ ...changed, storage: "memory" }).pipe(Effect.flip)
        expect(refused.reason._tag).toBe("Rejected")
        const after = yield* broker.streamInfo("UPD").pipe(Effect.map(Option.map((i) => i.config)))
        expect(after).toStrictEqual(Option.some(changed))
      })
    )

    it.effect("lookups of what does not exist answer none or false, not an error", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        expect(yield* broker.streamInfo("MISSING")).toStrictEqual(Option.none())
        expect(yield* broker.deleteStream("MISSING")).toBe(false)
        expect(yield* broker.consumerInfo("MISSING", "nobody")).toStrictEqual(Option.none())
        expect(yield* broker.deleteConsumer("MISSING", "nobody")).toBe(false)
        yield* broker.addStream(streamConfig("EXISTS", ["exists.>"]))
        expect(yield* broker.consumerInfo("EXISTS", "nobody")).toStrictEqual(Option.none())
        expect(yield* broker.deleteConsumer("EXISTS", "nobody")).toBe(false)
        expect(yield* broker.deleteStream("EXISTS")).toBe(true)
        expect(yield* broker.streamInfo("EXISTS")).toStrictEqual(Option.none())
      })
    )

    it.effect("listStreams lists every stream with its configuration", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream(streamConfig("LIST_A", ["list.a"]))
        yield* broker.addStream(streamConfig("LIST_B", ["list.b"]))
        const listed = yield* broker.listStreams
        const mine = listed.filter((info) => info.config.name.startsWith("LIST_"))
        expect(mine.map((info) => info.config).sort((a, b) => a.name.localeCompare(b.name))).toStrictEqual([
          streamConfig("LIST_A", ["list.a"]),
          streamConfig("LIST_B", ["list.b"])
        ])
      })
    )

    it.effect("a consumer's configuration round-trips and it is a durable pull consumer with explicit acks", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const { manager } = yield* NatsClient
        yield* broker.addStream(streamConfig("CONS", ["cons.>"]))
        const config: ConsumerConfig = {
          stream: "CONS",
          name: "worker",
          description: "does the work",
          filterSubject: "cons.orders.>",
          deliverPolicy: "new",
          ackWait: Duration.seconds(10),
          maxDeliver: 5,
          maxAckPending: 50
        }
        const added = yield* broker.addConsumer(config)
        expect(added.config).toStrictEqual(config)
        expect(added.state.numPending).toBe(0)
        const info = yield* broker.consumerInfo("CONS", "worker")
        expect(Option.map(info, (i) => i.config)).toStrictEqual(Option.some(config))

        const plain = yield* broker.addConsumer(consumerConfig("CONS", "plain"))
        expect(plain.config).toStrictEqual(consumerConfig("CONS", "plain"))

        const raw = yield* Effect.promise(() => manager.consumers.info("CONS", "worker"))
        expect(raw.config.durable_name).toBe("worker")
        expect(raw.config.ack_policy).toBe("explicit")
        expect(raw.config.deliver_subject).toBeUndefined()
        expect(raw.config.backoff).toBeUndefined()
      })
    )

    it.effect("updateConsumer changes limits and can remove a filter; a deliver policy change is refused", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream(streamConfig("CUPD", ["cupd.>"]))
        const original = { ...consumerConfig("CUPD", "c"), filterSubject: "cupd.a" }
        yield* broker.addConsumer(original)
        const changed: ConsumerConfig = {
          ...original,
          filterSubject: undefined,
          ackWait: Duration.seconds(5),
          maxDeliver: 3,
          maxAckPending: 7
        }
        const updated = yield* broker.updateConsumer(changed)
        expect(updated.config).toStrictEqual(changed)
        yield* broker.publish({ subject: "cupd.b", payload: bytes("b"), headers: [], timeout })
        const info = yield* broker.consumerInfo("CUPD", "c").pipe(Effect.flatMap(Effect.fromOption))
        expect(info.state.numPending).toBe(1)

        const refused = yield* broker.updateConsumer({ ...changed, deliverPolicy: "new" }).pipe(Effect.flip)
        expect(refused.reason._tag).toBe("Rejected")
        expect(yield* broker.deleteConsumer("CUPD", "c")).toBe(true)
        expect(yield* broker.consumerInfo("CUPD", "c")).toStrictEqual(Option.none())
      })
    )
  })
})

const ConsumeEnv = (clientOptions: Omit<NatsClientModule.Options, "servers"> = {}) =>
  NatsBroker.layerFromClient.pipe(
    Layer.provideMerge(
      Layer.unwrap(
        Effect.map(NatsServer.NatsServerService, (server) =>
          NatsClientModule.layer({ servers: server.url, ...clientOptions })
        )
      )
    ),
    Layer.provideMerge(NatsServer.layer())
  )

/** A stream and a durable consumer on it, created fresh for one test. */
const setup = (name: string, consumer: Partial<ConsumerConfig> = {}) =>
  Effect.gen(function* () {
    const broker = yield* Broker
    yield* broker.addStream(streamConfig(name, [`${name.toLowerCase()}.>`]))
    yield* broker.addConsumer({ ...consumerConfig(name, "worker"), ...consumer })
    return { broker, subject: `${name.toLowerCase()}.x` }
  })

const publishMany = (subject: string, count: number, headers: Headers = []) =>
  Effect.flatMap(Broker, (broker) =>
    Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) => broker.publish({ subject, payload: bytes(`message ${i + 1}`), headers, timeout }),
      { concurrency: 64 }
    )
  )

/** Runs the consume in the test's scope; deliveries (or the stream's failure) land in a queue. */
const consumeInto = (stream: string, options: ConsumeOptions = { maxMessages: 100 }) =>
  Effect.gen(function* () {
    const broker = yield* Broker
    const received = yield* Queue.unbounded<Message, NatsError>()
    const fiber = yield* broker.consume(stream, "worker", options).pipe(
      Stream.runForEach((message) => Queue.offer(received, message)),
      Effect.catchCause((cause) => Queue.failCause(received, cause)),
      Effect.forkScoped
    )
    return { received, fiber }
  })

const next = (received: Queue.Queue<Message, NatsError>) => Queue.take(received).pipe(Effect.timeout("10 seconds"))

const state = (stream: string) =>
  Effect.flatMap(Broker, (broker) => broker.consumerInfo(stream, "worker")).pipe(
    Effect.flatMap(Effect.fromOption),
    Effect.map((info) => info.state)
  )

describe("NatsBroker consume", () => {
  layer(ConsumeEnv(), { excludeTestServices: true })("over a real nats-server", (it) => {
    it.effect("delivers every message in stream order with its sequence, count, pending, headers and bytes", () =>
      Effect.gen(function* () {
        const { subject } = yield* setup("ORDER")
        const headers: Headers = [
          ["traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"],
          ["X-Tag", "a"],
          ["X-Tag", "b"]
        ]
        const total = 2000
        yield* Effect.forEach(
          Array.from({ length: total }, (_, i) => i + 1),
          (n) =>
            Effect.flatMap(Broker, (broker) =>
              broker.publish({ subject, payload: bytes(`message ${n}`), headers, timeout })
            ),
          { concurrency: 1 }
        )
        const broker = yield* Broker
        const messages = yield* broker.consume("ORDER", "worker", { maxMessages: 256 }).pipe(
          Stream.tap((message) => Effect.sync(() => message.ack())),
          Stream.take(total),
          Stream.runCollect
        )
        expect(messages.map((m) => m.streamSeq)).toStrictEqual(Array.from({ length: total }, (_, i) => i + 1))
        expect(messages.map((m) => m.consumerSeq)).toStrictEqual(Array.from({ length: total }, (_, i) => i + 1))
        expect(messages.every((m) => m.deliveryCount === 1)).toBe(true)
        expect(messages.map((m) => m.pending)).toStrictEqual(Array.from({ length: total }, (_, i) => total - i - 1))
        expect(messages.every((m, i) => text(m.payload) === `message ${i + 1}`)).toBe(true)
        expect(messages.every((m) => m.subject === subject && m.stream === "ORDER" && m.consumer === "worker")).toBe(
          true
        )
        expect(messages[0]?.headers).toStrictEqual(headers)
        expect(messages[total - 1]?.headers).toStrictEqual(headers)
        const stored = yield* broker.getMessage("ORDER", 1).pipe(Effect.flatMap(Effect.fromOption))
        expect(messages[0]?.timestampMillis).toBe(stored.timestampMillis)
        const after = yield* eventually(Effect.filterOrFail(state("ORDER"), (s) => s.numAckPending === 0))
        expect(after.numPending).toBe(0)
        expect(after.ackFloor.streamSeq).toBe(total)
      })
    )

    it.effect("ack removes a message from the pending acknowledgements", () =>
      Effect.gen(function* () {
        const { subject } = yield* setup("ACKS")
        yield* publishMany(subject, 3)
        const { received } = yield* consumeInto("ACKS")
        const first = yield* next(received)
        yield* next(received)
        yield* next(received)
        expect((yield* state("ACKS")).numAckPending).toBe(3)
        first.ack()
        first.ack()
        const after = yield* eventually(Effect.filterOrFail(state("ACKS"), (s) => s.numAckPending === 2))
        expect(after.ackFloor.streamSeq).toBe(1)
      })
    )

    it.effect("nak() redelivers at once with the delivery count incremented", () =>
      Effect.gen(function* () {
        const { subject } = yield* setup("NAKS")
        yield* publishMany(subject, 1)
        const { received } = yield* consumeInto("NAKS")
        const first = yield* next(received)
        expect(first.deliveryCount).toBe(1)
        first.nak()
        const again = yield* next(received)
        expect(again.streamSeq).toBe(first.streamSeq)
        expect(again.deliveryCount).toBe(2)
        expect(text(again.payload)).toBe("message 1")
        again.ack()
      })
    )

    it.effect("nak(delay) redelivers no sooner than the delay", () =>
      Effect.gen(function* () {
        const { subject } = yield* setup("NAKDELAY")
        yield* publishMany(subject, 1)
        const { received } = yield* consumeInto("NAKDELAY")
        const first = yield* next(received)
        const nakedAt = yield* Clock.currentTimeMillis
        first.nak(800)
        const again = yield* next(received)
        const elapsed = (yield* Clock.currentTimeMillis) - nakedAt
        expect(again.streamSeq).toBe(first.streamSeq)
        expect(again.deliveryCount).toBe(2)
        expect(elapsed).toBeGreaterThanOrEqual(800)
        expect(elapsed).toBeLessThan(800 + 3000)
        again.ack()
      })
    )

    it.effect("term, with or without a reason, is never redelivered, even past ack-wait", () =>
      Effect.gen(function* () {
        const { subject } = yield* setup("TERMS", { ackWait: Duration.seconds(1) })
        yield* publishMany(subject, 2)
        const { received } = yield* consumeInto("TERMS")
        const first = yield* next(received)
        const second = yield* next(received)
        first.term()
        second.term("some reason")
        yield* Effect.sleep("2500 millis")
        expect(yield* Queue.poll(received)).toStrictEqual(Option.none())
        const after = yield* state("TERMS")
        expect(after.numAckPending).toBe(0)
        expect(after.numRedelivered).toBe(0)
      })
    )

    it.effect("working keeps a message past its ack-wait; without it the message comes back", () =>
      Effect.gen(function* () {
        const { subject } = yield* setup("WORKING", { ackWait: Duration.seconds(1) })
        yield* publishMany(subject, 1)
        const { received } = yield* consumeInto("WORKING")
        const kept = yield* next(received)
        yield* Effect.sync(() => kept.working()).pipe(
          Effect.repeat({ schedule: Schedule.spaced("300 millis"), times: 10 })
        )
        expect(yield* Queue.poll(received)).toStrictEqual(Option.none())
        kept.ack()

        yield* publishMany(subject, 1)
        const dropped = yield* next(received)
        expect(dropped.streamSeq).toBe(2)
        const back = yield* next(received)
        expect(back.streamSeq).toBe(2)
        expect(back.deliveryCount).toBe(2)
        back.ack()
      })
    )

    it.effect("the client holds at most maxMessages unsettled deliveries, and pulls more as they are settled", () =>
      Effect.gen(function* () {
        const { subject } = yield* setup("BOUND")
        yield* publishMany(subject, 1000)
        const { received } = yield* consumeInto("BOUND", { maxMessages: 10 })
        const held = yield* Effect.forEach(Array.from({ length: 10 }), () => next(received))
        yield* Effect.sleep("1 second")
        expect(yield* Queue.size(received)).toBe(0)
        const bounded = yield* state("BOUND")
        expect(bounded.numAckPending).toBe(10)
        expect(bounded.numPending).toBe(990)

        for (const message of held.slice(0, 4)) message.ack()
        const more = yield* Effect.forEach(Array.from({ length: 4 }), () => next(received))
        expect(more.map((m) => m.streamSeq)).toStrictEqual([11, 12, 13, 14])
        yield* Effect.sleep("500 millis")
        expect(yield* Queue.size(received)).toBe(0)
        expect((yield* state("BOUND")).numAckPending).toBe(10)
      })
    )

    it.effect("interrupting the stream stops pulling", () =>
      Effect.gen(function* () {
        const { subject, broker } = yield* setup("STOP")
        yield* publishMany(subject, 3)
        const taken = yield* broker.consume("STOP", "worker", { maxMessages: 10 }).pipe(
          Stream.take(3),
          Stream.tap((message) => Effect.sync(() => message.ack())),
          Stream.runCollect
        )
        expect(taken.map((m) => m.streamSeq)).toStrictEqual([1, 2, 3])
        yield* eventually(Effect.filterOrFail(state("STOP"), (s) => s.numAckPending === 0))
        yield* publishMany(subject, 5)
        yield* Effect.sleep("500 millis")
        const after = yield* state("STOP")
        expect(after.numAckPending).toBe(0)
        expect(after.numPending).toBe(5)
      })
    )

    it.effect("interrupting the stream naks what arrived but was never emitted, so it comes back at once", () =>
      Effect.gen(function* () {
        const { subject, broker } = yield* setup("HANDBACK", { ackWait: Duration.minutes(1) })
        yield* publishMany(subject, 1)
        const handling = yield* Deferred.make<Message>()
        const fiber = yield* broker.consume("HANDBACK", "worker", { maxMessages: 10 }).pipe(
          Stream.runForEach((message) => Effect.andThen(Deferred.succeed(handling, message), Effect.never)),
          Effect.forkScoped
        )
        const first = yield* Deferred.await(handling)
        yield* publishMany(subject, 5)
        // The five arrive while the handler holds the first: they wait in the stream's buffer.
        yield* eventually(Effect.filterOrFail(state("HANDBACK"), (s) => s.numAckPending === 6))
        yield* Fiber.interrupt(fiber)
        first.ack()
        // Without the nak they would come back only after the one-minute ack-wait.
        const { received } = yield* consumeInto("HANDBACK")
        const again = yield* Effect.forEach(Array.from({ length: 5 }), () => next(received))
        expect(again.map((m) => m.streamSeq)).toStrictEqual([2, 3, 4, 5, 6])
        expect(again.every((m) => m.deliveryCount === 2)).toBe(true)
        for (const message of again) message.ack()
      })
    )

    it.effect("keeps consuming when the consumer is deleted and created again", () =>
      Effect.gen(function* () {
        const { subject, broker } = yield* setup("RECREATE")
        yield* publishMany(subject, 1)
        const { received } = yield* consumeInto("RECREATE", { maxMessages: 10, idleHeartbeat: Duration.seconds(1) })
        ;(yield* next(received)).ack()
        expect(yield* broker.deleteConsumer("RECREATE", "worker")).toBe(true)
        yield* Effect.sleep("300 millis")
        yield* broker.addConsumer({ ...consumerConfig("RECREATE", "worker"), deliverPolicy: "new" })
        yield* publishMany(subject, 3)
        const after = yield* Effect.forEach(Array.from({ length: 3 }), () => next(received))
        expect(after.map((m) => text(m.payload))).toStrictEqual(["message 1", "message 2", "message 3"])
        expect(after.map((m) => m.streamSeq)).toStrictEqual([2, 3, 4])
        for (const message of after) message.ack()
      })
    )

    it.effect("keeps consuming when the stream is deleted and created again with its consumer", () =>
      Effect.gen(function* () {
        const { subject, broker } = yield* setup("REBUILT")
        yield* publishMany(subject, 1)
        const { received } = yield* consumeInto("REBUILT", { maxMessages: 10, idleHeartbeat: Duration.seconds(1) })
        ;(yield* next(received)).ack()
        expect(yield* broker.deleteStream("REBUILT")).toBe(true)
        yield* Effect.sleep("500 millis")
        yield* setup("REBUILT")
        yield* publishMany(subject, 2)
        const after = yield* Effect.forEach(Array.from({ length: 2 }), () => next(received))
        expect(after.map((m) => [m.streamSeq, text(m.payload)])).toStrictEqual([
          [1, "message 1"],
          [2, "message 2"]
        ])
        for (const message of after) message.ack()
      })
    )

    it.effect("fails with Closed when the connection is closed under it", () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.NatsServerService
        const { subject } = yield* setup("CLOSED")
        const scope = yield* Scope.make()
        const client = yield* NatsClientModule.make({ servers: server.url }).pipe(Scope.provide(scope))
        const broker = yield* NatsBroker.make.pipe(Effect.provideService(NatsClient, client))
        const received = yield* Queue.unbounded<Message, NatsError>()
        const fiber = yield* broker.consume("CLOSED", "worker", { maxMessages: 10 }).pipe(
          Stream.runForEach((message) => Queue.offer(received, message)),
          Effect.flip,
          Effect.forkScoped
        )
        yield* publishMany(subject, 1)
        ;(yield* next(received)).ack()
        yield* Scope.close(scope, Exit.void)
        const error = yield* Fiber.join(fiber).pipe(Effect.timeout("10 seconds"))
        expect(error.reason._tag).toBe("Closed")
      })
    )

    it.effect("two heartbeat intervals with pulls pending and nothing arriving request a re-pull", () =>
      Effect.gen(function* () {
        yield* setup("LIVENESS")
        const { connection, jetstream } = yield* NatsClient
        const deliveries = yield* Queue.unbounded<Message, NatsError | Cause.Done>()
        const wakeups = yield* Queue.unbounded<void>()
        const logs = yield* Queue.unbounded<LogEntry>()
        const flow = new PullFlow({
          connection,
          apiPrefix: jetstream.apiPrefix,
          inboxPrefix: undefined,
          stream: "LIVENESS",
          consumer: "worker",
          maxMessages: 10,
          heartbeatMillis: 500,
          deliveries,
          wakeups,
          logs
        })
        const subscription = connection.subscribe(flow.inbox, { callback: flow.receive })
        flow.restart()
        // The server's idle heartbeats keep an idle pull alive; checks come every half heartbeat.
        for (let check = 0; check < 8; check++) {
          yield* Effect.sleep("250 millis")
          flow.checkHeartbeats()
        }
        expect(flow.reset).toBeUndefined()
        expect(yield* Queue.size(wakeups)).toBe(0)
        expect(flow.answeredSinceRestart).toBe(true)
        // Without the subscription nothing arrives: after two heartbeats of silence the pulls are presumed lost.
        subscription.unsubscribe()
        yield* Effect.sleep("100 millis")
        // The first check may still see the last heartbeat; three quiet checks are not yet two heartbeats.
        for (let check = 0; check < 3; check++) {
          flow.checkHeartbeats()
          yield* Effect.sleep("250 millis")
        }
        expect(flow.reset).toBeUndefined()
        flow.checkHeartbeats()
        flow.checkHeartbeats()
        expect(flow.reset?.reason).toBe("missed two heartbeats")
        expect(flow.reset?.pauseMillis).toBe(0)
        expect(yield* Queue.size(wakeups)).toBe(1)
        flow.close()
      })
    )

    it.effect("fails with ConsumerNotFound when the consumer does not exist", () =>
      Effect.gen(function* () {
        const { broker } = yield* setup("NOCONSUMER")
        const error = yield* broker
          .consume("NOCONSUMER", "nobody", { maxMessages: 10 })
          .pipe(Stream.runDrain, Effect.flip)
        expect(error.reason._tag).toBe("ConsumerNotFound")
      })
    )

    it.effect("fails with Rejected when the server refuses the pull, as it does for a push consumer", () =>
      Effect.gen(function* () {
        const { broker } = yield* setup("PUSHED")
        const { manager } = yield* NatsClient
        yield* Effect.promise(() =>
          manager.consumers.add("PUSHED", {
            durable_name: "pushed",
            deliver_subject: "elsewhere.deliveries",
            ack_policy: AckPolicy.Explicit
          })
        )
        const error = yield* broker
          .consume("PUSHED", "pushed", { maxMessages: 10 })
          .pipe(Stream.runDrain, Effect.flip, Effect.timeout("10 seconds"))
        assert(error.reason._tag === "Rejected")
        expect(error.reason.code).toBe(409)
        expect(error.reason.message).toBe("PUSHED/pushed: the server refused the pull (409 consumer is push based)")
      })
    )

    it.effect("getMessage reads a stored message by sequence, and none for a sequence with no message", () =>
      Effect.gen(function* () {
        const { subject, broker } = yield* setup("GET")
        const before = yield* Clock.currentTimeMillis
        yield* broker.publish({
          subject,
          payload: bytes("stored"),
          headers: [["X-Tag", "a"]],
          messageId: "g-1",
          timeout
        })
        const stored = yield* broker.getMessage("GET", 1).pipe(Effect.flatMap(Effect.fromOption))
        expect(stored.stream).toBe("GET")
        expect(stored.subject).toBe(subject)
        expect(stored.seq).toBe(1)
        expect(text(stored.payload)).toBe("stored")
        expect(stored.headers).toStrictEqual([
          ["X-Tag", "a"],
          ["Nats-Msg-Id", "g-1"]
        ])
        expect(stored.timestampMillis).toBeGreaterThanOrEqual(before - 1000)
        expect(yield* broker.getMessage("GET", 2)).toStrictEqual(Option.none())
        const missingStream = yield* broker.getMessage("NO_SUCH_STREAM", 1).pipe(Effect.flip)
        expect(missingStream.reason._tag).toBe("StreamNotFound")
      })
    )

    it.effect("nats-server 2.9 does not support term reasons", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const { serverVersion } = yield* NatsClient
        expect(yield* broker.supportsTermReason).toBe(NatsClientModule.supportsTermReason(yield* serverVersion))
        expect(NatsClientModule.supportsTermReason("2.9.10")).toBe(false)
      })
    )
  })

  layer(ConsumeEnv({ reconnectWait: "200 millis" }), { excludeTestServices: true })("across a server restart", (it) => {
    it.effect("messages published after the restart arrive on the same stream", () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.NatsServerService
        const { subject } = yield* setup("RESTART")
        yield* publishMany(subject, 3)
        const { received } = yield* consumeInto("RESTART", { maxMessages: 10, idleHeartbeat: Duration.seconds(1) })
        const before = yield* Effect.forEach(Array.from({ length: 3 }), () => next(received))
        for (const message of before) message.ack()
        yield* eventually(Effect.filterOrFail(state("RESTART"), (s) => s.numAckPending === 0))

        yield* server.stop
        yield* Effect.sleep("1 second")
        yield* server.start
        yield* eventually(publishMany(subject, 1), { timeout: "20 seconds", interval: "200 millis" })
        yield* publishMany(subject, 2)
        const after = yield* Effect.forEach(Array.from({ length: 3 }), () =>
          Queue.take(received).pipe(Effect.timeout("20 seconds"))
        )
        expect(after.map((m) => m.streamSeq)).toStrictEqual([4, 5, 6])
        for (const message of after) message.ack()
      })
    )
  })
})

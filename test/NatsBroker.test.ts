import { assert, describe, expect, layer } from "@effect/vitest"
import { Duration, Effect, Layer, Option } from "effect"
import { Broker, type ConsumerConfig, type StreamConfig } from "../src/Broker.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as NatsClientModule from "../src/NatsClient.js"
import { NatsClient } from "../src/NatsClient.js"
import * as NatsServer from "./support/NatsServer.js"

const Env = NatsBroker.layer.pipe(
  Layer.provideMerge(
    Layer.unwrap(Effect.map(NatsServer.NatsServerService, (server) => NatsClientModule.layer({ servers: server.url })))
  ),
  Layer.provideMerge(NatsServer.layer())
)

const streamConfig = (name: string, subjects: ReadonlyArray<string>): StreamConfig => ({
  name,
  subjects,
  description: undefined,
  retention: "limits",
  storage: "file",
  discard: "old",
  maxAge: undefined,
  maxMessages: undefined,
  maxBytes: undefined,
  maxMessageSize: undefined,
  maxMessagesPerSubject: undefined,
  duplicateWindow: Duration.minutes(2),
  replicas: 1
})

const consumerConfig = (stream: string, name: string): ConsumerConfig => ({
  stream,
  name,
  description: undefined,
  filterSubject: undefined,
  deliverPolicy: "all",
  ackWait: Duration.seconds(30),
  maxDeliver: undefined,
  maxAckPending: 1000
})

const bytes = (text: string) => new TextEncoder().encode(text)
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

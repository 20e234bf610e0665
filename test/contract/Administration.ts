/**
 * Contract scenarios on administration, as `Topology` and an operator drive it: a stream's and a
 * consumer's configuration round-trips (durations as Durations, unlimited as undefined), updates apply
 * or are refused the same way on every broker, listing and deleting answer alike, and a purge removes
 * the same messages and moves consumers the same way. Each scenario works on streams of its own beside
 * the GLAM topology.
 */
import { expect } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import { Broker, type ConsumerConfig, type StreamConfig } from "../../src/Broker.js"
import { consumerConfig, streamConfig } from "../support/configs.js"
import { eventually } from "../support/Eventually.js"
import { bytes, check, consumeRaw, consumerState, publishRaw, type Scenario, text } from "./Harness.js"

const configOf = <A extends { readonly config: unknown }>(info: Option.Option<A>) =>
  Option.map(info, (found) => found.config)

export const streamConfiguration: Scenario = {
  name: "streams: the configuration round-trips (durations, limits, unlimited as undefined), a new stream reports zeros and then counts messages and bytes, the same configuration again is accepted and another refused; listStreams lists them, deleteStream removes",
  run: Effect.gen(function* () {
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
    expect((yield* broker.addStream(limited)).config).toStrictEqual(limited)
    expect(configOf(yield* broker.streamInfo("ROUND"))).toStrictEqual(Option.some(limited))
    expect((yield* broker.addStream(limited)).config).toStrictEqual(limited)
    const clash = yield* broker.addStream({ ...limited, maxMessages: 5 }).pipe(Effect.flip)
    expect(clash.reason).toMatchObject({ _tag: "Rejected", code: 10058 })

    const unlimited = streamConfig("ROUND_UNLIMITED", ["unlimited.>"])
    const created = yield* broker.addStream(unlimited)
    expect(created.config).toStrictEqual(unlimited)
    expect(created.state).toStrictEqual({ messages: 0, bytes: 0, firstSeq: 0, lastSeq: 0, consumerCount: 0 })
    // A single server, not a cluster.
    expect(created.cluster).toBeUndefined()
    expect(yield* publishRaw("unlimited.a", bytes("one"))).toStrictEqual({
      stream: "ROUND_UNLIMITED",
      seq: 1,
      duplicate: false
    })
    yield* publishRaw("unlimited.b.c", bytes("two"))
    const counted = yield* broker.streamInfo("ROUND_UNLIMITED")
    // A file-store record is 30 bytes besides its subject and payload.
    expect(Option.map(counted, (info) => info.state)).toStrictEqual(
      Option.some({ messages: 2, bytes: 30 + 11 + 3 + (30 + 13 + 3), firstSeq: 1, lastSeq: 2, consumerCount: 0 })
    )

    const listed = (yield* broker.listStreams).filter((info) => info.config.name.startsWith("ROUND"))
    expect(listed.map((info) => info.config).sort((a, b) => a.name.localeCompare(b.name))).toStrictEqual([
      limited,
      unlimited
    ])
    expect(yield* broker.deleteStream("ROUND")).toBe(true)
    expect(yield* broker.streamInfo("ROUND")).toStrictEqual(Option.none())
    expect(yield* broker.deleteStream("ROUND")).toBe(false)
  })
}

export const streamUpdates: Scenario = {
  name: "updateStream applies changes and clears limits; a storage or retention change, or a missing stream, is refused",
  run: Effect.gen(function* () {
    const broker = yield* Broker
    const original = { ...streamConfig("UPD", ["upd.a"]), maxMessages: 10, description: "before" }
    yield* broker.addStream(original)
    const changed = { ...original, subjects: ["upd.a", "upd.b"], maxMessages: undefined, description: undefined }
    expect((yield* broker.updateStream(changed)).config).toStrictEqual(changed)
    expect((yield* publishRaw("upd.b", bytes("x"))).stream).toBe("UPD")
    const storage = yield* broker.updateStream({ ...changed, storage: "memory" }).pipe(Effect.flip)
    expect(storage.reason).toMatchObject({
      _tag: "Rejected",
      message: "stream configuration update can not change storage type"
    })
    const retention = yield* broker.updateStream({ ...changed, retention: "interest" }).pipe(Effect.flip)
    expect(retention.reason._tag).toBe("Rejected")
    expect(configOf(yield* broker.streamInfo("UPD"))).toStrictEqual(Option.some(changed))
    const missing = yield* broker.updateStream(streamConfig("NOPE", ["nope"])).pipe(Effect.flip)
    expect(missing.reason._tag).toBe("StreamNotFound")
  })
}

export const consumerConfiguration: Scenario = {
  name: "consumers: the configuration round-trips; an update changes limits and removes a filter, a deliver policy change is refused, as are a filter outside the stream and a missing consumer; deleteConsumer removes",
  run: Effect.gen(function* () {
    const broker = yield* Broker
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
    expect([added.state.numPending, added.state.numWaiting, added.cluster]).toStrictEqual([0, 0, undefined])
    expect(configOf(yield* broker.consumerInfo("CONS", "worker"))).toStrictEqual(Option.some(config))
    const plain = consumerConfig("CONS", "plain")
    expect((yield* broker.addConsumer(plain)).config).toStrictEqual(plain)
    expect(Option.map(yield* broker.streamInfo("CONS"), (info) => info.state.consumerCount)).toStrictEqual(
      Option.some(2)
    )

    const changed: ConsumerConfig = {
      ...config,
      filterSubject: undefined,
      ackWait: Duration.seconds(5),
      maxDeliver: undefined,
      maxAckPending: 7
    }
    expect((yield* broker.updateConsumer(changed)).config).toStrictEqual(changed)
    // No longer filtered: a subject outside the old filter is pending for it.
    yield* publishRaw("cons.other", bytes("x"))
    const pending = yield* broker.consumerInfo("CONS", "worker")
    expect(Option.map(pending, (info) => info.state.numPending)).toStrictEqual(Option.some(1))

    const policy = yield* broker.updateConsumer({ ...changed, deliverPolicy: "all" }).pipe(Effect.flip)
    expect(policy.reason).toMatchObject({ _tag: "Rejected", message: "deliver policy can not be updated" })
    const policyViaAdd = yield* broker.addConsumer({ ...changed, deliverPolicy: "all" }).pipe(Effect.flip)
    expect(policyViaAdd.reason._tag).toBe("Rejected")
    const outside = yield* broker
      .addConsumer({ ...consumerConfig("CONS", "stray"), filterSubject: "elsewhere.>" })
      .pipe(Effect.flip)
    expect(outside.reason).toMatchObject({
      _tag: "Rejected",
      message: "consumer filter subject is not a valid subset of the interest subjects"
    })
    const missing = yield* broker.updateConsumer(consumerConfig("CONS", "nobody")).pipe(Effect.flip)
    expect(missing.reason._tag).toBe("ConsumerNotFound")
    expect(configOf(yield* broker.consumerInfo("CONS", "worker"))).toStrictEqual(Option.some(changed))

    expect(yield* broker.deleteConsumer("CONS", "worker")).toBe(true)
    expect(yield* broker.consumerInfo("CONS", "worker")).toStrictEqual(Option.none())
    expect(yield* broker.deleteConsumer("CONS", "worker")).toBe(false)
  })
}

export const consumerListing: Scenario = {
  name: "listConsumers lists exactly the consumers added, by name, with their configuration and state (pending, ack pending after a delivery); a stream without consumers lists none; a missing stream is a StreamNotFound naming it",
  run: Effect.gen(function* () {
    const broker = yield* Broker
    yield* broker.addStream(streamConfig("LISTED", ["listed.>"]))
    yield* broker.addStream(streamConfig("UNLISTED", ["unlisted.>"]))
    expect(yield* broker.listConsumers("LISTED")).toStrictEqual([])
    const worker: ConsumerConfig = {
      ...consumerConfig("LISTED", "worker"),
      description: "orders only",
      filterSubject: "listed.orders.>",
      ackWait: Duration.seconds(10),
      maxDeliver: 3,
      maxAckPending: 20
    }
    const auditor = consumerConfig("LISTED", "auditor")
    yield* broker.addConsumer(worker)
    yield* broker.addConsumer(auditor)
    yield* Effect.forEach(["listed.orders.a", "listed.orders.b", "listed.other"], (subject) =>
      publishRaw(subject, bytes(subject))
    )
    const raw = yield* consumeRaw("worker", { stream: "LISTED", maxMessages: 1 })
    const { message } = yield* raw.next()
    expect([message.streamSeq, text(message.payload)]).toStrictEqual([1, "listed.orders.a"])

    const listed = yield* eventually(
      Effect.flatMap(broker.listConsumers("LISTED"), (infos) => {
        const held = infos.find((info) => info.config.name === "worker")?.state.numAckPending
        return Effect.as(check(held === 1, `worker: ${held} unacknowledged (want 1)`), infos)
      })
    )
    expect(listed.map((info) => info.config)).toStrictEqual([auditor, worker])
    expect(
      listed.map(({ config, state }) => ({
        name: config.name,
        numPending: state.numPending,
        numAckPending: state.numAckPending,
        delivered: state.delivered
      }))
    ).toStrictEqual([
      { name: "auditor", numPending: 3, numAckPending: 0, delivered: { streamSeq: 0, consumerSeq: 0 } },
      { name: "worker", numPending: 1, numAckPending: 1, delivered: { streamSeq: 1, consumerSeq: 1 } }
    ])
    expect(listed.map((info) => info.cluster)).toStrictEqual([undefined, undefined])
    message.ack()

    expect(yield* broker.listConsumers("UNLISTED")).toStrictEqual([])
    expect(yield* broker.deleteConsumer("LISTED", "auditor")).toBe(true)
    expect((yield* broker.listConsumers("LISTED")).map((info) => info.config.name)).toStrictEqual(["worker"])
    const missing = yield* broker.listConsumers("NOPE").pipe(Effect.flip)
    expect(missing.reason).toMatchObject({ _tag: "StreamNotFound", stream: "NOPE" })
    expect(missing.message).toBe("listConsumers: stream NOPE not found")
  })
}

export const streamPurge: Scenario = {
  name: "purgeStream removes the messages below `before` (all without it) and says how many; getMessage finds none of them, the state starts at the first kept, sequences go on, a consumer moves past what was removed; a missing stream is a StreamNotFound naming it",
  run: Effect.gen(function* () {
    const broker = yield* Broker
    const state = Effect.map(broker.streamInfo("PURGED"), (info) =>
      Option.map(info, ({ state: { messages, firstSeq, lastSeq } }) => ({ messages, firstSeq, lastSeq }))
    )
    const bodyAt = (seq: number) =>
      Effect.map(
        broker.getMessage("PURGED", seq),
        Option.map((stored) => text(stored.payload))
      )
    yield* broker.addStream(streamConfig("PURGED", ["purged.>"]))
    yield* broker.addConsumer(consumerConfig("PURGED", "reader"))
    yield* Effect.forEach([1, 2, 3, 4, 5], (n) => publishRaw(`purged.${n}`, bytes(`message ${n}`)))
    // Two deliveries held, unacknowledged, when the purge removes them.
    const raw = yield* consumeRaw("reader", { stream: "PURGED", maxMessages: 2 })
    const held = [yield* raw.next(), yield* raw.next()]
    expect(held.map(({ message }) => message.streamSeq)).toStrictEqual([1, 2])
    yield* eventually(
      Effect.flatMap(consumerState("reader", "PURGED"), (now) =>
        check(now.numAckPending === 2, `reader: ${now.numAckPending} unacknowledged (want 2)`)
      )
    )

    expect(yield* broker.purgeStream("PURGED", { before: 1 })).toBe(0)
    expect(yield* broker.purgeStream("PURGED", { before: 4 })).toBe(3)
    expect(yield* broker.purgeStream("PURGED", { before: 4 })).toBe(0)
    expect(yield* broker.purgeStream("PURGED", { before: 2 })).toBe(0)
    expect(yield* Effect.forEach([1, 2, 3, 4, 5], bodyAt)).toStrictEqual([
      Option.none(),
      Option.none(),
      Option.none(),
      Option.some("message 4"),
      Option.some("message 5")
    ])
    expect(yield* state).toStrictEqual(Option.some({ messages: 2, firstSeq: 4, lastSeq: 5 }))
    const reader = yield* consumerState("reader", "PURGED")
    expect({
      numPending: reader.numPending,
      numAckPending: reader.numAckPending,
      delivered: reader.delivered,
      ackFloor: reader.ackFloor
    }).toStrictEqual({
      numPending: 2,
      numAckPending: 0,
      delivered: { streamSeq: 3, consumerSeq: 2 },
      ackFloor: { streamSeq: 3, consumerSeq: 2 }
    })
    // Settling what was removed frees the slots; the next delivery is the first message kept.
    for (const { message } of held) message.ack()
    const next = yield* raw.next()
    expect([next.message.streamSeq, next.message.deliveryCount]).toStrictEqual([4, 1])

    // Past the last message: everything goes, and the next message takes the next sequence.
    expect(yield* broker.purgeStream("PURGED", { before: 100 })).toBe(2)
    expect(yield* state).toStrictEqual(Option.some({ messages: 0, firstSeq: 6, lastSeq: 5 }))
    expect((yield* publishRaw("purged.6", bytes("message 6"))).seq).toBe(6)
    expect(yield* bodyAt(6)).toStrictEqual(Option.some("message 6"))
    expect(yield* broker.purgeStream("PURGED", {})).toBe(1)
    expect(yield* state).toStrictEqual(Option.some({ messages: 0, firstSeq: 7, lastSeq: 6 }))
    expect(yield* bodyAt(6)).toStrictEqual(Option.none())

    const missing = yield* broker.purgeStream("NOPE", {}).pipe(Effect.flip)
    expect(missing.reason).toMatchObject({ _tag: "StreamNotFound", stream: "NOPE" })
    expect(missing.message).toBe("purgeStream: stream NOPE not found")
    const missingBefore = yield* broker.purgeStream("NOPE", { before: 10 }).pipe(Effect.flip)
    expect(missingBefore.reason).toMatchObject({ _tag: "StreamNotFound", stream: "NOPE" })
  })
}

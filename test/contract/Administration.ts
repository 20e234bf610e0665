/**
 * Contract scenarios on administration, as `Topology` drives it: a stream's and a consumer's
 * configuration round-trips (durations as Durations, unlimited as undefined), updates apply or are
 * refused the same way on every broker, and listing and deleting answer alike. Each scenario works on
 * streams of its own beside the GLAM topology.
 */
import { expect } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import { Broker, type ConsumerConfig, type StreamConfig } from "../../src/Broker.js"
import { consumerConfig, streamConfig } from "../support/configs.js"
import { bytes, publishRaw, type Scenario } from "./Harness.js"

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

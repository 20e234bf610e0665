/**
 * A stream of one's own declared with its dead letters in one call: `Topology.withDeadLetters` derives
 * the dead-letter and advisory streams, `Streams.topology` is that call on `GLAM_EVENTS`, and a subscriber
 * on such a stream dead-letters into its own dead-letter stream, big bodies and replays included.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Data, Duration, Effect, Exit, Option, Schema, Scope } from "effect"
import { Broker } from "../src/Broker.js"
import * as DeadLetter from "../src/DeadLetter.js"
import * as Event from "../src/Event.js"
import * as Streams from "../src/glam/Streams.js"
import * as Policy from "../src/Policy.js"
import * as Publisher from "../src/Publisher.js"
import * as Subscriber from "../src/Subscriber.js"
import * as Topology from "../src/Topology.js"
import { eventually } from "./support/Eventually.js"
import { messaging, storedMessages } from "./support/Messaging.js"

const orders: Topology.StreamSpec = { name: "ORDERS", subjects: ["evt.orders.>"], maxAge: "1 day" }
const OrderPlaced = Event.make("evt.orders.placed.v1", Schema.Struct({ n: Schema.Number }))

class Declined extends Data.TaggedError("Declined")<{ readonly n: number }> {}

const run = <E, R>(subscriber: Effect.Effect<void, E, R>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* subscriber.pipe(Scope.provide(scope))
    return scope
  })

const deadLetters = (stream: string, count: number) =>
  eventually(
    Effect.flatMap(DeadLetter.list({ stream }), (entries) =>
      entries.length >= count ? Effect.succeed(entries) : Effect.fail(`${entries.length} of ${count} dead letters`)
    ),
    { timeout: "20 seconds", interval: "100 millis" }
  )

describe("Topology.withDeadLetters", () => {
  it("derives <NAME>_DLQ on the dlq. form of the subjects and <NAME>_ADVISORIES, with the GLAM defaults", () => {
    const [stream, dlq, advisories] = Topology.withDeadLetters(orders)
    expect(stream).toBe(orders)
    expect(dlq).toStrictEqual({
      name: "ORDERS_DLQ",
      subjects: ["dlq.orders.>", "dlq._chunk.ORDERS", "dlq._missing.ORDERS", "dlq._replayed.ORDERS_DLQ"],
      retention: "limits",
      storage: "file",
      maxAge: Duration.days(30),
      duplicateWindow: Duration.hours(1)
    })
    expect(advisories).toStrictEqual({
      name: "ORDERS_ADVISORIES",
      subjects: ["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORDERS.>"],
      retention: "limits",
      storage: "file",
      maxAge: Duration.days(30)
    })
    // Every dead-letter subject of the stream's events is covered.
    expect(dlq.subjects).toContain(DeadLetter.subjectFor(OrderPlaced.subject).replace("placed.v1", ">"))
  })

  it("maps each kind of subject as DeadLetter.subjectFor does, dropping patterns another covers", () => {
    const subjectsOf = (subjects: ReadonlyArray<string>) =>
      Topology.withDeadLetters({ name: "S", subjects })[1].subjects.filter((subject) => !subject.startsWith("dlq._"))
    expect(subjectsOf(["evt.billing.>", "cmd.billing.>"])).toStrictEqual(["dlq.billing.>"])
    expect(subjectsOf(["orders.*.v1"])).toStrictEqual(["dlq.orders.*.v1"])
    // `dlq.orders.>` and `dlq.*.orders.>` would overlap, which the server refuses: one pattern covers both.
    expect(Topology.withDeadLetters({ name: "S", subjects: ["*.orders.>"] })[1].subjects).toStrictEqual(["dlq.*.>"])
    expect(subjectsOf(["evt.a.b", "evt.a.>"])).toStrictEqual(["dlq.a.>"])
    // `dlq.>` covers the reserved subjects too.
    expect(Topology.withDeadLetters({ name: "ALL", subjects: [">"] })[1].subjects).toStrictEqual(["dlq.>"])
  })

  it.live("the derived subjects are taken by the server; a stream on dlq. subjects itself cannot have them", () =>
    Effect.gen(function* () {
      for (const subjects of [["evt.x.a", "cmd.x.>", "x.*"], ["evt.orders.>", "evt.billing.*"], ["orders.>"]]) {
        const streams = Topology.withDeadLetters({ name: "ODD", subjects })
        yield* Topology.provision(Topology.make({ streams }))
        for (const stream of streams) yield* Topology.deleteStream(stream.name)
      }
      // `*.orders.>` matches `dlq.orders.placed.v1`: the stream would take its own dead letters.
      const refused = yield* Topology.provision(
        Topology.make({ streams: Topology.withDeadLetters({ name: "ODD", subjects: ["*.orders.>"] }) })
      ).pipe(Effect.flip)
      expect(refused.message).toContain("overlap")
    }).pipe(Effect.provide(messaging({ topology: Topology.make({}) })))
  )

  it("passes replicas on and takes any field from the options", () => {
    const [, dlq, advisories] = Topology.withDeadLetters(
      { ...orders, replicas: 3, allowFewerReplicas: true },
      { deadLetters: { name: "ORDERS_DEAD", maxAge: "7 days" }, advisories: { subjects: ["$JS.EVENT.ADVISORY.>"] } }
    )
    expect(dlq).toMatchObject({ name: "ORDERS_DEAD", replicas: 3, allowFewerReplicas: true, maxAge: "7 days" })
    expect(dlq.subjects).toContain("dlq._replayed.ORDERS_DEAD")
    expect(advisories).toMatchObject({ name: "ORDERS_ADVISORIES", replicas: 3, subjects: ["$JS.EVENT.ADVISORY.>"] })
  })

  it("Streams.topology is the call on GLAM_EVENTS, with the names and subjects it always had", () => {
    expect(Streams.topology.streams).toStrictEqual([Streams.events, Streams.deadLetters, Streams.advisories])
    expect(Streams.topology.streams.map((stream) => [stream.name, stream.subjects])).toStrictEqual([
      ["GLAM_EVENTS", ["evt.>", "cmd.>"]],
      ["GLAM_DLQ", ["dlq.>"]],
      ["GLAM_ADVISORIES", ["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"]]
    ])
    expect(Streams.topology.consumers).toStrictEqual([])
  })

  it.live(
    "a subscriber on ORDERS dead-letters into ORDERS_DLQ: a typed error, a body near 1 MiB in chunks, and a replay",
    () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const publisher = yield* Publisher.Publisher
        const report = yield* Topology.provision(Topology.make({ streams: Topology.withDeadLetters(orders) }))
        expect(report.streams.map((outcome) => [outcome.stream, outcome.action])).toStrictEqual([
          ["ORDERS", "created"],
          ["ORDERS_DLQ", "created"],
          ["ORDERS_ADVISORIES", "created"]
        ])
        yield* run(
          Subscriber.make(OrderPlaced, {
            stream: "ORDERS",
            durable: "orders-worker",
            waitForStreams: "2 seconds",
            policy: Policy.make<Declined>({ rules: { Declined: Policy.deadLetter } }),
            handler: (envelope) => Effect.fail(new Declined({ n: envelope.data.n }))
          })
        )
        const declined = yield* publisher.publish(OrderPlaced, { n: 1 })
        const big = Buffer.alloc(1_000_000, 0xfe)
        const bigAck = yield* broker.publish({
          subject: OrderPlaced.subject,
          payload: big,
          headers: [],
          messageId: crypto.randomUUID(),
          timeout: Duration.seconds(5)
        })
        const entries = yield* deadLetters("ORDERS_DLQ", 2)
        const typed = entries.find((entry) => entry.record.streamSeq === declined.seq)
        assert(typed !== undefined)
        expect(typed.subject).toBe("dlq.orders.placed.v1")
        expect(typed.record).toMatchObject({ errorCode: "Declined", stream: "ORDERS", consumer: "orders-worker" })
        const chunked = entries.find((entry) => entry.record.streamSeq === bigAck.seq)
        assert(chunked !== undefined)
        expect(chunked.record.originalPayloadChunks.length).toBeGreaterThan(1)
        const bytes = yield* DeadLetter.originalBytes(chunked)
        assert(Option.isSome(bytes))
        expect(Buffer.from(bytes.value).equals(big)).toBe(true)
        // Nothing went anywhere else; the chunks are in ORDERS_DLQ under the stream's reserved subject.
        const stored = yield* storedMessages("ORDERS_DLQ")
        expect(stored.filter((m) => m.subject === "dlq._chunk.ORDERS").length).toBe(
          chunked.record.originalPayloadChunks.length
        )

        const [outcome] = yield* DeadLetter.replay({ stream: "ORDERS_DLQ", seqs: [typed.seq] })
        assert(outcome?._tag === "Replayed")
        expect(outcome.stream).toBe("ORDERS")
        const [again] = yield* DeadLetter.list({ stream: "ORDERS_DLQ", seqs: [typed.seq] })
        expect(again?.replays.map((replay) => replay.streamSeq)).toStrictEqual([outcome.streamSeq])
      }).pipe(Effect.provide(messaging({ topology: Topology.make({}) }))),
    30_000
  )

  it.live("any stream covering the advisories will do; one capturing them all leaves no room for another", () =>
    Effect.gen(function* () {
      yield* Topology.provision(
        Topology.make({
          streams: Topology.withDeadLetters(orders, {
            advisories: { name: "ALL_ADVISORIES", subjects: ["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"] }
          })
        })
      )
      const scope = yield* run(
        Subscriber.make(OrderPlaced, {
          stream: "ORDERS",
          durable: "covered",
          waitForStreams: "2 seconds",
          handler: () => Effect.void
        })
      )
      yield* Scope.close(scope, Exit.void)
      // ALL_ADVISORIES, like GLAM_ADVISORIES, takes every consumer's advisories: a per-stream one overlaps it.
      const [, , paymentsAdvisories] = Topology.withDeadLetters({ name: "PAYMENTS", subjects: ["payments.>"] })
      const refused = yield* Topology.provision(Topology.make({ streams: [paymentsAdvisories] })).pipe(Effect.flip)
      expect(refused.message).toContain("overlap")
    }).pipe(Effect.provide(messaging({ topology: Topology.make({}) })))
  )
})

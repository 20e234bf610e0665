import { assert, describe, expect, it, layer } from "@effect/vitest"
import { nanos } from "@nats-io/transport-node"
import { Duration, Effect, Exit, Layer, Option } from "effect"
import * as Streams from "../src/glam/Streams.js"
import * as NatsClient from "../src/NatsClient.js"
import * as Topology from "../src/Topology.js"
import {
  bytes,
  consumerConfigOf,
  Env,
  publish,
  streamConfigOf,
  topologyLines,
  withLogs
} from "./support/TopologyFixtures.js"

describe("Topology specs", () => {
  it.effect("fills in the documented defaults", () =>
    Effect.gen(function* () {
      const stream = yield* Topology.resolveStream({ name: "S", subjects: ["s.>"] })
      expect(stream).toStrictEqual({
        name: "S",
        subjects: ["s.>"],
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
      const short = yield* Topology.resolveStream({ name: "S", subjects: ["s.>"], maxAge: "30 seconds" })
      expect(short.duplicateWindow).toStrictEqual(Duration.seconds(30))
      const consumer = yield* Topology.resolveConsumer({ stream: "S", name: "c" })
      expect(consumer).toStrictEqual({
        stream: "S",
        name: "c",
        description: undefined,
        filterSubject: undefined,
        deliverPolicy: "all",
        ackWait: Duration.seconds(30),
        maxDeliver: undefined,
        maxAckPending: 1000
      })
    })
  )

  it.effect("refuses invalid specs with a TopologyError naming the field", () =>
    Effect.gen(function* () {
      const streams: ReadonlyArray<[Topology.StreamSpec, string]> = [
        [{ name: "A.B", subjects: ["a"] }, "name"],
        [{ name: "A*", subjects: ["a"] }, "name"],
        [{ name: "A>", subjects: ["a"] }, "name"],
        [{ name: "A B", subjects: ["a"] }, "name"],
        [{ name: "", subjects: ["a"] }, "name"],
        [{ name: "A", subjects: [] }, "subjects"],
        [{ name: "A", subjects: [""] }, "subjects"],
        [{ name: "A", subjects: ["a..b"] }, "subjects"],
        [{ name: "A", subjects: ["a.>.b"] }, "subjects"],
        [{ name: "A", subjects: ["a.b*"] }, "subjects"],
        [{ name: "A", subjects: ["a b"] }, "subjects"],
        [{ name: "A", subjects: ["a."] }, "subjects"],
        [{ name: "A", subjects: ["a"], maxMessages: 0 }, "maxMessages"],
        [{ name: "A", subjects: ["a"], maxBytes: -1 }, "maxBytes"],
        [{ name: "A", subjects: ["a"], maxMessageSize: 1.5 }, "maxMessageSize"],
        [{ name: "A", subjects: ["a"], maxMessagesPerSubject: 0 }, "maxMessagesPerSubject"],
        [{ name: "A", subjects: ["a"], replicas: 0 }, "replicas"],
        [{ name: "A", subjects: ["a"], replicas: 7 }, "replicas"],
        [{ name: "A", subjects: ["a"], maxAge: 0 }, "maxAge"],
        [{ name: "A", subjects: ["a"], maxAge: "Infinity" }, "maxAge"],
        [{ name: "A", subjects: ["a"], duplicateWindow: -5 }, "duplicateWindow"],
        [{ name: "A", subjects: ["a"], maxAge: "1 minute", duplicateWindow: "2 minutes" }, "duplicateWindow"]
      ]
      for (const [spec, field] of streams) {
        const error = yield* Topology.resolveStream(spec).pipe(Effect.flip)
        expect(error._tag).toBe("TopologyError")
        expect({ spec, field: error.field }).toStrictEqual({ spec, field })
        expect(error.message).toContain(field)
      }
      const consumers: ReadonlyArray<[Topology.ConsumerSpec, string]> = [
        [{ stream: "S", name: "a.b" }, "name"],
        [{ stream: "S", name: "a b" }, "name"],
        [{ stream: "S.X", name: "c" }, "stream"],
        [{ stream: "S", name: "c", filterSubject: "x..y" }, "filterSubject"],
        [{ stream: "S", name: "c", ackWait: 0 }, "ackWait"],
        [{ stream: "S", name: "c", maxAckPending: 0 }, "maxAckPending"],
        [{ stream: "S", name: "c", maxDeliver: -1 }, "maxDeliver"]
      ]
      for (const [spec, field] of consumers) {
        const error = yield* Topology.resolveConsumer(spec).pipe(Effect.flip)
        expect({ spec, field: error.field, consumer: error.consumer }).toStrictEqual({
          spec,
          field,
          consumer: spec.name
        })
      }
    })
  )
})

describe("Topology", () => {
  layer(Env)("over a real nats-server", (it) => {
    it.effect("provision creates streams and consumers, and a second run changes nothing", () =>
      Effect.gen(function* () {
        const orders: Topology.StreamSpec = {
          name: "ORDERS",
          subjects: ["orders.>"],
          maxAge: "1 hour",
          maxMessages: 500
        }
        const topology = Topology.make({
          streams: [orders],
          consumers: [{ stream: "ORDERS", name: "billing", filterSubject: "orders.paid", maxDeliver: 5 }]
        })
        const first = yield* Topology.provision(topology)
        expect(first).toStrictEqual({
          streams: [{ stream: "ORDERS", action: "created", changes: [] }],
          consumers: [{ stream: "ORDERS", consumer: "billing", action: "created", changes: [] }]
        })
        const stream = yield* streamConfigOf("ORDERS")
        expect(stream).toStrictEqual(yield* Topology.resolveStream(orders))
        expect(stream.maxAge).toStrictEqual(Duration.hours(1))
        expect(stream.duplicateWindow).toStrictEqual(Duration.minutes(2))
        const consumer = yield* consumerConfigOf("ORDERS", "billing")
        expect(consumer.filterSubject).toBe("orders.paid")
        expect(consumer.maxDeliver).toBe(5)
        expect(consumer.ackWait).toStrictEqual(Duration.seconds(30))

        const second = yield* Topology.provision(topology)
        expect(second).toStrictEqual({
          streams: [{ stream: "ORDERS", action: "unchanged", changes: [] }],
          consumers: [{ stream: "ORDERS", consumer: "billing", action: "unchanged", changes: [] }]
        })
        expect(yield* streamConfigOf("ORDERS")).toStrictEqual(stream)
        expect(yield* consumerConfigOf("ORDERS", "billing")).toStrictEqual(consumer)
      })
    )

    it.effect("drift in updatable fields is updated, reported field by field, and logged", () =>
      Effect.gen(function* () {
        const before = Topology.make({
          streams: [{ name: "DRIFT", subjects: ["drift.a"], maxAge: "1 hour", maxMessages: 100 }],
          consumers: [{ stream: "DRIFT", name: "worker", filterSubject: "drift.a" }]
        })
        yield* Topology.provision(before)
        const after = Topology.make({
          streams: [
            {
              name: "DRIFT",
              subjects: ["drift.a", "drift.b"],
              maxAge: "2 hours",
              maxMessages: 200,
              duplicateWindow: "1 minute"
            }
          ],
          consumers: [{ stream: "DRIFT", name: "worker", ackWait: "10 seconds", maxAckPending: 20, maxDeliver: 4 }]
        })
        const { exit, lines } = yield* withLogs(Topology.provision(after))
        assert(Exit.isSuccess(exit))
        const report = exit.value
        expect(report.streams).toStrictEqual([
          {
            stream: "DRIFT",
            action: "updated",
            changes: [
              { field: "subjects", current: "drift.a", desired: "drift.a, drift.b" },
              { field: "maxAge", current: "1h", desired: "2h" },
              { field: "maxMessages", current: "100", desired: "200" },
              { field: "duplicateWindow", current: "2m", desired: "1m" }
            ]
          }
        ])
        expect(report.consumers).toStrictEqual([
          {
            stream: "DRIFT",
            consumer: "worker",
            action: "updated",
            changes: [
              { field: "filterSubject", current: "drift.a", desired: ">" },
              { field: "ackWait", current: "30s", desired: "10s" },
              { field: "maxDeliver", current: "unlimited", desired: "4" },
              { field: "maxAckPending", current: "1000", desired: "20" }
            ]
          }
        ])
        const stream = yield* streamConfigOf("DRIFT")
        expect(stream.subjects).toStrictEqual(["drift.a", "drift.b"])
        expect(stream.maxAge).toStrictEqual(Duration.hours(2))
        expect(stream.maxMessages).toBe(200)
        expect(stream.duplicateWindow).toStrictEqual(Duration.minutes(1))
        const consumer = yield* consumerConfigOf("DRIFT", "worker")
        expect(consumer.filterSubject).toBeUndefined()
        expect(consumer.ackWait).toStrictEqual(Duration.seconds(10))
        expect(consumer.maxAckPending).toBe(20)
        expect(consumer.maxDeliver).toBe(4)
        expect(topologyLines(lines)).toStrictEqual([
          {
            level: "Warn",
            message:
              "Topology: updated stream DRIFT; subjects: drift.a -> drift.a, drift.b; maxAge: 1h -> 2h; maxMessages: 100 -> 200; duplicateWindow: 2m -> 1m"
          },
          {
            level: "Warn",
            message:
              "Topology: updated consumer DRIFT/worker; filterSubject: drift.a -> >; ackWait: 30s -> 10s; maxDeliver: unlimited -> 4; maxAckPending: 1000 -> 20"
          }
        ])
        expect((yield* Topology.provision(after)).streams[0]?.action).toBe("unchanged")
      })
    )

    it.effect("drift the server cannot update fails with a TopologyError and changes nothing", () =>
      Effect.gen(function* () {
        const base: Topology.StreamSpec = { name: "FIXED", subjects: ["fixed.>"], maxAge: "1 hour" }
        const consumer: Topology.ConsumerSpec = { stream: "FIXED", name: "reader", ackWait: "30 seconds" }
        yield* Topology.provision(Topology.make({ streams: [base], consumers: [consumer] }))
        const streamBefore = yield* streamConfigOf("FIXED")
        const consumerBefore = yield* consumerConfigOf("FIXED", "reader")

        const cases: ReadonlyArray<[Topology.Topology, Partial<Topology.TopologyError>]> = [
          [
            Topology.make({ streams: [{ ...base, maxAge: "3 hours", storage: "memory" }], consumers: [consumer] }),
            { stream: "FIXED", consumer: undefined, field: "storage", current: "file", desired: "memory" }
          ],
          [
            Topology.make({ streams: [{ ...base, maxAge: "3 hours", retention: "workqueue" }], consumers: [consumer] }),
            { stream: "FIXED", consumer: undefined, field: "retention", current: "limits", desired: "workqueue" }
          ],
          [
            Topology.make({
              streams: [{ ...base, maxAge: "3 hours" }],
              consumers: [{ ...consumer, ackWait: "5 seconds", deliverPolicy: "new" }]
            }),
            { stream: "FIXED", consumer: "reader", field: "deliverPolicy", current: "all", desired: "new" }
          ]
        ]
        for (const [topology, expected] of cases) {
          const error = yield* Topology.provision(topology).pipe(Effect.flip)
          assert(error._tag === "TopologyError")
          expect({
            stream: error.stream,
            consumer: error.consumer,
            field: error.field,
            current: error.current,
            desired: error.desired
          }).toStrictEqual(expected)
          expect(error.message).toContain(expected.field)
          expect(yield* streamConfigOf("FIXED")).toStrictEqual(streamBefore)
          expect(yield* consumerConfigOf("FIXED", "reader")).toStrictEqual(consumerBefore)
        }
      })
    )

    it.effect("provision refuses invalid specs and duplicate names before touching the server", () =>
      Effect.gen(function* () {
        const bad = yield* Topology.provision(
          Topology.make({
            streams: [
              { name: "GOOD", subjects: ["good.>"] },
              { name: "BAD.NAME", subjects: ["x"] }
            ]
          })
        ).pipe(Effect.flip)
        expect(bad._tag === "TopologyError" && bad.field).toBe("name")
        const twice = yield* Topology.provision(
          Topology.make({
            streams: [
              { name: "TWICE", subjects: ["t.a"] },
              { name: "TWICE", subjects: ["t.b"] }
            ]
          })
        ).pipe(Effect.flip)
        expect(twice._tag === "TopologyError" && twice.message).toContain("declared twice")
        expect(yield* Topology.streamInfo("GOOD")).toStrictEqual(Option.none())
        expect(yield* Topology.streamInfo("TWICE")).toStrictEqual(Option.none())
      })
    )

    it.effect("migrates the Python package's GLAM_EVENTS: dlq.> moves to a new GLAM_DLQ, old messages stay", () =>
      Effect.gen(function* () {
        const { manager, jetstream } = yield* NatsClient.NatsClient
        // What the seed's ensure_stream("GLAM_EVENTS", ["evt.>", "cmd.>", "dlq.>"]) creates.
        yield* Effect.promise(() =>
          manager.streams.add({
            name: "GLAM_EVENTS",
            subjects: ["evt.>", "cmd.>", "dlq.>"],
            retention: "limits",
            max_age: nanos(24 * 60 * 60 * 1000),
            max_msgs: 1_000_000,
            storage: "file"
          })
        )
        yield* Effect.promise(() => jetstream.publish("dlq.x", bytes("old dead letter")))
        yield* Effect.promise(() => jetstream.publish("evt.x", bytes("old event")))

        const report = yield* Topology.provision(Streams.topology)
        expect(report.streams).toStrictEqual([
          {
            stream: Streams.eventsName,
            action: "updated",
            changes: [{ field: "subjects", current: "cmd.>, dlq.>, evt.>", desired: "cmd.>, evt.>" }]
          },
          { stream: Streams.deadLettersName, action: "created", changes: [] },
          { stream: Streams.advisoriesName, action: "created", changes: [] }
        ])

        const events = yield* streamConfigOf("GLAM_EVENTS")
        expect(events.subjects).toStrictEqual(["evt.>", "cmd.>"])
        expect(events.maxAge).toStrictEqual(Duration.hours(24))
        expect(events.maxMessages).toBe(1_000_000)
        const dlq = yield* streamConfigOf("GLAM_DLQ")
        expect(dlq.subjects).toStrictEqual(["dlq.>"])
        expect(dlq.storage).toBe("file")
        expect(dlq.maxAge).toStrictEqual(Duration.days(30))
        expect(dlq.duplicateWindow).toStrictEqual(Duration.hours(1))
        const advisories = yield* streamConfigOf("GLAM_ADVISORIES")
        expect(advisories.subjects).toStrictEqual(["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"])
        expect(advisories.storage).toBe("file")
        expect(advisories.maxAge).toStrictEqual(Duration.days(30))

        const summary = yield* Topology.streamInfo("GLAM_EVENTS").pipe(Effect.flatMap(Effect.fromOption))
        expect(summary.messages).toBe(2)
        const oldDeadLetter = yield* Effect.promise(() =>
          manager.streams.getMessage("GLAM_EVENTS", { last_by_subj: "dlq.x" })
        )
        expect(new TextDecoder().decode(oldDeadLetter?.data)).toBe("old dead letter")

        const ack = yield* publish("dlq.y", "new dead letter")
        expect(ack.stream).toBe("GLAM_DLQ")
        expect((yield* publish("evt.y", "new event")).stream).toBe("GLAM_EVENTS")

        const again = yield* Topology.provision(Streams.topology)
        expect(again.streams.map((o) => o.action)).toStrictEqual(["unchanged", "unchanged", "unchanged"])
      })
    )

    it.effect("creations are logged at INFO; a spec without replicas keeps the stream's, and logs nothing", () =>
      Effect.gen(function* () {
        const spec: Topology.StreamSpec = { name: "KEPT", subjects: ["kept.>"], replicas: 1 }
        const created = yield* withLogs(Topology.provision(Topology.make({ streams: [spec] })))
        expect(topologyLines(created.lines)).toStrictEqual([
          { level: "Info", message: "Topology: created stream KEPT" }
        ])
        const { replicas: _, ...unnamed } = spec
        const again = yield* withLogs(Topology.provision(Topology.make({ streams: [unnamed] })))
        assert(Exit.isSuccess(again.exit))
        expect(again.exit.value.streams).toStrictEqual([{ stream: "KEPT", action: "unchanged", changes: [] }])
        expect(topologyLines(again.lines)).toStrictEqual([])
        expect((yield* streamConfigOf("KEPT")).replicas).toBe(1)
      })
    )

    it.effect("a failure that is not retryable is not waited for", () =>
      Effect.gen(function* () {
        // A single server refuses replicas > 1: the refusal is final.
        const { exit, lines } = yield* withLogs(
          Topology.provision(Topology.make({ streams: [{ name: "R3", subjects: ["r3.>"], replicas: 3 }] }))
        )
        assert(Exit.isFailure(exit))
        const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
        assert(error?._tag === "Fail" && error.error._tag === "NatsError")
        expect(error.error.reason._tag).toBe("Rejected")
        expect(error.error.message).toContain("replicas > 1 not supported")
        expect(topologyLines(lines)).toStrictEqual([])
        expect(yield* Topology.streamInfo("R3")).toStrictEqual(Option.none())
      })
    )

    it.effect("Topology.layer provisions when it is built", () =>
      Effect.gen(function* () {
        const topology = Topology.make({ streams: [{ name: "AT_START", subjects: ["start.>"] }] })
        yield* Layer.build(Topology.layer(topology))
        const summary = yield* Topology.streamInfo("AT_START")
        expect(summary).toStrictEqual(Option.some({ name: "AT_START", subjects: ["start.>"], messages: 0, bytes: 0 }))
      })
    )

    it.effect("ensureStream creates a missing stream and leaves an existing one as it is", () =>
      Effect.gen(function* () {
        const created = yield* Topology.ensureStream({ name: "ENSURED", subjects: ["ensured.a"] })
        expect(created.config.subjects).toStrictEqual(["ensured.a"])
        const existing = yield* Topology.ensureStream({ name: "ENSURED", subjects: ["ensured.b"], maxMessages: 3 })
        expect(existing.config.subjects).toStrictEqual(["ensured.a"])
        expect(existing.config.maxMessages).toBeUndefined()
        const invalid = yield* Topology.ensureStream({ name: "EN SURED", subjects: ["x"] }).pipe(Effect.flip)
        expect(invalid._tag === "TopologyError" && invalid.field).toBe("name")
      })
    )

    it.effect("streamInfo reports name, subjects, messages and bytes; deleteStream removes the stream", () =>
      Effect.gen(function* () {
        yield* Topology.ensureStream({ name: "SUMMARY", subjects: ["summary.>"] })
        yield* publish("summary.a", "hello")
        yield* publish("summary.b", "world")
        const summary = yield* Topology.streamInfo("SUMMARY").pipe(Effect.flatMap(Effect.fromOption))
        expect(summary.name).toBe("SUMMARY")
        expect(summary.subjects).toStrictEqual(["summary.>"])
        expect(summary.messages).toBe(2)
        expect(summary.bytes).toBeGreaterThan(10)
        expect(yield* Topology.deleteStream("SUMMARY")).toBe(true)
        expect(yield* Topology.deleteStream("SUMMARY")).toBe(false)
        expect(yield* Topology.streamInfo("SUMMARY")).toStrictEqual(Option.none())
      })
    )
  })
})

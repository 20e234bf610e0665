import { assert, describe, expect, it, layer } from "@effect/vitest"
import { nanos } from "@nats-io/transport-node"
import {
  Clock,
  ConfigProvider,
  Context,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Logger,
  Option,
  References,
  Schedule
} from "effect"
import { TestClock } from "effect/testing"
import { Broker, type StreamConfig, type StreamInfo } from "../src/Broker.js"
import * as MemoryBroker from "../src/MemoryBroker.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as NatsClient from "../src/NatsClient.js"
import * as NatsError from "../src/NatsError.js"
import * as Topology from "../src/Topology.js"
import * as NatsCluster from "./support/NatsCluster.js"
import * as NatsServer from "./support/NatsServer.js"

const Env = NatsBroker.layer.pipe(
  Layer.provideMerge(
    Layer.unwrap(Effect.map(NatsServer.NatsServerService, (server) => NatsClient.layer({ servers: server.url })))
  ),
  Layer.provideMerge(NatsServer.layer())
)

const bytes = (text: string) => new TextEncoder().encode(text)

const streamConfigOf = (name: string) =>
  Broker.use((broker) => broker.streamInfo(name)).pipe(
    Effect.flatMap(Effect.fromOption),
    Effect.map((info) => info.config)
  )

const consumerConfigOf = (stream: string, name: string) =>
  Broker.use((broker) => broker.consumerInfo(stream, name)).pipe(
    Effect.flatMap(Effect.fromOption),
    Effect.map((info) => info.config)
  )

const publish = (subject: string, text: string) =>
  Broker.use((broker) => broker.publish({ subject, payload: bytes(text), headers: [], timeout: Duration.seconds(5) }))

interface LogLine {
  readonly level: string
  readonly message: string
}

/** Runs `effect` with every log line (any level) kept; the lines are read after it ends. */
const withLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const lines: Array<LogLine> = []
    const capture = Logger.make((options) => {
      lines.push({ level: options.logLevel, message: String(options.message) })
    })
    const exit = yield* effect.pipe(
      Effect.provide(Logger.layer([capture])),
      Effect.provideService(References.MinimumLogLevel, "All"),
      Effect.exit
    )
    return { exit, lines }
  })

const topologyLines = (lines: ReadonlyArray<LogLine>) => lines.filter((line) => line.message.startsWith("Topology:"))

/**
 * The in-memory broker with replicas kept as a cluster keeps them: a single server (and so the memory
 * broker) refuses more than one, so the stream is stored with one and the replicas asked for are
 * remembered and reported back. `updates` lists every stream update that reached it.
 */
const clusterLike = Effect.gen(function* () {
  const memory = yield* MemoryBroker.make
  const replicas = new Map<string, number>()
  const updates: Array<StreamConfig> = []
  const reported = (info: StreamInfo): StreamInfo => ({
    ...info,
    config: { ...info.config, replicas: replicas.get(info.config.name) ?? 1 }
  })
  const stored =
    (operation: (config: StreamConfig) => Effect.Effect<StreamInfo, NatsError.NatsError>) => (config: StreamConfig) =>
      operation({ ...config, replicas: 1 }).pipe(
        Effect.tap(() => Effect.sync(() => replicas.set(config.name, config.replicas))),
        Effect.map(reported)
      )
  const broker = Broker.of({
    ...memory,
    streamInfo: (name) => Effect.map(memory.streamInfo(name), Option.map(reported)),
    addStream: stored(memory.addStream),
    updateStream: (config) =>
      Effect.andThen(
        Effect.sync(() => updates.push(config)),
        stored(memory.updateStream)(config)
      )
  })
  return { broker, updates }
})

const unavailable = (operation: string) =>
  NatsError.make(
    operation,
    new NatsError.Unavailable({ message: "JetStream system temporarily unavailable", code: 10008 })
  )

/**
 * The in-memory broker whose `streamInfo` fails for each stream with what `failure` says (the stream's
 * attempt, counted from 1, and the clock), and counts the attempts.
 */
const flaky = (failure: (attempt: number, now: number) => NatsError.NatsError | undefined) =>
  Effect.gen(function* () {
    const memory = yield* MemoryBroker.make
    const attempts = new Map<string, number>()
    const broker = Broker.of({
      ...memory,
      streamInfo: (name) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const attempt = (attempts.get(name) ?? 0) + 1
          attempts.set(name, attempt)
          const error = failure(attempt, now)
          return error === undefined ? memory.streamInfo(name) : Effect.fail(error)
        })
    })
    return { broker, attempts }
  })

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

        const report = yield* Topology.provision(Topology.glam)
        expect(report.streams).toStrictEqual([
          {
            stream: Topology.glamEventsStreamName,
            action: "updated",
            changes: [{ field: "subjects", current: "cmd.>, dlq.>, evt.>", desired: "cmd.>, evt.>" }]
          },
          { stream: Topology.glamDeadLetterStreamName, action: "created", changes: [] },
          { stream: Topology.glamAdvisoriesStreamName, action: "created", changes: [] }
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

        const again = yield* Topology.provision(Topology.glam)
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

describe("Topology.glamConfig", () => {
  const parse = (env: Record<string, string>) => Topology.glamConfig.parse(ConfigProvider.fromEnv({ env }))

  it.effect("GLAM_STREAM_REPLICAS gives the three GLAM streams that many replicas; unset names none", () =>
    Effect.gen(function* () {
      const three = yield* parse({ GLAM_STREAM_REPLICAS: "3" })
      expect(three.streams.map((stream) => [stream.name, stream.replicas])).toStrictEqual([
        ["GLAM_EVENTS", 3],
        ["GLAM_DLQ", 3],
        ["GLAM_ADVISORIES", 3]
      ])
      expect(three.streams.map(({ replicas: _, ...rest }) => rest)).toStrictEqual(Topology.glam.streams)
      expect((yield* parse({ GLAM_STREAM_REPLICAS: "1" })).streams.map((stream) => stream.replicas)).toStrictEqual([
        1, 1, 1
      ])
      const unset = yield* parse({})
      expect(unset).toStrictEqual(Topology.glam)
      expect(unset.streams.every((stream) => stream.replicas === undefined)).toBe(true)
    })
  )

  it.effect("a value that is not an integer from 1 to 5 is a ConfigError naming the variable", () =>
    Effect.gen(function* () {
      for (const value of ["0", "6", "7", "-1", "2.5", "three"]) {
        const error = yield* parse({ GLAM_STREAM_REPLICAS: value }).pipe(Effect.flip)
        expect({ value, tag: error._tag }).toStrictEqual({ value, tag: "ConfigError" })
        expect(error.message).toContain("GLAM_STREAM_REPLICAS")
      }
    })
  )
})

describe("Topology replicas", () => {
  const events: Topology.StreamSpec = { name: "EVENTS", subjects: ["events.>"], maxAge: "1 hour" }

  it.effect("are the server's when a spec leaves them out, refused when fewer, raised when more", () =>
    Effect.gen(function* () {
      const { broker, updates } = yield* clusterLike
      const provision = (spec: Topology.StreamSpec) =>
        withLogs(Topology.provision(Topology.make({ streams: [spec] }))).pipe(Effect.provideService(Broker, broker))
      const replicasNow = Effect.map(
        broker.streamInfo("EVENTS"),
        Option.map((info) => info.config.replicas)
      )
      yield* provision({ ...events, replicas: 3 })
      expect(yield* replicasNow).toStrictEqual(Option.some(3))

      const kept = yield* provision(events)
      assert(Exit.isSuccess(kept.exit))
      expect(kept.exit.value.streams).toStrictEqual([{ stream: "EVENTS", action: "unchanged", changes: [] }])
      expect(topologyLines(kept.lines)).toStrictEqual([])

      // Refused before anything changes, also the maxAge that could have been updated.
      const fewer = yield* provision({ ...events, maxAge: "2 hours", replicas: 1 })
      assert(Exit.isFailure(fewer.exit))
      const refusal = fewer.exit.cause.reasons.find((reason) => reason._tag === "Fail")
      assert(refusal?._tag === "Fail" && refusal.error._tag === "TopologyError")
      expect({
        stream: refusal.error.stream,
        field: refusal.error.field,
        current: refusal.error.current,
        desired: refusal.error.desired
      }).toStrictEqual({ stream: "EVENTS", field: "replicas", current: "3", desired: "1" })
      expect(refusal.error.message).toBe(
        "stream EVENTS: replicas would go down from 3 to 1; set allowFewerReplicas to lower them, or leave replicas out to keep 3"
      )
      expect(updates).toStrictEqual([])
      expect(yield* replicasNow).toStrictEqual(Option.some(3))

      const more = yield* provision({ ...events, replicas: 5 })
      assert(Exit.isSuccess(more.exit))
      expect(more.exit.value.streams).toStrictEqual([
        { stream: "EVENTS", action: "updated", changes: [{ field: "replicas", current: "3", desired: "5" }] }
      ])
      expect(topologyLines(more.lines)).toStrictEqual([
        { level: "Warn", message: "Topology: updated stream EVENTS; replicas: 3 -> 5" }
      ])

      const lowered = yield* provision({ ...events, replicas: 2, allowFewerReplicas: true })
      assert(Exit.isSuccess(lowered.exit))
      expect(lowered.exit.value.streams[0]?.changes).toStrictEqual([{ field: "replicas", current: "5", desired: "2" }])
      expect(yield* replicasNow).toStrictEqual(Option.some(2))
      expect(updates.map((update) => update.replicas)).toStrictEqual([5, 2])

      // A stream that does not exist yet gets 1 when the spec names none.
      yield* provision({ name: "FRESH", subjects: ["fresh.>"] })
      expect(Option.map(yield* broker.streamInfo("FRESH"), (info) => info.config.replicas)).toStrictEqual(
        Option.some(1)
      )
    })
  )

  it.effect("Topology.layerGlam takes them from GLAM_STREAM_REPLICAS and refuses fewer than the streams have", () =>
    Effect.gen(function* () {
      const { broker } = yield* clusterLike
      const build = (env: Record<string, string>) =>
        Layer.build(Topology.layerGlam()).pipe(
          Effect.provideService(Broker, broker),
          Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })),
          Effect.exit
        )
      const replicas = Effect.forEach(Topology.glam.streams, (stream) =>
        Effect.map(
          broker.streamInfo(stream.name),
          Option.map((info) => info.config.replicas)
        )
      )
      expect(Exit.isSuccess(yield* build({ GLAM_STREAM_REPLICAS: "3" }))).toBe(true)
      expect(yield* replicas).toStrictEqual([Option.some(3), Option.some(3), Option.some(3)])
      expect(Exit.isSuccess(yield* build({}))).toBe(true)
      expect(yield* replicas).toStrictEqual([Option.some(3), Option.some(3), Option.some(3)])

      const fewer = yield* build({ GLAM_STREAM_REPLICAS: "1" })
      assert(Exit.isFailure(fewer))
      const refusal = fewer.cause.reasons.find((reason) => reason._tag === "Fail")
      assert(refusal?._tag === "Fail" && refusal.error._tag === "TopologyError")
      expect([refusal.error.stream, refusal.error.current, refusal.error.desired]).toStrictEqual([
        "GLAM_EVENTS",
        "3",
        "1"
      ])
      expect(yield* replicas).toStrictEqual([Option.some(3), Option.some(3), Option.some(3)])

      const invalid = yield* build({ GLAM_STREAM_REPLICAS: "three" })
      assert(Exit.isFailure(invalid))
      expect(String(invalid.cause)).toContain("GLAM_STREAM_REPLICAS")
    })
  )
})

describe("Topology waiting for JetStream", () => {
  const two = Topology.make({
    streams: [
      { name: "FIRST", subjects: ["first.>"] },
      { name: "SECOND", subjects: ["second.>"] }
    ]
  })

  it.effect("waits while JetStream is unavailable: one warning, a summary every 10 s, a line when it answers", () =>
    Effect.gen(function* () {
      const { broker } = yield* flaky((_, now) => (now < 25_000 ? unavailable("streamInfo") : undefined))
      const fiber = yield* withLogs(Topology.provision(two)).pipe(
        Effect.provideService(Broker, broker),
        Effect.forkChild
      )
      yield* TestClock.adjust("30 seconds")
      const { exit, lines } = yield* Fiber.join(fiber)
      assert(Exit.isSuccess(exit))
      expect(exit.value.streams.map((outcome) => outcome.action)).toStrictEqual(["created", "created"])
      const logged = topologyLines(lines)
      expect(logged.map((line) => line.level)).toStrictEqual(["Warn", "Warn", "Warn", "Info", "Info", "Info"])
      expect(logged[0]?.message).toBe(
        "Topology: waiting for JetStream, which does not answer: streamInfo: JetStream system temporarily unavailable (Unavailable)"
      )
      expect(logged[1]?.message).toMatch(
        /^Topology: still waiting for JetStream after 1\ds .*failed attempts\): streamInfo/
      )
      expect(logged[2]?.message).toMatch(/^Topology: still waiting for JetStream after 2\ds /)
      expect(logged[3]?.message).toMatch(
        /^Topology: JetStream answers again, after waiting 2[5-7]s( \d+ms)? \(\d+ failed attempts\)$/
      )
      expect(logged.slice(4).map((line) => line.message)).toStrictEqual([
        "Topology: created stream FIRST",
        "Topology: created stream SECOND"
      ])
    })
  )

  it.effect("gives up after 60 s in all by default, with a last warning", () =>
    Effect.gen(function* () {
      const { broker } = yield* flaky(() => unavailable("streamInfo"))
      const fiber = yield* withLogs(Topology.provision(two)).pipe(
        Effect.provideService(Broker, broker),
        Effect.forkChild
      )
      yield* TestClock.adjust("59 seconds")
      expect(fiber.pollUnsafe()).toBeUndefined()
      yield* TestClock.adjust("5 seconds")
      const { exit, lines } = yield* Fiber.join(fiber)
      assert(Exit.isFailure(exit))
      const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
      assert(error?._tag === "Fail" && error.error._tag === "NatsError")
      expect(error.error.reason._tag).toBe("Unavailable")
      expect(topologyLines(lines).at(-1)?.message).toMatch(
        /^Topology: gave up waiting for JetStream after 1m( \d+s)?( \d+ms)? \(\d+ failed attempts\)$/
      )
    })
  )

  it.effect("the retry option's budget holds for the whole run, not for each call", () =>
    Effect.gen(function* () {
      // Each stream's lookup fails twice: 4 retries in all, one more than the schedule allows.
      const { broker, attempts } = yield* flaky((attempt) => (attempt <= 2 ? unavailable("streamInfo") : undefined))
      const retry = Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 3 }))
      const fiber = yield* Topology.provision(two, { retry }).pipe(
        Effect.provideService(Broker, broker),
        Effect.exit,
        Effect.forkChild
      )
      yield* TestClock.adjust("10 seconds")
      const exit = yield* Fiber.join(fiber)
      assert(Exit.isFailure(exit))
      expect([...attempts]).toStrictEqual([
        ["FIRST", 3],
        ["SECOND", 2]
      ])
      expect(yield* broker.streamInfo("FIRST")).toStrictEqual(Option.none())
    })
  )

  it.effect("a failure that is not retryable fails the run at once", () =>
    Effect.gen(function* () {
      const rejected = NatsError.make("streamInfo", new NatsError.Rejected({ message: "permissions", code: 10001 }))
      const { broker, attempts } = yield* flaky(() => rejected)
      const { exit, lines } = yield* withLogs(Topology.provision(two)).pipe(Effect.provideService(Broker, broker))
      assert(Exit.isFailure(exit))
      expect(exit.cause.reasons.find((reason) => reason._tag === "Fail")).toMatchObject({ error: rejected })
      expect([...attempts]).toStrictEqual([["FIRST", 1]])
      expect(topologyLines(lines)).toStrictEqual([])
    })
  )

  it.effect("a call whose answer is lost is tried again, not the plan: the update is reported as made", () =>
    Effect.gen(function* () {
      const memory = yield* MemoryBroker.make
      let lost = 1
      // The update is applied, then its answer does not arrive, as when a leader steps down.
      const broker = Broker.of({
        ...memory,
        updateStream: (config) =>
          Effect.flatMap(memory.updateStream(config), (info) =>
            lost-- > 0 ? Effect.fail(unavailable("updateStream")) : Effect.succeed(info)
          )
      })
      const spec: Topology.StreamSpec = { name: "LOST", subjects: ["lost.>"], maxAge: "1 hour" }
      const provision = (input: Topology.StreamSpec) =>
        Topology.provision(Topology.make({ streams: [input] })).pipe(Effect.provideService(Broker, broker))
      yield* provision(spec)
      const fiber = yield* Effect.forkChild(provision({ ...spec, maxAge: "2 hours" }))
      yield* TestClock.adjust("1 second")
      const report = yield* Fiber.join(fiber)
      expect(report.streams).toStrictEqual([
        { stream: "LOST", action: "updated", changes: [{ field: "maxAge", current: "1h", desired: "2h" }] }
      ])
    })
  )
})

describe("Topology over a server that goes away", () => {
  it.live("provisioning waits for a stopped server to come back, then goes on", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.make()
      const broker = yield* Layer.build(
        NatsBroker.layer.pipe(Layer.provide(NatsClient.layer({ servers: server.url, reconnectWait: "100 millis" })))
      ).pipe(Effect.map(Context.get(Broker)))
      yield* server.stop
      const started = yield* Clock.currentTimeMillis
      const fiber = yield* withLogs(
        Topology.provision(
          Topology.make({
            streams: [{ name: "LATE", subjects: ["late.>"] }],
            consumers: [{ stream: "LATE", name: "reader" }]
          })
        )
      ).pipe(Effect.provideService(Broker, broker), Effect.forkChild)
      yield* Effect.sleep("1500 millis")
      yield* server.start
      const { exit, lines } = yield* Fiber.join(fiber)
      assert(Exit.isSuccess(exit))
      expect(exit.value.streams).toStrictEqual([{ stream: "LATE", action: "created", changes: [] }])
      expect(exit.value.consumers).toStrictEqual([
        { stream: "LATE", consumer: "reader", action: "created", changes: [] }
      ])
      expect((yield* Clock.currentTimeMillis) - started).toBeGreaterThanOrEqual(1500)
      const logged = topologyLines(lines)
      expect(logged.filter((line) => line.message.startsWith("Topology: waiting for JetStream"))).toHaveLength(1)
      const answered = logged.filter((line) => line.message.startsWith("Topology: JetStream answers again"))
      expect(answered).toHaveLength(1)
      // Counted from the first attempt, which was under way while the server was down.
      const waited = answered[0]?.message.match(/after waiting (\d+)s/)?.[1]
      expect(Number(waited)).toBeGreaterThanOrEqual(1)
      expect(logged.at(-1)?.message).toBe("Topology: created consumer LATE/reader")
    })
  )
})

const ClusterEnv = NatsBroker.layer.pipe(
  Layer.provideMerge(
    Layer.unwrap(
      Effect.map(NatsCluster.NatsClusterService, (cluster) =>
        NatsClient.layer({ servers: cluster.urls, reconnectWait: "100 millis" })
      )
    )
  ),
  Layer.provideMerge(NatsCluster.layer())
)

describe("Topology on a three-node cluster", () => {
  layer(ClusterEnv, { excludeTestServices: true, timeout: 60_000 })("R3 streams (real clock)", (it) => {
    const replicasOf = (name: string) => Effect.map(streamConfigOf(name), (config) => config.replicas)

    it.effect("replicas are kept when left out, refused when fewer, lowered on purpose, raised in place", () =>
      Effect.gen(function* () {
        const orders: Topology.StreamSpec = { name: "ORDERS_R3", subjects: ["orders-r3.>"], maxAge: "1 hour" }
        const provision = (spec: Topology.StreamSpec) =>
          withLogs(Topology.provision(Topology.make({ streams: [spec] })))
        yield* provision({ ...orders, replicas: 3 })
        expect(yield* replicasOf("ORDERS_R3")).toBe(3)

        const kept = yield* provision({ ...orders, maxAge: "2 hours" })
        assert(Exit.isSuccess(kept.exit))
        expect(kept.exit.value.streams[0]?.changes).toStrictEqual([{ field: "maxAge", current: "1h", desired: "2h" }])
        expect(topologyLines(kept.lines)).toStrictEqual([
          { level: "Warn", message: "Topology: updated stream ORDERS_R3; maxAge: 1h -> 2h" }
        ])
        expect(yield* replicasOf("ORDERS_R3")).toBe(3)

        const fewer = yield* provision({ ...orders, maxAge: "3 hours", replicas: 1 })
        assert(Exit.isFailure(fewer.exit))
        const refusal = fewer.exit.cause.reasons.find((reason) => reason._tag === "Fail")
        assert(refusal?._tag === "Fail" && refusal.error._tag === "TopologyError")
        expect([refusal.error.stream, refusal.error.field, refusal.error.current, refusal.error.desired]).toStrictEqual(
          ["ORDERS_R3", "replicas", "3", "1"]
        )
        expect(yield* replicasOf("ORDERS_R3")).toBe(3)
        expect((yield* streamConfigOf("ORDERS_R3")).maxAge).toStrictEqual(Duration.hours(2))

        const lowered = yield* provision({ ...orders, maxAge: "2 hours", replicas: 1, allowFewerReplicas: true })
        assert(Exit.isSuccess(lowered.exit))
        expect(topologyLines(lowered.lines)).toStrictEqual([
          { level: "Warn", message: "Topology: updated stream ORDERS_R3; replicas: 3 -> 1" }
        ])
        expect(yield* replicasOf("ORDERS_R3")).toBe(1)

        yield* provision({ ...orders, maxAge: "2 hours", replicas: 3 })
        expect(yield* replicasOf("ORDERS_R3")).toBe(3)
      })
    )

    it.effect("layerGlam: GLAM_STREAM_REPLICAS=3 makes the GLAM streams R3, unset keeps them, 1 is refused", () =>
      Effect.gen(function* () {
        const build = (env: Record<string, string>) =>
          Layer.build(Topology.layerGlam()).pipe(
            Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })),
            Effect.exit
          )
        const replicas = Effect.forEach(Topology.glam.streams, (stream) => replicasOf(stream.name))
        expect(Exit.isSuccess(yield* build({ GLAM_STREAM_REPLICAS: "3" }))).toBe(true)
        expect(yield* replicas).toStrictEqual([3, 3, 3])
        expect(Exit.isSuccess(yield* build({}))).toBe(true)
        expect(yield* replicas).toStrictEqual([3, 3, 3])
        const fewer = yield* build({ GLAM_STREAM_REPLICAS: "1" })
        assert(Exit.isFailure(fewer))
        expect(String(fewer.cause)).toContain("replicas would go down from 3 to 1")
        expect(yield* replicas).toStrictEqual([3, 3, 3])
      })
    )

    it.effect(
      "provisioning waits while the cluster has no quorum, and goes on when it is back",
      () =>
        Effect.gen(function* () {
          const cluster = yield* NatsCluster.NatsClusterService
          const [, second, third] = cluster.nodes
          assert(second !== undefined && third !== undefined)
          yield* second.kill
          yield* third.kill
          const fiber = yield* withLogs(
            Topology.provision(Topology.make({ streams: [{ name: "QUORUM", subjects: ["quorum.>"], replicas: 3 }] }))
          ).pipe(Effect.forkChild)
          yield* Effect.sleep("3 seconds")
          yield* Effect.all([second.start(), third.start()], { concurrency: "unbounded" })
          const { exit, lines } = yield* Fiber.join(fiber)
          assert(Exit.isSuccess(exit))
          expect(exit.value.streams).toStrictEqual([{ stream: "QUORUM", action: "created", changes: [] }])
          expect(yield* replicasOf("QUORUM")).toBe(3)
          const logged = topologyLines(lines)
          expect(logged[0]?.level).toBe("Warn")
          expect(logged[0]?.message).toMatch(/^Topology: waiting for JetStream/)
          expect(logged.filter((line) => line.message.startsWith("Topology: JetStream answers again"))).toHaveLength(1)
          expect(logged.at(-1)).toStrictEqual({ level: "Info", message: "Topology: created stream QUORUM" })
        }),
      90_000
    )
  })
})

import { assert, describe, expect, it, layer } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Exit, Fiber, Layer, Option } from "effect"
import { Broker } from "../src/Broker.js"
import * as Streams from "../src/glam/Streams.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as NatsClient from "../src/NatsClient.js"
import * as Topology from "../src/Topology.js"
import * as NatsCluster from "./support/NatsCluster.js"
import { clusterLike, streamConfigOf, topologyLines, withLogs } from "./support/TopologyFixtures.js"

describe("Streams.topologyConfig", () => {
  const parse = (env: Record<string, string>) => Streams.topologyConfig.parse(ConfigProvider.fromEnv({ env }))

  it.effect("GLAM_STREAM_REPLICAS gives the three GLAM streams that many replicas; unset names none", () =>
    Effect.gen(function* () {
      const three = yield* parse({ GLAM_STREAM_REPLICAS: "3" })
      expect(three.streams.map((stream) => [stream.name, stream.replicas])).toStrictEqual([
        ["GLAM_EVENTS", 3],
        ["GLAM_DLQ", 3],
        ["GLAM_ADVISORIES", 3]
      ])
      expect(three.streams.map(({ replicas: _, ...rest }) => rest)).toStrictEqual(Streams.topology.streams)
      expect((yield* parse({ GLAM_STREAM_REPLICAS: "1" })).streams.map((stream) => stream.replicas)).toStrictEqual([
        1, 1, 1
      ])
      const unset = yield* parse({})
      expect(unset).toStrictEqual(Streams.topology)
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

  it.effect("Streams.layerTopology takes them from GLAM_STREAM_REPLICAS and refuses fewer than the streams have", () =>
    Effect.gen(function* () {
      const { broker } = yield* clusterLike
      const build = (env: Record<string, string>) =>
        Layer.build(Streams.layerTopology()).pipe(
          Effect.provideService(Broker, broker),
          Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })),
          Effect.exit
        )
      const replicas = Effect.forEach(Streams.topology.streams, (stream) =>
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

const ClusterEnv = NatsBroker.layerFromClient.pipe(
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
          Layer.build(Streams.layerTopology()).pipe(
            Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env })),
            Effect.exit
          )
        const replicas = Effect.forEach(Streams.topology.streams, (stream) => replicasOf(stream.name))
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
          // Longer than a JetStream request's 5 s timeout: a stream creation the meta leader accepted
          // before it noticed the lost quorum waits that long, then fails, so one attempt fails at least.
          yield* Effect.sleep("7 seconds")
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

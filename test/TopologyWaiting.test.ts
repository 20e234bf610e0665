import { assert, describe, expect, it } from "@effect/vitest"
import { Clock, Context, Effect, Exit, Fiber, Layer, Option, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { Broker } from "../src/Broker.js"
import * as MemoryBroker from "../src/MemoryBroker.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as NatsClient from "../src/NatsClient.js"
import * as NatsError from "../src/NatsError.js"
import * as Topology from "../src/Topology.js"
import * as NatsServer from "./support/NatsServer.js"
import { flaky, topologyLines, unavailable, withLogs } from "./support/TopologyFixtures.js"

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
        /^Topology: still waiting for JetStream after 1\d(\.\d)? s .*failed attempts\): streamInfo/
      )
      expect(logged[2]?.message).toMatch(/^Topology: still waiting for JetStream after 2\d(\.\d)? s /)
      expect(logged[3]?.message).toMatch(
        /^Topology: JetStream answers again, after waiting 2[5-7](\.\d)? s \(\d+ failed attempts\)$/
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
        /^Topology: gave up waiting for JetStream after 6\d(\.\d)? s \(\d+ failed attempts\)$/
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
        NatsBroker.layerFromClient.pipe(
          Layer.provide(NatsClient.layer({ servers: server.url, reconnectWait: "100 millis" }))
        )
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
      const waited = answered[0]?.message.match(/after waiting (\d+) ms/)?.[1]
      expect(Number(waited)).toBeGreaterThanOrEqual(1000)
      expect(logged.at(-1)?.message).toBe("Topology: created consumer LATE/reader")
    })
  )
})

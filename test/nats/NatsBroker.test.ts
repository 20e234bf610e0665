/**
 * What only `NatsBroker` has, beside the broker contract (test/contract/, which both brokers run and
 * which holds publish/consume, the settle verbs, ack-wait, maxAckPending, interruption, re-creation and
 * administration): what the real server and nats.js do that no in-memory broker can (errors nats.js
 * raises, how a consumer is created on the server, a pull the server refuses, a connection closed under a
 * consume, heartbeats that re-pull, a stop and start of the server under a consume), and the server
 * version's capabilities.
 */
import { assert, describe, expect, layer } from "@effect/vitest"
import { AckPolicy } from "@nats-io/jetstream"
import { type Cause, Duration, Effect, Exit, Fiber, Layer, Option, Queue, Scope, Stream } from "effect"
import { Broker, type ConsumeOptions, type ConsumerConfig, type Headers, type Message } from "../../src/Broker.js"
import { type FlowEvent, PullFlow } from "../../src/internal/nats/pull.js"
import * as NatsBroker from "../../src/NatsBroker.js"
import * as NatsClientModule from "../../src/NatsClient.js"
import { NatsClient } from "../../src/NatsClient.js"
import type { NatsError } from "../../src/NatsError.js"
import { bytes, consumerConfig, streamConfig } from "../support/configs.js"
import { eventually } from "../support/Eventually.js"
import * as NatsServer from "../support/NatsServer.js"

/** A broker on a nats-server of its own, shared by the tests of one `layer` block. */
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

const timeout = Duration.seconds(5)

describe("NatsBroker", () => {
  layer(ConsumeEnv())("over a real nats-server", (it) => {
    it.effect("says it is nats", () =>
      Effect.gen(function* () {
        expect((yield* Broker).system).toBe("nats")
      })
    )

    it.effect("a header value with a line break is Rejected by nats.js, not a defect, and nothing is stored", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream(streamConfig("LIMITS", ["limits.>"]))
        const badHeader = yield* broker
          .publish({ subject: "limits.header", payload: bytes("x"), headers: [["X-Note", "one\ntwo"]], timeout })
          .pipe(Effect.flip)
        expect(badHeader.reason._tag).toBe("Rejected")
        expect(badHeader.isRetryable).toBe(false)
        const info = yield* broker.streamInfo("LIMITS")
        expect(Option.map(info, (i) => i.state.messages)).toStrictEqual(Option.some(0))
      })
    )

    it.effect("a consumer is created on the server as a durable pull consumer with explicit acks and no backoff", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const { manager } = yield* NatsClient
        yield* broker.addStream(streamConfig("CONS", ["cons.>"]))
        yield* broker.addConsumer({ ...consumerConfig("CONS", "worker"), filterSubject: "cons.orders.>" })
        const raw = yield* Effect.promise(() => manager.consumers.info("CONS", "worker"))
        expect(raw.config.durable_name).toBe("worker")
        expect(raw.config.ack_policy).toBe("explicit")
        expect(raw.config.deliver_subject).toBeUndefined()
        expect(raw.config.backoff).toBeUndefined()
      })
    )
  })
})

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
        const events = yield* Queue.unbounded<FlowEvent>()
        const flow = new PullFlow({
          connection,
          apiPrefix: jetstream.apiPrefix,
          inboxPrefix: undefined,
          stream: "LIVENESS",
          consumer: "worker",
          maxMessages: 10,
          heartbeatMillis: 500,
          supportsTermReason: false,
          deliveries,
          events
        })
        const subscription = connection.subscribe(flow.inbox, { callback: flow.receive })
        flow.restart()
        // The server's idle heartbeats keep an idle pull alive; checks come every half heartbeat.
        for (let check = 0; check < 8; check++) {
          yield* Effect.sleep("250 millis")
          flow.checkHeartbeats()
        }
        expect(yield* Queue.clear(events)).toEqual([])
        expect(flow.answering).toBe(true)
        // Without the subscription nothing arrives: after two heartbeats of silence the pulls are presumed lost.
        subscription.unsubscribe()
        yield* Effect.sleep("100 millis")
        // The first check may still see the last heartbeat; three quiet checks are not yet two heartbeats.
        for (let check = 0; check < 3; check++) {
          flow.checkHeartbeats()
          yield* Effect.sleep("250 millis")
        }
        expect(yield* Queue.clear(events)).toEqual([])
        flow.checkHeartbeats()
        flow.checkHeartbeats()
        expect(yield* Queue.clear(events)).toEqual([
          { _tag: "Reset", reset: { level: "Warn", reason: "missed two heartbeats", pauseMillis: 0 } }
        ])
        expect(flow.answering).toBe(false)
        flow.close()
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

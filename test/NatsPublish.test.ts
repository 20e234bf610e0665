import { assert, describe, expect, it, layer } from "@effect/vitest"
import { connect } from "@nats-io/transport-node"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Schedule, Schema, Scope } from "effect"
import { Broker, type PublishRequest } from "../src/Broker.js"
import * as Event from "../src/Event.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as NatsClientModule from "../src/NatsClient.js"
import { NatsClient } from "../src/NatsClient.js"
import * as Publisher from "../src/Publisher.js"
import * as ServiceIdentity from "../src/ServiceIdentity.js"
import { bytes, streamConfig, text } from "./support/configs.js"
import { eventually } from "./support/Eventually.js"
import * as NatsServer from "./support/NatsServer.js"

const Env = NatsBroker.layerFromClient.pipe(
  Layer.provideMerge(ServiceIdentity.layer("publish-test")),
  Layer.provideMerge(
    Layer.unwrap(
      Effect.map(NatsServer.NatsServerService, (server) =>
        NatsClientModule.layer({ servers: server.url, reconnectWait: "100 millis" })
      )
    )
  ),
  Layer.provideMerge(NatsServer.layer())
)

const timeout = Duration.seconds(5)

const range = (count: number) => Array.from({ length: count }, (_, i) => i)

const Item = Event.make("evt.orders.item.created.v1", Schema.Struct({ n: Schema.Number }))

/** The stored messages of `stream` whose `Nats-Msg-Id` is `id`. */
const copiesOf = (stream: string, id: string) =>
  Effect.gen(function* () {
    const { manager } = yield* NatsClient
    const info = yield* Effect.promise(() => manager.streams.info(stream))
    const found = []
    for (let seq = info.state.first_seq; info.state.messages > 0 && seq <= info.state.last_seq; seq++) {
      const message = yield* Effect.promise(() => manager.streams.getMessage(stream, { seq }))
      if (message?.header.get("Nats-Msg-Id") === id) found.push(message)
    }
    return found
  })

/** A core subscriber that takes every message on `subject` and never answers: a publish there waits in vain. */
const silentResponder = (subject: string, onMessage: (msgId: string | undefined) => void = () => undefined) =>
  Effect.flatMap(NatsClient, ({ connection }) =>
    Effect.acquireRelease(
      Effect.sync(() =>
        connection.subscribe(subject, { callback: (_, msg) => onMessage(msg.headers?.get("Nats-Msg-Id")) })
      ),
      (subscription) => Effect.sync(() => subscription.unsubscribe())
    )
  )

/** The ORDERS stream and a publisher that retries every 100 ms for 20 s: what the restart tests share. */
const ordersOnARestartingServer = Effect.gen(function* () {
  const server = yield* NatsServer.NatsServerService
  const broker = yield* Broker
  yield* broker.addStream(streamConfig("ORDERS", ["evt.orders.>"]))
  const publisher = yield* Publisher.make({
    timeout: "1 second",
    retry: Schedule.spaced("100 millis").pipe(Schedule.upTo({ duration: "20 seconds" }))
  })
  return { server, broker, publisher }
})

describe("NatsBroker publish", () => {
  layer(Env, { excludeTestServices: true })("over a real nats-server (real clock)", (it) => {
    it.effect("2,000 concurrent publishes each get the acknowledgement of their own message", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const { manager } = yield* NatsClient
        yield* broker.addStream(streamConfig("MANY", ["many.>"]))
        const request = (i: number): PublishRequest => ({
          subject: `many.${i % 10}`,
          payload: bytes(`message ${i}`),
          headers: [["X-Index", `${i}`]],
          messageId: `id-${i}`,
          timeout
        })
        const acks = yield* Effect.forEach(range(2000), (i) => broker.publish(request(i)), {
          concurrency: "unbounded"
        })
        expect(new Set(acks.map((ack) => ack.seq)).size).toBe(2000)
        const stored = yield* Effect.forEach(
          acks,
          (ack) => Effect.promise(() => manager.streams.getMessage("MANY", { seq: ack.seq })),
          { concurrency: 32 }
        )
        for (const [i, ack] of acks.entries()) {
          const message = stored[i]
          assert(message !== null && message !== undefined)
          expect(ack).toStrictEqual({ stream: "MANY", seq: message.seq, duplicate: false })
          expect(message.header.get("Nats-Msg-Id")).toBe(`id-${i}`)
          expect(message.header.get("X-Index")).toBe(`${i}`)
          expect(message.subject).toBe(`many.${i % 10}`)
          expect(text(message.data)).toBe(`message ${i}`)
        }

        // The same ids again, all at once: each is told it is a duplicate of its own original.
        const again = yield* Effect.forEach(range(2000), (i) => broker.publish(request(i)), {
          concurrency: "unbounded"
        })
        expect(again).toStrictEqual(acks.map((ack) => ({ ...ack, duplicate: true })))
      })
    )

    it.effect(
      "concurrent publishes expecting the same last sequence: one is stored, the others fail with WrongLastSequence",
      () =>
        Effect.gen(function* () {
          const broker = yield* Broker
          yield* broker.addStream(streamConfig("RACE", ["race.>"]))
          yield* broker.publish({ subject: "race.x", payload: bytes("first"), headers: [], timeout })
          const outcomes = yield* Effect.forEach(
            range(20),
            (i) =>
              broker
                .publish({
                  subject: "race.x",
                  payload: bytes(`contender ${i}`),
                  headers: [],
                  messageId: `race-${i}`,
                  expectedLastSequence: 1,
                  timeout
                })
                .pipe(Effect.result),
            { concurrency: "unbounded" }
          )
          const stored = outcomes.filter((outcome) => outcome._tag === "Success")
          expect(stored.map((outcome) => outcome.success)).toStrictEqual([{ stream: "RACE", seq: 2, duplicate: false }])
          const refused = outcomes.filter((outcome) => outcome._tag === "Failure").map((outcome) => outcome.failure)
          expect(refused).toHaveLength(19)
          for (const error of refused) {
            assert(error.reason._tag === "WrongLastSequence")
            expect(error.reason.lastSequence).toBe(2)
            expect(error.isRetryable).toBe(false)
          }
        })
    )

    it.effect("a publish nobody acknowledges fails with a retryable Timeout that says how long it waited", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* silentResponder("silent.x")
        const error = yield* broker
          .publish({ subject: "silent.x", payload: bytes("x"), headers: [], timeout: Duration.millis(300) })
          .pipe(Effect.flip)
        expect(error.reason._tag).toBe("Timeout")
        expect(error.isRetryable).toBe(true)
        expect(error.message).toBe("publish: JetStream did not acknowledge the publish to silent.x within 300 ms")
      })
    )

    it.effect("a connection with its own inbox prefix gets its acknowledgements under that prefix", () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.NatsServerService
        const broker = yield* Broker
        yield* broker.addStream(streamConfig("PREFIXED", ["prefixed.>"]))
        const connection = yield* Effect.acquireRelease(
          Effect.promise(() => connect({ servers: server.url, inboxPrefix: "_GLAM_TEST" })),
          (nc) => Effect.promise(() => nc.close())
        )
        const watcher = yield* Effect.acquireRelease(
          Effect.promise(() => connect({ servers: server.url })),
          (nc) => Effect.promise(() => nc.close())
        )
        const replies: Array<string> = []
        watcher.subscribe("_GLAM_TEST.>", { callback: (_, msg) => void replies.push(msg.subject) })
        yield* Effect.promise(() => watcher.flush())
        const client = yield* NatsClientModule.fromConnection(connection)
        const prefixed = yield* NatsBroker.make.pipe(Effect.provideService(NatsClient, client))
        const ack = yield* prefixed.publish({ subject: "prefixed.x", payload: bytes("x"), headers: [], timeout })
        expect(ack).toStrictEqual({ stream: "PREFIXED", seq: 1, duplicate: false })
        yield* Effect.promise(() => watcher.flush())
        expect(replies).toHaveLength(1)
        expect(replies[0]).toMatch(/^_GLAM_TEST\./)
      })
    )

    it.effect("publishes waiting when the connection closes fail with Closed, and so does a publish after", () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.NatsServerService
        const scope = yield* Scope.make()
        const client = yield* NatsClientModule.make({ servers: server.url }).pipe(Scope.provide(scope))
        const broker = yield* NatsBroker.make.pipe(Effect.provideService(NatsClient, client))
        client.connection.subscribe("hang.x", { callback: () => undefined })
        const request: PublishRequest = {
          subject: "hang.x",
          payload: bytes("x"),
          headers: [],
          timeout: Duration.minutes(5)
        }
        const waiting = yield* Effect.forEach(range(10), () =>
          broker.publish(request).pipe(Effect.flip, Effect.forkChild({ startImmediately: true }))
        )
        yield* Scope.close(scope, Exit.void)
        const errors = yield* Effect.forEach(waiting, Fiber.join)
        for (const error of errors) {
          expect(error.reason._tag).toBe("Closed")
          expect(error.isRetryable).toBe(false)
        }
        const after = yield* broker.publish(request).pipe(Effect.flip)
        expect(after.reason._tag).toBe("Closed")
      })
    )

    it.effect(
      "when the broker's scope ends, its publishes waiting fail with Closed and its inbox is unsubscribed",
      () =>
        Effect.gen(function* () {
          const { connection } = yield* NatsClient
          const client = yield* NatsClientModule.fromConnection(connection)
          const scope = yield* Scope.make()
          const broker = yield* NatsBroker.make.pipe(Effect.provideService(NatsClient, client), Scope.provide(scope))
          const seen: Array<string> = []
          const responder = connection.subscribe("hang.scoped", {
            callback: (_, msg) => void seen.push(msg.reply ?? "")
          })
          const request: PublishRequest = {
            subject: "hang.scoped",
            payload: bytes("x"),
            headers: [],
            timeout: Duration.minutes(5)
          }
          const waiting = yield* broker.publish(request).pipe(Effect.flip, Effect.forkChild({ startImmediately: true }))
          yield* Effect.promise(() => connection.flush())
          yield* Scope.close(scope, Exit.void)
          const error = yield* Fiber.join(waiting)
          expect(error.reason._tag).toBe("Closed")
          // the connection stays open (the broker does not own it), and nobody listens on the inbox any more
          expect(connection.isClosed()).toBe(false)
          expect(seen).toHaveLength(1)
          const answer = yield* Effect.promise(() =>
            connection.request(seen[0] ?? "", bytes("late"), { timeout: 1000 }).then(
              () => "answered",
              (cause: unknown) => (cause instanceof Error ? cause.message : "failed")
            )
          )
          expect(answer).toMatch(/no responders/i)
          responder.unsubscribe()
        })
    )

    it.effect("a header value with a line break and a body over the max payload are Rejected, and nothing waits", () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* broker.addStream(streamConfig("REFUSED", ["refused.>"]))
        const badHeader = yield* broker
          .publish({ subject: "refused.x", payload: bytes("x"), headers: [["X-Note", "a\r\nb"]], timeout })
          .pipe(Effect.flip)
        expect(badHeader.reason._tag).toBe("Rejected")
        const tooBig = yield* broker
          .publish({ subject: "refused.x", payload: new Uint8Array(1024 * 1024 + 1), headers: [], timeout })
          .pipe(Effect.flip)
        expect(tooBig.reason._tag).toBe("Rejected")
        // The publisher is still usable after refusing them.
        const ack = yield* broker.publish({ subject: "refused.x", payload: bytes("ok"), headers: [], timeout })
        expect(ack).toStrictEqual({ stream: "REFUSED", seq: 1, duplicate: false })
      })
    )
  })

  it.live("after timeouts, the Publisher's retry stores the event once, under the same message id", () =>
    Effect.gen(function* () {
      const broker = yield* Broker
      const attempts: Array<string | undefined> = []
      const twoAttempts = yield* Deferred.make<void>()
      const responder = yield* silentResponder("evt.orders.item.created.v1", (msgId) => {
        attempts.push(msgId)
        if (attempts.length === 2) Deferred.doneUnsafe(twoAttempts, Exit.void)
      })
      const publisher = yield* Publisher.make({
        timeout: "200 millis",
        retry: Schedule.spaced("100 millis").pipe(Schedule.upTo({ duration: "20 seconds" }))
      })
      const eventId = "0d7c6a52-7f0e-4c55-9a43-000000000001"
      const publishing = yield* publisher
        .publish(Item, { n: 1 }, { eventId })
        .pipe(Effect.forkChild({ startImmediately: true }))
      // Two attempts went unanswered; now a stream takes the subject and the silence ends.
      yield* Deferred.await(twoAttempts)
      yield* broker.addStream(streamConfig("ORDERS", ["evt.orders.>"]))
      yield* Effect.sync(() => responder.unsubscribe())
      const receipt = yield* Fiber.join(publishing)
      expect(receipt).toStrictEqual({
        eventId,
        subject: "evt.orders.item.created.v1",
        stream: "ORDERS",
        seq: 1,
        duplicate: false
      })
      expect(attempts.slice(0, 2)).toStrictEqual([eventId, eventId])
      expect(yield* copiesOf("ORDERS", eventId)).toHaveLength(1)
    }).pipe(Effect.provide(Env))
  )

  it.live(
    "while the server is down a publish fails at once as retryable; the Publisher stores it once when it is back",
    () =>
      Effect.gen(function* () {
        const { server, broker, publisher } = yield* ordersOnARestartingServer
        yield* publisher.publish(Item, { n: 0 })
        yield* server.stop
        const refused = yield* broker
          .publish({ subject: "evt.orders.item.created.v1", payload: bytes("{}"), headers: [], timeout })
          .pipe(Effect.flip)
        expect(refused.reason._tag).toBe("Disconnected")
        expect(refused.isRetryable).toBe(true)

        const eventId = "0d7c6a52-7f0e-4c55-9a43-000000000002"
        const publishing = yield* publisher
          .publish(Item, { n: 1 }, { eventId })
          .pipe(Effect.forkChild({ startImmediately: true }))
        yield* Effect.sleep("500 millis")
        yield* server.start
        const receipt = yield* Fiber.join(publishing)
        expect(receipt.duplicate).toBe(false)
        expect(yield* copiesOf("ORDERS", eventId)).toHaveLength(1)
      }).pipe(Effect.provide(Env))
  )

  it.live("a publish waiting for its acknowledgement when the connection drops fails at once with Disconnected", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.NatsServerService
      const broker = yield* Broker
      const arrived = yield* Deferred.make<void>()
      yield* silentResponder("silent.dropped", () => Deferred.doneUnsafe(arrived, Exit.void))
      const publishing = yield* broker
        .publish({ subject: "silent.dropped", payload: bytes("{}"), headers: [], timeout: Duration.seconds(60) })
        .pipe(Effect.flip, Effect.forkChild({ startImmediately: true }))
      yield* Deferred.await(arrived)
      yield* server.stop
      // Well before its 60 s timeout: the drop itself fails it.
      const dropped = yield* Fiber.join(publishing).pipe(Effect.timeout("10 seconds"))
      expect(dropped.reason._tag).toBe("Disconnected")
      expect(dropped.isRetryable).toBe(true)
      expect(dropped.message).toBe(
        "publish: the connection dropped before JetStream acknowledged the publish to silent.dropped"
      )
    }).pipe(Effect.provide(Env))
  )

  it.live("publishes in flight across a server restart are each stored once", () =>
    Effect.gen(function* () {
      const { server, broker, publisher } = yield* ordersOnARestartingServer
      const total = 20_000
      const publishing = yield* publisher
        .publishAll(
          range(total).map((n) => ({ event: Item, payload: { n } })),
          { concurrency: 256 }
        )
        .pipe(Effect.forkChild({ startImmediately: true }))
      yield* eventually(
        Effect.flatMap(broker.streamInfo("ORDERS"), (info) =>
          (Option.getOrUndefined(info)?.state.messages ?? 0) >= total / 5 ? Effect.void : Effect.fail("not yet")
        )
      )
      yield* server.restart
      const receipts = yield* Fiber.join(publishing)
      expect(receipts).toHaveLength(total)
      expect(new Set(receipts.map((receipt) => receipt.eventId)).size).toBe(total)
      const info = yield* broker.streamInfo("ORDERS")
      expect(Option.map(info, (i) => i.state.messages)).toStrictEqual(Option.some(total))
    }).pipe(Effect.provide(Env))
  )
})

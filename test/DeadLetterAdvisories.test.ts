/**
 * What the max-deliveries advisory path writes to the log across restarts of a subscriber: each
 * advisory is dead-lettered once and logged at WARN once. An advisory that comes again (its ack never
 * reached the server: the process died first) finds its dead letter stored, a duplicate receipt, and
 * is only acknowledged, with a DEBUG line.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Ref, References, Schema, Scope, Stream } from "effect"
import { Broker, type Message } from "../src/Broker.js"
import * as Event from "../src/Event.js"
import * as Streams from "../src/glam/Streams.js"
import * as Policy from "../src/Policy.js"
import * as Publisher from "../src/Publisher.js"
import * as Subscriber from "../src/Subscriber.js"
import * as Topology from "../src/Topology.js"
import { eventually } from "./support/Eventually.js"
import * as Logs from "./support/Logs.js"
import { consumerState, deadLetters, messaging, storedMessages } from "./support/Messaging.js"

const Crashed = Event.make("evt.test.crashed.v1", Schema.Struct({ n: Schema.Number }))
const durable = "test-service-crashy"
const advisoryDurable = `dlq-${Streams.eventsName}-${durable}`
const maxDeliveries = 2

const subscriber = Subscriber.make(Crashed, {
  durable,
  ackWait: "1 second",
  policy: Policy.make({ rules: {}, maxDeliveries }),
  handler: () => Effect.void
})

/** One message delivered to the subscriber's durable until the server gives up: a process that dies on it. */
const exhaustDeliveries = Effect.gen(function* () {
  const broker = yield* Broker
  yield* Topology.provision(
    Topology.make({
      consumers: [
        {
          stream: Streams.eventsName,
          name: durable,
          filterSubject: Crashed.subject,
          ackWait: "1 second",
          maxAckPending: 1000,
          maxDeliver: maxDeliveries + 1
        }
      ]
    })
  )
  yield* Effect.flatMap(Publisher.Publisher, (publisher) => publisher.publish(Crashed, { n: 1 }))
  const deliveries = yield* Ref.make(0)
  const crashing = yield* broker.consume(Streams.eventsName, durable, { maxMessages: 10 }).pipe(
    Stream.runForEach(() => Ref.update(deliveries, (n) => n + 1)),
    Effect.forkChild
  )
  yield* eventually(
    Effect.flatMap(storedMessages(Streams.advisoriesName), (advisories) =>
      advisories.length > 0 ? Effect.void : Effect.fail("no advisory yet")
    ),
    { timeout: "20 seconds" }
  )
  yield* Fiber.interrupt(crashing)
  expect(yield* Ref.get(deliveries)).toBe(maxDeliveries + 1)
})

/** Runs the subscriber, its lines captured by `logs`, for `during`, then stops it. */
const runFor = <R>(logs: Logs.Captured, during: Effect.Effect<void, unknown, R>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* subscriber.pipe(
      Effect.provide(logs.layer),
      Effect.provideService(References.MinimumLogLevel, "Debug"),
      Scope.provide(scope)
    )
    yield* during
    yield* Scope.close(scope, Exit.void)
  })

const warnings = (logs: Logs.Captured) => logs.matching("Warn", "reached max deliveries")

const warned = (logs: Logs.Captured) =>
  eventually(
    Effect.suspend(() => (warnings(logs).length > 0 ? Effect.void : Effect.fail("not logged yet"))),
    { timeout: "20 seconds" }
  )

const advisoryAcked = eventually(
  Effect.flatMap(consumerState(Streams.advisoriesName, advisoryDurable), (state) =>
    state !== undefined && state.ackFloor.streamSeq === 1 && state.numAckPending === 0
      ? Effect.void
      : Effect.fail(state)
  ),
  { timeout: "20 seconds" }
)

// The advisory watcher's acks as if the process died before they reached the server: the server
// delivers the advisory again (after 200 ms rather than the advisory durable's 1-minute ack-wait).
const ackLost = (message: Message): Message => ({
  stream: message.stream,
  consumer: message.consumer,
  subject: message.subject,
  payload: message.payload,
  headers: message.headers,
  streamSeq: message.streamSeq,
  consumerSeq: message.consumerSeq,
  deliveryCount: message.deliveryCount,
  pending: message.pending,
  timestampMillis: message.timestampMillis,
  ack: () => message.nak(200),
  nak: (delayMillis) => message.nak(delayMillis),
  term: (reason) => message.term(reason),
  working: () => message.working()
})

const losingAdvisoryAcks = Effect.map(Broker, (broker) =>
  Broker.of({
    ...broker,
    consume: (stream, consumer, options) =>
      consumer === advisoryDurable
        ? Stream.map(broker.consume(stream, consumer, options), ackLost)
        : broker.consume(stream, consumer, options)
  })
)

describe("max-deliveries advisories across restarts", () => {
  it.live("dead-lettered and logged at WARN once; restarted subscribers log nothing new for them", () =>
    Effect.gen(function* () {
      yield* exhaustDeliveries
      const logs = Logs.capture()
      yield* runFor(logs, warned(logs))
      yield* advisoryAcked
      for (let restart = 0; restart < 2; restart++) yield* runFor(logs, Effect.sleep("2 seconds"))
      expect(warnings(logs)).toHaveLength(1)
      expect(logs.lines.filter((line) => line.message.includes("max deliveries"))).toHaveLength(1)
      expect(yield* deadLetters).toHaveLength(1)
    }).pipe(Effect.provide(messaging()))
  )

  it.live("an advisory whose ack was lost comes again: acknowledged with a DEBUG line, never a second WARN", () =>
    Effect.gen(function* () {
      yield* exhaustDeliveries
      const logs = Logs.capture()
      const redelivered = () => logs.matching("Debug", `dead letter dlq:${Streams.eventsName}:1 was already`)
      const broker = yield* losingAdvisoryAcks
      yield* runFor(
        logs,
        Effect.andThen(
          warned(logs),
          eventually(
            Effect.suspend(() => (redelivered().length > 0 ? Effect.void : Effect.fail("not yet"))),
            { timeout: "20 seconds" }
          )
        )
      ).pipe(Effect.provideService(Broker, broker))
      // Restarted with acks that reach the server: the advisory is settled for good.
      yield* runFor(logs, advisoryAcked)
      expect(warnings(logs)).toHaveLength(1)
      expect(redelivered().length).toBeGreaterThanOrEqual(2)
      expect(yield* deadLetters).toHaveLength(1)
    }).pipe(Effect.provide(messaging()))
  )
})

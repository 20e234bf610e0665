/**
 * A dead letter that cannot be written (its stream deleted under a running subscriber) costs a few log
 * lines, not one per attempt, and loses nothing: each message is redelivered later and later, a message
 * at the server's last delivery is kept and written again in process, so none is left to the advisory
 * path, and once the stream is back every message ends in it with its original bytes.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Data, Effect, Exit, Option, References, Schedule, Schema, Scope } from "effect"
import { Broker } from "../src/Broker.js"
import * as DeadLetter from "../src/DeadLetter.js"
import * as Event from "../src/Event.js"
import * as Policy from "../src/Policy.js"
import * as Publisher from "../src/Publisher.js"
import * as Subscriber from "../src/Subscriber.js"
import * as Topology from "../src/Topology.js"
import { eventually } from "./support/Eventually.js"
import * as Logs from "./support/Logs.js"
import { consumerState, messaging, storedMessages } from "./support/Messaging.js"

const orders: Topology.StreamSpec = { name: "ORDERS", subjects: ["evt.orders.>"] }
const OrderPlaced = Event.make("evt.orders.placed.v1", Schema.Struct({ n: Schema.Number }))

class Declined extends Data.TaggedError("Declined")<{ readonly n: number }> {}

const count = 100

/** The lines an operator reads (WARN and above) that are about dead letters. */
const loud = (logs: Logs.Captured) =>
  logs.lines.filter((line) => (line.level === "Warn" || line.level === "Error") && line.message.includes("dead"))

describe("a dead letter that cannot be written", () => {
  it.live(
    "backs off without a log line per attempt, leaves no message in between, and every message is dead-lettered once its stream is back",
    () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const logs = Logs.capture()
        yield* Topology.provision(Topology.make({ streams: Topology.withDeadLetters(orders) }))
        const scope = yield* Scope.make()
        yield* Subscriber.make(OrderPlaced, {
          stream: "ORDERS",
          durable: "orders-worker",
          concurrency: 8,
          // Held messages must be kept alive by `working`: redelivered at ack-wait, they would pass max deliveries.
          ackWait: "2 seconds",
          // Messages kept for their dead letter are not handlers running long: no "still running" line.
          slowHandlerAfter: "1 second",
          policy: Policy.make<Declined>({
            rules: { Declined: Policy.deadLetter },
            // the delay of a redelivery after a failed write: 200 ms, 400 ms, ...
            defect: Policy.redeliver(Schedule.exponential("200 millis")),
            maxDeliveries: 3
          }),
          handler: (envelope) => Effect.fail(new Declined({ n: envelope.data.n }))
        }).pipe(
          Effect.provide(logs.layer),
          Effect.provideService(References.MinimumLogLevel, "Debug"),
          Scope.provide(scope)
        )
        // The subscriber starts only with its dead-letter stream; this one goes away after it started.
        expect(yield* broker.deleteStream("ORDERS_DLQ")).toBe(true)

        const publisher = yield* Publisher.Publisher
        yield* publisher.publishAll(Array.from({ length: count }, (_, n) => ({ event: OrderPlaced, payload: { n } })))
        const published = yield* storedMessages("ORDERS")
        expect(published).toHaveLength(count)
        // Writes fail for 6 s: messages come back with growing delays, and those at their last delivery
        // (the fourth) are held, kept alive past the 2 s ack-wait.
        yield* Effect.sleep("6 seconds")
        const during = yield* consumerState("ORDERS", "orders-worker")
        assert(during !== undefined)
        expect(during.ackFloor.streamSeq).toBe(0)
        expect(during.numAckPending).toBeGreaterThan(0)
        expect(loud(logs).length).toBeLessThan(20)
        expect(logs.matching("Warn", "could not write the dead letter of ORDERS#").length).toBe(1)
        // Nothing was given up to the advisory path.
        expect((yield* storedMessages("ORDERS_ADVISORIES")).length).toBe(0)

        yield* Topology.provision(Topology.make({ streams: Topology.withDeadLetters(orders) }))
        const entries = yield* eventually(
          Effect.flatMap(DeadLetter.list({ stream: "ORDERS_DLQ" }), (list) =>
            list.length >= count ? Effect.succeed(list) : Effect.fail(`${list.length} of ${count} dead letters`)
          ),
          { timeout: "25 seconds", interval: "200 millis" }
        )
        expect(entries).toHaveLength(count)
        for (const { seq, payload } of published) {
          const entry = entries.find((e) => e.record.streamSeq === seq)
          assert(entry !== undefined, `ORDERS#${seq} was not dead-lettered`)
          expect(entry.record).toMatchObject({ decision: "policy", errorCode: "Declined", stream: "ORDERS" })
          const original = yield* DeadLetter.originalBytes(entry)
          assert(Option.isSome(original))
          expect(Buffer.from(original.value).equals(Buffer.from(payload))).toBe(true)
        }
        const settled = yield* eventually(
          Effect.flatMap(consumerState("ORDERS", "orders-worker"), (s) =>
            s !== undefined && s.ackFloor.streamSeq === count ? Effect.succeed(s) : Effect.fail("not settled")
          ),
          { timeout: "5 seconds", interval: "100 millis" }
        )
        expect(settled.numAckPending).toBe(0)
        expect((yield* storedMessages("ORDERS_ADVISORIES")).length).toBe(0)
        expect(logs.matching("Info", "dead letters are written again after").length).toBe(1)
        expect(loud(logs).filter((line) => line.level === "Warn").length).toBeLessThan(20)
        yield* Scope.close(scope, Exit.void)
        // What an operator read: one WARN when writes failed, one INFO when they worked again, and each
        // message's dead letter once; every failed attempt was DEBUG, each with its growing delay.
        const told = logs.lines.filter((line) => line.level !== "Debug" && line.message.includes("dead letter"))
        expect(told.map((line) => line.level)).toStrictEqual(["Warn", "Info"])
        expect(told[0]?.message).toContain("subscriber orders-worker: could not write the dead letter of ORDERS#1;")
        expect(told[1]?.message).toMatch(
          /^subscriber orders-worker: dead letters are written again after .*failed writes for \d+ messages\)$/
        )
        expect(logs.matching("Error", "dead-lettered (policy) after Declined")).toHaveLength(count)
        expect(logs.matching("Debug", "; delivery 1 redelivered in 200 ms").length).toBeGreaterThan(0)
        expect(logs.matching("Debug", "; delivery 2 redelivered in 400 ms").length).toBeGreaterThan(0)
        expect(logs.matching("Debug", "; delivery 3 redelivered in 400 ms").length).toBeGreaterThan(0)
        expect(logs.matching("Debug", "its last delivery: kept here").length).toBeGreaterThan(0)
        expect(logs.matching("Debug", "; delivery 4 redelivered").length).toBe(0)
        expect(logs.matching("Warn", "still running")).toEqual([])
      }).pipe(Effect.provide(messaging({ topology: Topology.make({}) }))),
    40_000
  )
})

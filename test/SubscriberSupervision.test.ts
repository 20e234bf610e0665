/**
 * A subscriber never stops silently: what ends its consume loop or its consumer is logged, repaired
 * where it can be, and its recovery logged; the messages published around it are handled.
 * (Cluster failures — lost leaders, quorum loss — are in `Cluster.test.ts`.)
 */
import { describe, expect, it } from "@effect/vitest"
import { AckPolicy } from "@nats-io/jetstream"
import { Effect, Exit, Ref, Schema, Scope } from "effect"
import { Broker } from "../src/Broker.js"
import * as Event from "../src/Event.js"
import * as Streams from "../src/glam/Streams.js"
import { NatsClient } from "../src/NatsClient.js"
import * as Publisher from "../src/Publisher.js"
import * as Subscriber from "../src/Subscriber.js"
import * as Topology from "../src/Topology.js"
import { eventually } from "./support/Eventually.js"
import * as Logs from "./support/Logs.js"
import { messaging } from "./support/Messaging.js"

const Ticked = Event.make("evt.supervision.ticked.v1", Schema.Struct({ n: Schema.Number }))

const publishRange = (from: number, to: number) =>
  Effect.flatMap(Publisher.Publisher, (publisher) =>
    publisher.publishAll(
      Array.from({ length: to - from + 1 }, (_, i) => ({ event: Ticked, payload: { n: from + i } })),
      { concurrency: 16 }
    )
  )

/** A subscriber on `Ticked` in a scope of its own; `seen` lists every `n` handled, repeats included. */
const subscribe = (durable: string, options: Partial<Subscriber.Options<typeof Ticked, never, never>> = {}) =>
  Effect.gen(function* () {
    const seen = yield* Ref.make<ReadonlyArray<number>>([])
    const logs = Logs.capture()
    const scope = yield* Scope.make()
    yield* Subscriber.make(Ticked, {
      durable,
      idleHeartbeat: "500 millis",
      ...options,
      handler: (envelope) => Ref.update(seen, (list) => [...list, envelope.data.n])
    }).pipe(Effect.provide(logs.layer), Scope.provide(scope))
    const handledAll = (from: number, to: number) =>
      Effect.flatMap(Ref.get(seen), (list) => {
        for (let n = from; n <= to; n++) if (!list.includes(n)) return Effect.fail(`${n} not handled yet`)
        return Effect.void
      })
    const logged = (level: string, text: string) =>
      Effect.suspend(() =>
        logs.matching(level, text).length > 0 ? Effect.void : Effect.fail(`no ${level} line with "${text}" yet`)
      )
    return { seen, logs, scope, handledAll, logged }
  })

describe("Subscriber supervision", () => {
  it.live("a durable deleted under a running subscriber is created again, and what is published next is handled", () =>
    Effect.gen(function* () {
      const broker = yield* Broker
      const subscriber = yield* subscribe("recreated", { checkConsumerEvery: "300 millis" })
      yield* publishRange(1, 5)
      yield* eventually(subscriber.handledAll(1, 5), { timeout: "20 seconds" })
      expect(yield* broker.deleteConsumer("GLAM_EVENTS", "recreated")).toBe(true)
      yield* eventually(subscriber.logged("Warn", "consumer GLAM_EVENTS/recreated was deleted; created it again"), {
        timeout: "20 seconds"
      })
      yield* publishRange(6, 10)
      yield* eventually(subscriber.handledAll(6, 10), { timeout: "20 seconds" })
      // Created again with deliver policy all: what the stream still held came again (at-least-once).
      const seen = yield* Ref.get(subscriber.seen)
      expect(seen.filter((n) => n <= 5).length).toBeGreaterThanOrEqual(5)
      expect(subscriber.logs.matching("Error", "")).toStrictEqual([])
      yield* Scope.close(subscriber.scope, Exit.void)
    }).pipe(Effect.provide(messaging()))
  )

  it.live(
    "a stream deleted under a running subscriber is reported at ERROR until it is back; then consuming resumes",
    () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const subscriber = yield* subscribe("orphaned", { checkConsumerEvery: "300 millis" })
        yield* publishRange(1, 3)
        yield* eventually(subscriber.handledAll(1, 3), { timeout: "20 seconds" })
        expect(yield* broker.deleteStream("GLAM_EVENTS")).toBe(true)
        yield* eventually(
          subscriber.logged(
            "Error",
            "stream GLAM_EVENTS does not exist: orphaned receives nothing until it is created again"
          ),
          { timeout: "20 seconds" }
        )
        yield* Topology.provision(Streams.topology)
        yield* eventually(subscriber.logged("Info", "subscriber orphaned: consumer check: working again after"), {
          timeout: "20 seconds"
        })
        yield* publishRange(4, 6)
        yield* eventually(subscriber.handledAll(4, 6), { timeout: "20 seconds" })
        // Reported once when it started, not once per check.
        expect(subscriber.logs.matching("Error", "consumer check stopped").length).toBe(1)
        yield* Scope.close(subscriber.scope, Exit.void)
      }).pipe(Effect.provide(messaging()))
  )

  it.live(
    "a consume loop ended by a failure no retry can fix is logged once, started again, and logged when it works again",
    () =>
      Effect.gen(function* () {
        const broker = yield* Broker
        const { manager } = yield* NatsClient
        const subscriber = yield* subscribe("swapped", { checkConsumerEvery: "1 minute" })
        yield* publishRange(1, 3)
        yield* eventually(subscriber.handledAll(1, 3), { timeout: "20 seconds" })
        // Someone replaces the durable by a push consumer of the same name: every pull is refused.
        expect(yield* broker.deleteConsumer("GLAM_EVENTS", "swapped")).toBe(true)
        yield* Effect.promise(() =>
          manager.consumers.add("GLAM_EVENTS", {
            durable_name: "swapped",
            deliver_subject: "elsewhere.deliveries",
            ack_policy: AckPolicy.Explicit
          })
        )
        yield* eventually(subscriber.logged("Error", "subscriber swapped: consume GLAM_EVENTS/swapped stopped:"), {
          timeout: "20 seconds"
        })
        yield* Effect.sleep("2 seconds")
        expect(subscriber.logs.matching("Error", "consume GLAM_EVENTS/swapped stopped").length).toBe(1)
        // Once the push consumer is gone, the restart provisions the durable again and consumes.
        yield* Effect.promise(() => manager.consumers.delete("GLAM_EVENTS", "swapped"))
        yield* eventually(
          subscriber.logged("Info", "subscriber swapped: consume GLAM_EVENTS/swapped: working again after"),
          { timeout: "20 seconds" }
        )
        yield* publishRange(4, 6)
        yield* eventually(subscriber.handledAll(4, 6), { timeout: "20 seconds" })
        yield* Scope.close(subscriber.scope, Exit.void)
      }).pipe(Effect.provide(messaging()))
  )

  it.live("a handler running long is logged at WARN, again at growing intervals, and at INFO when it finishes", () =>
    Effect.gen(function* () {
      const receipts = yield* publishRange(1, 1)
      const eventId = receipts[0]?.eventId ?? ""
      const logs = Logs.capture()
      const done = yield* Ref.make(false)
      const scope = yield* Scope.make()
      yield* Subscriber.make(Ticked, {
        durable: "slow",
        slowHandlerAfter: "400 millis",
        handler: () => Effect.sleep("2500 millis").pipe(Effect.andThen(Ref.set(done, true)))
      }).pipe(Effect.provide(logs.layer), Scope.provide(scope))
      yield* eventually(
        Effect.flatMap(Ref.get(done), (finished) => (finished ? Effect.void : Effect.fail("running"))),
        { timeout: "20 seconds" }
      )
      yield* eventually(
        Effect.suspend(() =>
          logs.matching("Info", "finished after").length > 0 ? Effect.void : Effect.fail("no line")
        ),
        { timeout: "20 seconds" }
      )
      const running = logs.matching(
        "Warn",
        `handler for evt.supervision.ticked.v1 #1 (event ${eventId}) still running after`
      )
      // Reported after 0.4 s, 0.8 s and 1.6 s; the next report (3.2 s) comes after the handler is done.
      expect(running.map((line) => line.message.replace(/ after .*/, ""))).toHaveLength(3)
      expect(running[0]?.message).toMatch(
        /still running after [45]\d\d ms \(delivery 1\); next report after 800 ms; a handlerTimeout would bound it$/
      )
      const finished = logs.matching(
        "Info",
        `handler for evt.supervision.ticked.v1 #1 (event ${eventId}) finished after`
      )
      expect(finished.map((line) => line.message.replace(/.* finished after /, ""))).toMatchObject([
        expect.stringMatching(/^2\d\d\d ms$/)
      ])
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(messaging()))
  )
})

/**
 * The subscriber's pull window on the in-memory broker under `TestClock`: at the ceiling on a durable
 * with nothing unacknowledged; one message at a time while a crash is suspected (unacknowledged messages
 * at start-up, a redelivery this process did not cause), logged; back to the ceiling after an ack-wait
 * without one; and its own naks never taken for a crash elsewhere.
 */
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Metric, Ref, Schedule, Stream } from "effect"
import { Broker } from "../../src/Broker.js"
import * as Metrics from "../../src/Metrics.js"
import * as Policy from "../../src/Policy.js"
import * as Subscriber from "../../src/Subscriber.js"
import * as Topology from "../../src/Topology.js"
import * as Testing from "../../src/testing.js"
import * as Logs from "../support/Logs.js"
import { consumerState } from "../support/Messaging.js"
import * as Measured from "../support/Metrics.js"
import { Flaky, Happened, publishAll, run, settled, withMemory } from "../support/Subscribing.js"

const ackPending = (durable: string, want: number) =>
  settled(
    Effect.flatMap(consumerState("GLAM_EVENTS", durable), (state) =>
      state?.numAckPending === want ? Effect.void : Effect.fail(`${durable}: ${state?.numAckPending} ack pending`)
    )
  )

/** A handler that records every `n` and waits at `gate` for the messages `blocked` says. */
const gated = (blocked: (n: number) => boolean) =>
  Effect.gen(function* () {
    const handled = yield* Ref.make<ReadonlyArray<number>>([])
    const gate = yield* Deferred.make<void>()
    const handler = (envelope: Subscriber.Received<typeof Happened>) =>
      Effect.andThen(
        blocked(envelope.data.n) ? Deferred.await(gate) : Effect.void,
        Ref.update(handled, (list) => [...list, envelope.data.n])
      )
    return { handled, gate, handler }
  })

describe("Prefetch on the memory broker", () => {
  it.effect("a durable with nothing unacknowledged is pulled ahead up to prefetch (256 by default)", () => {
    const logs = Logs.capture()
    return withMemory(
      Effect.gen(function* () {
        yield* publishAll(300)
        const { handler } = yield* gated(() => true)
        yield* run(Subscriber.make(Happened, { durable: "ahead", handler }))
        yield* ackPending("ahead", 256)
        expect(logs.matching("Info", "pulling one message at a time")).toStrictEqual([])
        expect(logs.matching("Info", "consuming evt.test.happened.v1")[0]?.message).toContain("prefetch 256")
      })
    ).pipe(Effect.provide(logs.layer))
  })

  it.effect(
    "unacknowledged messages at start-up: one at a time, their redelivery logged, the window back to 256 after an ack-wait without another",
    () => {
      const logs = Logs.capture()
      return withMemory(
        Effect.gen(function* () {
          const broker = yield* Broker
          yield* Topology.provision(
            Topology.make({
              consumers: [
                { stream: "GLAM_EVENTS", name: "careful", filterSubject: Happened.subject, ackWait: "1 second" }
              ]
            })
          )
          yield* publishAll(20)
          // A process that took three messages and died: they are redelivered when their ack-wait ends.
          yield* broker.consume("GLAM_EVENTS", "careful", { maxMessages: 3 }).pipe(Stream.take(3), Stream.runDrain)
          yield* ackPending("careful", 3)

          const handled = yield* Ref.make<ReadonlyArray<number>>([])
          const first = yield* Deferred.make<void>()
          const later = yield* Deferred.make<void>()
          const handler = (envelope: Subscriber.Received<typeof Happened>) =>
            Effect.gen(function* () {
              const count = (yield* Ref.get(handled)).length
              if (envelope.data.n === 4 && count === 0) yield* Deferred.await(first)
              if (count >= 420) yield* Deferred.await(later)
              yield* Ref.update(handled, (list) => [...list, envelope.data.n])
            })
          yield* run(Subscriber.make(Happened, { durable: "careful", ackWait: "1 second", handler }))
          expect(logs.matching("Info", "3 messages of the durable are delivered and not acknowledged")).toHaveLength(1)
          // Handling message 4 and holding nothing more: three of the dead process's, one of ours.
          yield* ackPending("careful", 4)
          yield* Testing.advance("100 millis")
          yield* ackPending("careful", 4)
          const window = Measured.total("messaging.glam.pull.window", { "messaging.consumer.group.name": "careful" })
          expect(yield* window).toBe(1)

          yield* Deferred.succeed(first, undefined)
          yield* Testing.advance("1100 millis")
          yield* settled(
            Effect.flatMap(Ref.get(handled), (list) => (list.length === 20 ? Effect.void : Effect.fail(list.length)))
          )
          // Its own messages first, then the three that came back.
          expect((yield* Ref.get(handled)).slice(-3)).toStrictEqual([1, 2, 3])
          expect(
            logs.matching("Warn", "without this process giving it back").map((line) => line.message)
          ).toStrictEqual([
            "subscriber careful: evt.test.happened.v1 (stream sequence 1) came back at delivery 2 without this process " +
              "giving it back: a process holding it may have died (or a pull carrying it was lost). " +
              "Pulling one message at a time until 1000 ms pass without another"
          ])

          // An ack-wait without a redelivery from elsewhere: the window doubles back to 256 as messages come.
          yield* Testing.advance("1100 millis")
          yield* publishAll(1000)
          yield* settled(
            Effect.flatMap(Ref.get(handled), (list) => (list.length === 420 ? Effect.void : Effect.fail(list.length)))
          )
          // The 421st handler waits: 255 more are held behind it.
          yield* ackPending("careful", 256)
          expect(logs.matching("Info", "the pull window grows back to 256")).toHaveLength(1)
          expect(yield* window).toBe(256)
          yield* Deferred.succeed(later, undefined)
        })
      ).pipe(Effect.provide([logs.layer, Metrics.layer]), Effect.provideService(Metric.MetricRegistry, new Map()))
    }
  )

  it.effect("its own naks are not taken for a crash: a message redelivered after a nak keeps the window at 256", () => {
    const logs = Logs.capture()
    return withMemory(
      Effect.gen(function* () {
        yield* publishAll(1)
        const failedOnce = yield* Ref.make(false)
        yield* run(
          Subscriber.make(Happened, {
            durable: "retrying",
            policy: Policy.make<Flaky>({ rules: { Flaky: Policy.redeliver(Schedule.spaced("1 second")) } }),
            handler: (envelope) =>
              envelope.data.n === 1
                ? Effect.flatMap(Ref.getAndSet(failedOnce, true), (failed) =>
                    failed ? Effect.void : Effect.fail(new Flaky())
                  )
                : Effect.never
          })
        )
        yield* Testing.advance("1100 millis")
        yield* ackPending("retrying", 0)
        yield* publishAll(300)
        // Message 1 of the second batch passes; the next waits for ever, with 255 held behind it.
        yield* ackPending("retrying", 256)
        expect(logs.matching("Warn", "without this process giving it back")).toStrictEqual([])
      })
    ).pipe(Effect.provide(logs.layer))
  })
})

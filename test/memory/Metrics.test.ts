/**
 * The library's metrics equal what happened: deliveries counted by outcome, handler durations, handlers
 * in flight, dead letters written, publishes sent and timed; and nothing at all without `Metrics.layer`.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Metric, Ref, Schedule } from "effect"
import * as Metrics from "../../src/Metrics.js"
import * as Policy from "../../src/Policy.js"
import * as Subscriber from "../../src/Subscriber.js"
import * as Testing from "../../src/testing.js"
import { consumerState } from "../support/Messaging.js"
import * as Measured from "../support/Metrics.js"
import {
  Fatal,
  Flaky,
  Happened,
  Invalid,
  outcomeOf,
  publishAll,
  run,
  Skip,
  settled,
  type TestError,
  withMemory
} from "../support/Subscribing.js"

const policy = Policy.make<TestError>({
  rules: {
    Skip: Policy.ack,
    Fatal: Policy.term,
    Invalid: Policy.deadLetter,
    Flaky: Policy.redeliver(Schedule.spaced("100 millis"))
  }
})

// 1 and 2 succeed; 3 is dropped, 4 terminated, 5 dead-lettered; 6 fails once, then succeeds when redelivered.
const handler = (envelope: Subscriber.Received<typeof Happened>): Effect.Effect<void, TestError> => {
  const { n } = envelope.data
  if (n === 3) return Effect.fail(new Skip())
  if (n === 4) return Effect.fail(new Fatal())
  if (n === 5) return Effect.fail(new Invalid({ reason: "bad address" }))
  return Effect.void
}

const scenario = Effect.gen(function* () {
  yield* publishAll(6)
  const failedOnce = yield* Ref.make(false)
  yield* run(
    Subscriber.make(Happened, {
      durable: "measured",
      policy,
      handler: (envelope) =>
        envelope.data.n !== 6
          ? handler(envelope)
          : Effect.flatMap(Ref.getAndSet(failedOnce, true), (failed) =>
              failed ? Effect.void : Effect.fail(new Flaky())
            )
    })
  )
  yield* settled(outcomeOf(5))
  yield* Testing.advance("1 second")
  yield* settled(outcomeOf(6, 2))
})

const consumed = (outcome: Metrics.Outcome) =>
  Measured.total("messaging.client.consumed.messages", {
    "messaging.glam.outcome": outcome,
    "messaging.consumer.group.name": "measured",
    "messaging.destination.name": "evt.test.happened.v1",
    "messaging.system": "memory"
  })

describe("Metrics", () => {
  it.effect("count deliveries by outcome, time handlers, count dead letters and publishes", () =>
    withMemory(
      Effect.gen(function* () {
        yield* scenario
        expect(yield* consumed("acked")).toBe(3)
        expect(yield* consumed("dropped")).toBe(1)
        expect(yield* consumed("termed")).toBe(1)
        expect(yield* consumed("dead_lettered")).toBe(1)
        expect(yield* consumed("redelivered")).toBe(1)
        expect(yield* consumed("retried")).toBe(0)
        // one observation per handled delivery: six first deliveries and one redelivery
        expect(
          yield* Measured.total("messaging.process.duration", { "messaging.consumer.group.name": "measured" })
        ).toBe(7)
        expect(
          yield* Measured.total("messaging.glam.handlers.in_flight", { "messaging.consumer.group.name": "measured" })
        ).toBe(0)
        expect(
          yield* Measured.total("messaging.glam.dead_letters.written", {
            "messaging.nats.stream": "GLAM_EVENTS",
            decision: "policy"
          })
        ).toBe(1)
        expect(
          yield* Measured.total("messaging.client.sent.messages", {
            "messaging.destination.name": "evt.test.happened.v1",
            "messaging.operation.name": "send"
          })
        ).toBe(6)
        const durations = yield* Measured.series("messaging.client.operation.duration")
        expect(durations.map((one) => one.value)).toStrictEqual([6])
        // no id among the labels
        const labels = (yield* Metric.snapshot).flatMap((snapshot) => Object.keys(snapshot.attributes ?? {}))
        expect(labels.filter((label) => label.endsWith(".id"))).toStrictEqual([])
      })
    ).pipe(Effect.provide(Metrics.layer), Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("a handler that succeeds after in-process retries counts as retried, once", () =>
    withMemory(
      Effect.gen(function* () {
        yield* publishAll(1)
        const runs = yield* Ref.make(0)
        yield* run(
          Subscriber.make(Happened, {
            durable: "measured",
            policy: Policy.make<Flaky>({ rules: { Flaky: Policy.retry(Schedule.spaced("10 millis")) } }),
            handler: () =>
              Effect.flatMap(
                Ref.updateAndGet(runs, (n) => n + 1),
                (n) => (n < 3 ? Effect.fail(new Flaky()) : Effect.void)
              )
          })
        )
        yield* Testing.advance("1 second")
        const outcome = yield* settled(outcomeOf(1))
        assert.strictEqual(outcome._tag, "Acked")
        expect(yield* consumed("retried")).toBe(1)
        expect(yield* consumed("acked")).toBe(0)
      })
    ).pipe(Effect.provide(Metrics.layer), Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("count handlers in flight while they run, and time them on the clock", () =>
    withMemory(
      Effect.gen(function* () {
        yield* publishAll(3)
        const gate = yield* Deferred.make<void>()
        yield* run(
          Subscriber.make(Happened, {
            durable: "blocked",
            concurrency: 2,
            handler: () => Effect.andThen(Deferred.await(gate), Effect.sleep("250 millis"))
          })
        )
        const inFlight = Measured.total("messaging.glam.handlers.in_flight", {
          "messaging.consumer.group.name": "blocked"
        })
        yield* settled(Effect.filterOrFail(inFlight, (n) => n === 2))
        yield* Deferred.succeed(gate, undefined)
        yield* Testing.advance("250 millis")
        yield* settled(outcomeOf(2))
        yield* Testing.advance("250 millis")
        yield* settled(outcomeOf(3))
        expect(yield* inFlight).toBe(0)
        const durations = yield* Measured.series("messaging.process.duration")
        const blocked = durations.filter((one) => one.attributes["messaging.consumer.group.name"] === "blocked")
        expect(blocked.map((one) => [one.value, one.sum])).toStrictEqual([[3, 0.75]])
      })
    ).pipe(Effect.provide(Metrics.layer), Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("sample each subscriber's lag from its consumer check: pending, ack pending, redelivered, waiting", () =>
    withMemory(
      Effect.gen(function* () {
        yield* publishAll(10)
        // Handlers that never finish: the consumer's state stays put while it is sampled.
        yield* run(
          Subscriber.make(Happened, { durable: "lagging", concurrency: 2, prefetch: 4, handler: () => Effect.never })
        )
        yield* Testing.advance("6 seconds")
        const state = yield* consumerState("GLAM_EVENTS", "lagging")
        assert(state !== undefined)
        const gauge = (name: string) =>
          Measured.total(`messaging.nats.consumer.${name}`, {
            "messaging.nats.stream": "GLAM_EVENTS",
            "messaging.consumer.group.name": "lagging"
          })
        expect(state.numAckPending).toBeGreaterThan(0)
        expect(state.numPending).toBeGreaterThan(0)
        expect(yield* gauge("pending")).toBe(state.numPending)
        expect(yield* gauge("ack_pending")).toBe(state.numAckPending)
        expect(yield* gauge("redelivered")).toBe(state.numRedelivered)
        expect(yield* gauge("waiting")).toBe(state.numWaiting)
        expect(
          yield* Measured.total("messaging.glam.handlers.in_flight", { "messaging.consumer.group.name": "lagging" })
        ).toBe(2)
      })
    ).pipe(Effect.provide(Metrics.layer), Effect.provideService(Metric.MetricRegistry, new Map()))
  )

  it.effect("record nothing without Metrics.layer", () =>
    withMemory(
      Effect.gen(function* () {
        yield* scenario
        const names = (yield* Metric.snapshot).map((snapshot) => snapshot.id)
        expect(names.filter((name) => name.startsWith("messaging."))).toStrictEqual([])
      })
    ).pipe(Effect.provideService(Metric.MetricRegistry, new Map()))
  )
})

/**
 * Subscriber handling on the in-memory broker under `TestClock`, where a server adds nothing: every
 * message handled once, policy decisions (ack, term, retry, redeliver, dead-letter), defaults, and the
 * context a handler runs in. Delays are measured in test-clock time, so a 1-second backoff takes none.
 * The trace through real NATS headers stays in test/Subscriber.test.ts.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Logger, Option, Ref, References, Schedule, Scope } from "effect"
import { Broker } from "../../src/Broker.js"
import * as DeadLetter from "../../src/DeadLetter.js"
import * as Policy from "../../src/Policy.js"
import * as Publisher from "../../src/Publisher.js"
import * as Subscriber from "../../src/Subscriber.js"
import * as Testing from "../../src/testing.js"
import { consumerState, storedMessages } from "../support/Messaging.js"
import {
  atLeast,
  collecting,
  delayOf,
  Fatal,
  Flaky,
  FollowUp,
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

/** The handler's runs as test-clock times, recorded by `stamp`. */
const stamps = Effect.gen(function* () {
  const times = yield* Ref.make<ReadonlyArray<number>>([])
  const stamp = Effect.flatMap(Clock.currentTimeMillis, (now) => Ref.update(times, (list) => [...list, now]))
  return { times, stamp }
})

/** One message, and a subscriber on `durable` whose handler always fails with `Flaky`, stamping each run. */
const alwaysFlaky = (durable: string, policy: Policy.Policy<Flaky>) =>
  Effect.gen(function* () {
    yield* publishAll(1)
    const { times, stamp } = yield* stamps
    yield* run(
      Subscriber.make(Happened, {
        durable,
        policy,
        handler: () => stamp.pipe(Effect.andThen(Effect.fail(new Flaky())))
      })
    )
    return times
  })

const gaps = (times: ReadonlyArray<number>) => times.slice(1).map((time, i) => time - (times[i] ?? 0))

describe("Subscriber on the memory broker", () => {
  it.effect("handles every message once, in stream order at concurrency 1, and acks it", () =>
    withMemory(
      Effect.gen(function* () {
        yield* publishAll(30)
        const seen = yield* collecting("in-order")
        yield* settled(atLeast(seen, 30))
        expect(yield* Ref.get(seen)).toStrictEqual(Array.from({ length: 30 }, (_, i) => i + 1))
        for (let seq = 1; seq <= 30; seq++) {
          expect(yield* outcomeOf(seq)).toStrictEqual({ _tag: "Acked", deliveryCount: 1 })
        }
        const state = yield* consumerState("GLAM_EVENTS", "in-order")
        expect(state).toMatchObject({ numAckPending: 0, numRedelivered: 0, ackFloor: { streamSeq: 30 } })
        expect(yield* DeadLetter.list()).toHaveLength(0)
      })
    )
  )

  it.effect(
    "default durable name is <service>-<queue group>, and the broker gives up one delivery after the policy",
    () =>
      withMemory(
        Effect.gen(function* () {
          yield* run(
            Subscriber.make(Happened, {
              queueGroup: "workers",
              policy: Policy.make<never>({ rules: {}, maxDeliveries: 4 }),
              handler: () => Effect.void
            })
          )
          const info = yield* Broker.use((broker) => broker.consumerInfo("GLAM_EVENTS", "test-service-workers"))
          assert(Option.isSome(info))
          expect(info.value.config.maxDeliver).toBe(5)
          expect(info.value.config.filterSubject).toBe("evt.test.happened.v1")
        })
      )
  )

  it.effect("policy decisions: ack drops, term never redelivers, deadLetter writes a record first", () =>
    withMemory(
      Effect.gen(function* () {
        yield* publishAll(3)
        const runs = yield* Ref.make<ReadonlyArray<string>>([])
        const policy = Policy.make<TestError>({
          rules: { Skip: Policy.ack, Fatal: Policy.term, Invalid: Policy.deadLetter, Flaky: Policy.ack }
        })
        yield* run(
          Subscriber.make(Happened, {
            durable: "decisions",
            ackWait: "1 second",
            policy,
            handler: (envelope): Effect.Effect<void, TestError> => {
              const n = envelope.data.n
              return Ref.update(runs, (list) => [...list, `${n}#${envelope.data.key}`]).pipe(
                Effect.andThen(
                  Effect.fail<TestError>(
                    n === 1 ? new Skip() : n === 2 ? new Fatal() : new Invalid({ reason: "bad address" })
                  )
                )
              )
            }
          })
        )
        expect(yield* outcomeOf(1)).toStrictEqual({ _tag: "Acked", deliveryCount: 1 })
        expect(yield* outcomeOf(2)).toMatchObject({ _tag: "Termed", deliveryCount: 1 })
        const third = yield* outcomeOf(3)
        assert(third._tag === "DeadLettered")
        // past ten ack-waits: nothing came back
        yield* Testing.advance("10 seconds")
        expect(yield* Ref.get(runs)).toStrictEqual(["1#k", "2#k", "3#k"])
        expect(yield* consumerState("GLAM_EVENTS", "decisions")).toMatchObject({ numAckPending: 0, numRedelivered: 0 })
        const [entry, ...others] = yield* DeadLetter.list()
        assert(entry !== undefined)
        expect(others).toHaveLength(0)
        expect(entry.subject).toBe("dlq.test.happened.v1")
        expect(entry.record).toStrictEqual(third.record)
        expect(entry.record).toMatchObject({
          errorCode: "Invalid",
          decision: "policy",
          originalSubject: "evt.test.happened.v1",
          streamSeq: 3,
          deliveryCount: 1,
          consumer: "decisions"
        })
        expect(entry.record.errorMessage).toContain("bad address")
        const original = (yield* storedMessages("GLAM_EVENTS")).find((m) => m.seq === 3)
        assert(original !== undefined)
        expect(entry.record.originalPayload).toBe(new TextDecoder().decode(original.payload))
      })
    )
  )

  it.effect("retry in process, then dead-letter: the handler runs 1 + 2 times on one delivery, 50 ms apart", () =>
    withMemory(
      Effect.gen(function* () {
        const times = yield* alwaysFlaky(
          "retrying",
          Policy.make<Flaky>({
            rules: { Flaky: Policy.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 2 }))) }
          })
        )
        yield* settled(atLeast(times, 1))
        yield* Testing.advance("49 millis")
        expect(yield* Ref.get(times)).toHaveLength(1)
        yield* Testing.advance("1 second")
        expect(gaps(yield* Ref.get(times))).toStrictEqual([50, 50])
        const outcome = yield* outcomeOf(1)
        assert(outcome._tag === "DeadLettered")
        expect(outcome.record).toMatchObject({ deliveryCount: 1, errorCode: "Flaky" })
        expect(yield* DeadLetter.list()).toHaveLength(1)
      })
    )
  )

  it.effect("redeliver waits the scheduled delay between deliveries, and past maxDeliveries dead-letters", () =>
    withMemory(
      Effect.gen(function* () {
        const times = yield* alwaysFlaky(
          "redelivering",
          Policy.make<Flaky>({
            rules: { Flaky: Policy.redeliver(Schedule.spaced("700 millis")) },
            maxDeliveries: 3
          })
        )
        expect(delayOf(yield* outcomeOf(1, 1))).toBe(700)
        yield* Testing.advance("690 millis")
        expect(yield* Ref.get(times)).toHaveLength(1)
        yield* Testing.advance("2 seconds")
        expect(delayOf(yield* outcomeOf(1, 2))).toBe(700)
        expect(gaps(yield* Ref.get(times))).toStrictEqual([700, 700])
        const last = yield* outcomeOf(1, 3)
        assert(last._tag === "DeadLettered")
        expect(last.record).toMatchObject({ deliveryCount: 3, retryCount: 2, decision: "max deliveries" })
      })
    )
  )

  it.effect(
    "defaults: a defect is redelivered after the default backoff (about 1 s), a decode failure is dead-lettered at once",
    () =>
      withMemory(
        Effect.gen(function* () {
          const publisher = yield* Publisher.Publisher
          yield* publisher.publish(Happened, { n: 1, key: "k" })
          const { times, stamp } = yield* stamps
          yield* run(
            Subscriber.make(Happened, {
              durable: "defaults",
              handler: (envelope) =>
                stamp.pipe(
                  Effect.andThen(Ref.get(times)),
                  Effect.flatMap((list) =>
                    list.length === 1 ? Effect.die(new Error(`boom ${envelope.data.n}`)) : Effect.void
                  )
                )
            })
          )
          yield* Broker.use((broker) =>
            broker.publish({
              subject: "evt.test.happened.v1",
              payload: new TextEncoder().encode("not json at all"),
              headers: [],
              messageId: "garbage-1",
              timeout: Duration.seconds(5)
            })
          )
          const garbage = yield* outcomeOf(2)
          assert(garbage._tag === "DeadLettered")
          expect(garbage.record).toMatchObject({
            decision: "decode failure",
            deliveryCount: 1,
            originalPayloadBase64: Buffer.from("not json at all").toString("base64")
          })
          // 1 s, jittered by ±20 %
          const delay = delayOf(yield* outcomeOf(1)) ?? 0
          expect(delay).toBeGreaterThanOrEqual(800)
          expect(delay).toBeLessThanOrEqual(1200)
          yield* Testing.advance("1200 millis")
          expect(yield* outcomeOf(1, 2)).toStrictEqual({ _tag: "Acked", deliveryCount: 2 })
          const [gap] = gaps(yield* Ref.get(times))
          expect(gap).toBeGreaterThanOrEqual(delay)
          expect(gap).toBeLessThan(delay + 10)
        })
      )
  )

  it.effect(
    "the correlation id of a handled message reaches the events its handler publishes, and logs carry the context",
    () =>
      withMemory(
        Effect.gen(function* () {
          const publisher = yield* Publisher.Publisher
          const original = yield* publisher.publish(Happened, { n: 7, key: "k" }, { correlationId: "corr-123" })
          const annotations: Array<Record<string, unknown>> = []
          const capture = Logger.make((options) => {
            const message = Array.isArray(options.message) ? options.message[0] : options.message
            if (message === "handling") annotations.push({ ...options.fiber.getRef(References.CurrentLogAnnotations) })
          })
          const scope = yield* Scope.make()
          yield* Subscriber.make(Happened, {
            durable: "correlated",
            policy: Policy.defaults,
            handler: (envelope) =>
              Effect.log("handling").pipe(
                Effect.andThen(publisher.publish(FollowUp, { n: envelope.data.n })),
                Effect.asVoid
              )
          }).pipe(Effect.provide(Logger.layer([capture], { mergeWithExisting: true })), Scope.provide(scope))
          expect(yield* outcomeOf(original.seq)).toStrictEqual({ _tag: "Acked", deliveryCount: 1 })
          const followUps = yield* Testing.publishedEnvelopes({ subject: "evt.test.followed.v1" })
          expect(followUps).toHaveLength(1)
          expect(followUps[0]).toMatchObject({ correlationId: "corr-123", sourceService: "test-service" })
          expect(annotations).toStrictEqual([
            expect.objectContaining({
              event_id: original.eventId,
              event_type: "evt.test.happened.v1",
              correlation_id: "corr-123",
              source_service: "test-service",
              service: "test-service",
              entry_point: "event_listener"
            })
          ])
        })
      )
  )
})

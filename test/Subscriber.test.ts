/**
 * Subscriber handling on a real nats-server: every message handled once, policy decisions (ack, term,
 * retry, redeliver, dead-letter), defaults, and the context and trace a handler runs in.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Logger, Option, Ref, References, Schedule, Scope } from "effect"
import { Broker } from "../src/Broker.js"
import * as Policy from "../src/Policy.js"
import * as Publisher from "../src/Publisher.js"
import * as Subscriber from "../src/Subscriber.js"
import { eventually } from "./support/Eventually.js"
import { consumerState, deadLetters, storedMessages } from "./support/Messaging.js"

import {
  atLeast,
  callerSpanId,
  callerTraceId,
  Fatal,
  Flaky,
  FollowUp,
  Happened,
  Invalid,
  publishAll,
  recordingTracer,
  run,
  Skip,
  seenByHandler,
  type TestError,
  withMessaging
} from "./support/Subscribing.js"

describe("Subscriber", () => {
  it.live("handles every message once, in stream order at concurrency 1, and acks it", () =>
    withMessaging(
      Effect.gen(function* () {
        yield* publishAll(30)
        const seen = yield* Ref.make<ReadonlyArray<number>>([])
        yield* run(
          Subscriber.make(Happened, {
            durable: "in-order",
            handler: (envelope) => Ref.update(seen, (list) => [...list, envelope.data.n])
          })
        )
        yield* eventually(atLeast(seen, 30))
        expect(yield* Ref.get(seen)).toStrictEqual(Array.from({ length: 30 }, (_, i) => i + 1))
        const state = yield* eventually(
          Effect.flatMap(consumerState("GLAM_EVENTS", "in-order"), (s) =>
            s !== undefined && s.ackFloor.streamSeq === 30 ? Effect.succeed(s) : Effect.fail("acks pending")
          )
        )
        expect(state.numAckPending).toBe(0)
        expect(state.numRedelivered).toBe(0)
        expect(yield* deadLetters).toHaveLength(0)
      })
    )
  )

  it.live(
    "default durable name is <service>-<queue group>, and the server gives up one delivery after the policy",
    () =>
      withMessaging(
        Effect.gen(function* () {
          yield* run(
            Subscriber.make(Happened, {
              queueGroup: "workers",
              policy: Policy.make<never>({ rules: {}, maxDeliveries: 4 }),
              handler: () => Effect.void
            })
          )
          const broker = yield* Broker
          const info = yield* broker.consumerInfo("GLAM_EVENTS", "test-service-workers")
          assert(Option.isSome(info))
          expect(info.value.config.maxDeliver).toBe(5)
          expect(info.value.config.filterSubject).toBe("evt.test.happened.v1")
        })
      )
  )

  it.live("policy decisions: ack drops, term never redelivers, deadLetter writes a record first", () =>
    withMessaging(
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
        yield* eventually(atLeast(runs, 3))
        // past two ack-waits: nothing came back
        yield* Effect.sleep("2500 millis")
        expect(yield* Ref.get(runs)).toHaveLength(3)
        const state = yield* consumerState("GLAM_EVENTS", "decisions")
        expect(state?.numAckPending).toBe(0)
        expect(state?.numRedelivered).toBe(0)
        const letters = yield* deadLetters
        expect(letters).toHaveLength(1)
        const record = letters[0]?.envelope.data
        expect(letters[0]?.subject).toBe("dlq.test.happened.v1")
        expect(record.error_code).toBe("Invalid")
        expect(record.error_message).toContain("bad address")
        expect(record.decision).toBe("policy")
        expect(record.original_subject).toBe("evt.test.happened.v1")
        expect(record.stream_seq).toBe(3)
        expect(record.delivery_count).toBe(1)
        expect(record.consumer).toBe("decisions")
        const original = (yield* storedMessages("GLAM_EVENTS")).find((m) => m.seq === 3)
        assert(original !== undefined)
        expect(record.original_payload).toBe(new TextDecoder().decode(original.payload))
      })
    )
  )

  it.live("retry in process, then dead-letter: the handler runs 1 + 2 times on one delivery", () =>
    withMessaging(
      Effect.gen(function* () {
        yield* publishAll(1)
        const deliveries = yield* Ref.make<ReadonlyArray<number>>([])
        yield* run(
          Subscriber.make(Happened, {
            durable: "retrying",
            policy: Policy.make<Flaky>({
              rules: { Flaky: Policy.retry(Schedule.spaced("50 millis").pipe(Schedule.upTo({ times: 2 }))) }
            }),
            handler: () => Ref.update(deliveries, (list) => [...list, 1]).pipe(Effect.andThen(Effect.fail(new Flaky())))
          })
        )
        const letters = yield* eventually(
          Effect.flatMap(deadLetters, (list) => (list.length === 1 ? Effect.succeed(list) : Effect.fail("no record")))
        )
        expect(yield* Ref.get(deliveries)).toHaveLength(3)
        expect(letters[0]?.envelope.data.delivery_count).toBe(1)
        expect(letters[0]?.envelope.data.error_code).toBe("Flaky")
      })
    )
  )

  it.live("redeliver waits the scheduled delay between deliveries, and past maxDeliveries dead-letters", () =>
    withMessaging(
      Effect.gen(function* () {
        yield* publishAll(1)
        const deliveries = yield* Ref.make<ReadonlyArray<number>>([])
        yield* run(
          Subscriber.make(Happened, {
            durable: "redelivering",
            policy: Policy.make<Flaky>({
              rules: { Flaky: Policy.redeliver(Schedule.spaced("700 millis")) },
              maxDeliveries: 3
            }),
            handler: () =>
              Clock.currentTimeMillis.pipe(
                Effect.flatMap((now) => Ref.update(deliveries, (list) => [...list, now])),
                Effect.andThen(Effect.fail(new Flaky()))
              )
          })
        )
        const letters = yield* eventually(
          Effect.flatMap(deadLetters, (list) => (list.length === 1 ? Effect.succeed(list) : Effect.fail("no record")))
        )
        const times = yield* Ref.get(deliveries)
        expect(times).toHaveLength(3)
        expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(700)
        expect((times[2] ?? 0) - (times[1] ?? 0)).toBeGreaterThanOrEqual(700)
        const record = letters[0]?.envelope.data
        expect(record.delivery_count).toBe(3)
        expect(record.retry_count).toBe(2)
        expect(record.decision).toBe("max deliveries")
      })
    )
  )

  it.live(
    "defaults: a defect is redelivered after the default backoff (about 1 s), a decode failure is dead-lettered at once",
    () =>
      withMessaging(
        Effect.gen(function* () {
          const publisher = yield* Publisher.Publisher
          yield* publisher.publish(Happened, { n: 1, key: "k" })
          const deliveries = yield* Ref.make<ReadonlyArray<number>>([])
          yield* run(
            Subscriber.make(Happened, {
              durable: "defaults",
              handler: (envelope) =>
                Clock.currentTimeMillis.pipe(
                  Effect.flatMap((now) => Ref.update(deliveries, (list) => [...list, now])),
                  Effect.andThen(
                    Effect.flatMap(Ref.get(deliveries), (list) =>
                      list.length === 1 ? Effect.die(new Error(`boom ${envelope.data.n}`)) : Effect.void
                    )
                  )
                )
            })
          )
          const broker = yield* Broker
          yield* broker.publish({
            subject: "evt.test.happened.v1",
            payload: new TextEncoder().encode("not json at all"),
            headers: [],
            messageId: "garbage-1",
            timeout: Duration.seconds(5)
          })
          yield* eventually(atLeast(deliveries, 2))
          const times = yield* Ref.get(deliveries)
          expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(750)
          const letters = yield* eventually(
            Effect.flatMap(deadLetters, (list) => (list.length === 1 ? Effect.succeed(list) : Effect.fail("no record")))
          )
          expect(letters[0]?.envelope.data.decision).toBe("decode failure")
          expect(letters[0]?.envelope.data.delivery_count).toBe(1)
          expect(letters[0]?.envelope.data.original_payload_base64).toBe(
            Buffer.from("not json at all").toString("base64")
          )
        })
      )
  )

  it.live(
    "the correlation id of a handled message reaches the events its handler publishes, and logs carry the context",
    () =>
      withMessaging(
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
          const followUp = yield* eventually(
            Effect.flatMap(storedMessages("GLAM_EVENTS"), (messages) => {
              const found = messages.find((m) => m.subject === "evt.test.followed.v1")
              return found === undefined ? Effect.fail("no follow-up yet") : Effect.succeed(found)
            })
          )
          const body = JSON.parse(new TextDecoder().decode(followUp.payload))
          expect(body.correlation_id).toBe("corr-123")
          expect(body.source_service).toBe("test-service")
          const logged = annotations[0]
          expect(logged).toMatchObject({
            event_id: original.eventId,
            event_type: "evt.test.happened.v1",
            correlation_id: "corr-123",
            source_service: "test-service",
            service: "test-service",
            entry_point: "event_listener"
          })
        })
      )
  )

  it.live("with a tracer installed, the handler runs in a consumer span that continues the publisher's trace", () =>
    withMessaging(
      Effect.gen(function* () {
        const span = yield* seenByHandler(
          "traced",
          Effect.map(Effect.currentSpan, (span) => ({
            name: span.name,
            traceId: span.traceId,
            parent: Option.match(span.parent, { onNone: () => "", onSome: (p) => p.spanId })
          }))
        )
        expect(span.name).toBe("evt.test.happened.v1 process")
        expect(span.traceId).toBe(callerTraceId)
        // the parent is the publish span, a child of the caller's span
        expect(span.parent).toMatch(/^[0-9a-f]{16}$/)
        expect(span.parent).not.toBe(callerSpanId)
      }).pipe(Effect.withTracer(recordingTracer))
    )
  )

  it.live(
    "without a tracer no span is made per message, and the publisher's trace context still reaches the handler",
    () =>
      withMessaging(
        Effect.gen(function* () {
          const parent = yield* seenByHandler(
            "untraced",
            Effect.map(Effect.currentParentSpan, (span) => ({ tag: span._tag, traceId: span.traceId }))
          )
          // the handler's parent is what the traceparent header said, not a span of the subscriber's own
          expect(parent).toStrictEqual({ tag: "ExternalSpan", traceId: callerTraceId })
        })
      )
  )
})

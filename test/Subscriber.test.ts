import { assert, describe, expect, it } from "@effect/vitest"
import {
  Clock,
  Data,
  Duration,
  Effect,
  Exit,
  Logger,
  Option,
  Ref,
  References,
  Schedule,
  Schema,
  Scope,
  Tracer
} from "effect"
import { Broker } from "../src/Broker.js"
import * as Event from "../src/Event.js"
import * as Policy from "../src/Policy.js"
import * as Publisher from "../src/Publisher.js"
import * as Subscriber from "../src/Subscriber.js"
import { eventually } from "./support/Eventually.js"
import { consumerState, deadLetters, messaging, storedMessages } from "./support/Messaging.js"

const Happened = Event.make("evt.test.happened.v1", Schema.Struct({ n: Schema.Number, key: Schema.String }))
const FollowUp = Event.make("evt.test.followed.v1", Schema.Struct({ n: Schema.Number }))

class Skip extends Data.TaggedError("Skip")<{}> {}
class Fatal extends Data.TaggedError("Fatal")<{}> {}
class Invalid extends Data.TaggedError("Invalid")<{ readonly reason: string }> {}
class Flaky extends Data.TaggedError("Flaky")<{}> {}
type TestError = Skip | Fatal | Invalid | Flaky

const publishAll = (count: number, key: (n: number) => string = () => "k") =>
  Effect.flatMap(Publisher.Publisher, (publisher) =>
    publisher.publishAll(
      Array.from({ length: count }, (_, i) => ({ event: Happened, payload: { n: i + 1, key: key(i + 1) } })),
      { concurrency: 16 }
    )
  )

/** Runs a subscriber in a scope of its own, returning the scope to close it. */
const run = <E, R>(subscriber: Effect.Effect<void, E, R>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* subscriber.pipe(Scope.provide(scope))
    return scope
  })

const atLeast = <A>(ref: Ref.Ref<ReadonlyArray<A>>, count: number) =>
  Effect.flatMap(Ref.get(ref), (items) => (items.length >= count ? Effect.void : Effect.fail("not yet")))

const callerTraceId = "4bf92f3577b34da6a3ce929d0e0e4736"
const callerSpanId = "00f067aa0ba902b7"

/** Publishes one event under a caller's span and returns what `read` gave inside its handler. */
const seenByHandler = <A, E>(durable: string, read: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    const caller = Tracer.externalSpan({ traceId: callerTraceId, spanId: callerSpanId })
    yield* publisher.publish(Happened, { n: 1, key: "k" }).pipe(Effect.withParentSpan(caller))
    const seen = yield* Ref.make<ReadonlyArray<A>>([])
    yield* run(
      Subscriber.make(Happened, {
        durable,
        handler: () =>
          read.pipe(
            Effect.flatMap((value) => Ref.update(seen, (list) => [...list, value])),
            Effect.orDie
          )
      })
    )
    yield* eventually(atLeast(seen, 1))
    const [first] = yield* Ref.get(seen)
    if (first === undefined) return yield* Effect.die("nothing seen")
    return first
  })

/** A tracer other than the native one, so that the library builds its spans. */
const recordingTracer = Tracer.make({ span: (options) => Tracer.nativeTracer.span(options) })

const withMessaging = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, messaging())

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

  it.live("at most N handlers in flight, and N are used", () =>
    withMessaging(
      Effect.gen(function* () {
        yield* publishAll(24)
        const inFlight = yield* Ref.make(0)
        const peak = yield* Ref.make(0)
        const done = yield* Ref.make<ReadonlyArray<number>>([])
        yield* run(
          Subscriber.make(Happened, {
            durable: "bounded",
            concurrency: 4,
            handler: (envelope) =>
              Ref.updateAndGet(inFlight, (n) => n + 1).pipe(
                Effect.flatMap((now) => Ref.update(peak, (p) => Math.max(p, now))),
                Effect.andThen(Effect.sleep("100 millis")),
                Effect.andThen(Ref.update(inFlight, (n) => n - 1)),
                Effect.andThen(Ref.update(done, (list) => [...list, envelope.data.n]))
              )
          })
        )
        yield* eventually(atLeast(done, 24))
        expect(yield* Ref.get(peak)).toBe(4)
        expect([...(yield* Ref.get(done))].sort((a, b) => a - b)).toStrictEqual(
          Array.from({ length: 24 }, (_, i) => i + 1)
        )
      })
    )
  )

  it.live("orderBy keeps stream order per key at concurrency N", () =>
    withMessaging(
      Effect.gen(function* () {
        const keys = ["merchant-a", "merchant-b", "merchant-c", "merchant-d", "merchant-e"]
        yield* publishAll(60, (n) => keys[n % keys.length] ?? "x")
        const seen = yield* Ref.make<ReadonlyArray<{ key: string; n: number }>>([])
        yield* run(
          Subscriber.make(Happened, {
            durable: "per-key",
            concurrency: 4,
            orderBy: (envelope) => envelope.data.key,
            handler: (envelope) =>
              Effect.sleep(`${(envelope.data.n * 7) % 13} millis`).pipe(
                Effect.andThen(Ref.update(seen, (list) => [...list, { key: envelope.data.key, n: envelope.data.n }]))
              )
          })
        )
        yield* eventually(atLeast(seen, 60))
        const all = yield* Ref.get(seen)
        for (const key of keys) {
          const ns = all.filter((s) => s.key === key).map((s) => s.n)
          expect(ns).toStrictEqual([...ns].sort((a, b) => a - b))
          expect(ns).toHaveLength(12)
        }
      })
    )
  )

  it.live("a handler running 3× the ack-wait is not redelivered behind its back", () =>
    withMessaging(
      Effect.gen(function* () {
        yield* publishAll(1)
        const runs = yield* Ref.make<ReadonlyArray<number>>([])
        yield* run(
          Subscriber.make(Happened, {
            durable: "slow",
            ackWait: "1 second",
            handler: (envelope) =>
              Ref.update(runs, (list) => [...list, envelope.data.n]).pipe(Effect.andThen(Effect.sleep("3 seconds")))
          })
        )
        yield* Effect.sleep("4 seconds")
        expect(yield* Ref.get(runs)).toStrictEqual([1])
        const state = yield* consumerState("GLAM_EVENTS", "slow")
        expect(state?.numRedelivered).toBe(0)
        expect(state?.numAckPending).toBe(0)
        expect(state?.ackFloor.streamSeq).toBe(1)
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

  it.live("an orderBy that throws makes that message a defect for the policy; the others are handled", () =>
    withMessaging(
      Effect.gen(function* () {
        yield* publishAll(6, (n) => (n === 3 ? "" : `k${n % 2}`))
        const handled = yield* Ref.make<ReadonlyArray<number>>([])
        yield* run(
          Subscriber.make(Happened, {
            durable: "bad-key",
            concurrency: 2,
            orderBy: (envelope) => {
              if (envelope.data.key === "") throw new Error("no ordering key")
              return envelope.data.key
            },
            policy: Policy.make<never>({ rules: {}, defect: Policy.deadLetter }),
            handler: (envelope) => Ref.update(handled, (list) => [...list, envelope.data.n])
          })
        )
        const letters = yield* eventually(
          Effect.flatMap(deadLetters, (list) => (list.length === 1 ? Effect.succeed(list) : Effect.fail("no record")))
        )
        expect(letters[0]?.envelope.data.error_message).toBe("no ordering key")
        yield* eventually(atLeast(handled, 5))
        expect([...(yield* Ref.get(handled))].sort()).toStrictEqual([1, 2, 4, 5, 6])
      })
    )
  )

  it.live("a handler running past handlerTimeout is interrupted and goes to the defect rule", () =>
    withMessaging(
      Effect.gen(function* () {
        yield* publishAll(1)
        const finished = yield* Ref.make(0)
        yield* run(
          Subscriber.make(Happened, {
            durable: "timed",
            handlerTimeout: "300 millis",
            policy: Policy.make<never>({ rules: {}, defect: Policy.deadLetter }),
            handler: () => Effect.sleep("5 seconds").pipe(Effect.andThen(Ref.update(finished, (n) => n + 1)))
          })
        )
        const letters = yield* eventually(
          Effect.flatMap(deadLetters, (list) => (list.length === 1 ? Effect.succeed(list) : Effect.fail("no record")))
        )
        expect(letters[0]?.envelope.data.error_code).toBe("HandlerTimeout")
        expect(letters[0]?.envelope.data.error_message).toContain("300 ms")
        expect(yield* Ref.get(finished)).toBe(0)
      })
    )
  )

  it.live("a handler that interrupts itself gives its message back, and its worker goes on with the next", () =>
    withMessaging(
      Effect.gen(function* () {
        yield* publishAll(3)
        const deliveries = yield* Ref.make<ReadonlyArray<string>>([])
        yield* run(
          Subscriber.make(Happened, {
            durable: "self-interrupting",
            handler: (envelope) =>
              Effect.flatMap(
                Ref.updateAndGet(deliveries, (list) => [...list, `${envelope.data.n}`]),
                (list) => (envelope.data.n === 1 && list.length === 1 ? Effect.interrupt : Effect.void)
              )
          })
        )
        // message 1 is interrupted on its first delivery, nak'ed, and delivered again at once
        yield* eventually(atLeast(deliveries, 4))
        const seen = yield* Ref.get(deliveries)
        expect(seen.filter((n) => n === "1")).toHaveLength(2)
        expect([...new Set(seen)].sort()).toStrictEqual(["1", "2", "3"])
        // all three acked in the end
        yield* eventually(
          Effect.flatMap(consumerState("GLAM_EVENTS", "self-interrupting"), (s) =>
            s !== undefined && s.ackFloor.streamSeq === 3 && s.numAckPending === 0
              ? Effect.void
              : Effect.fail("acks pending")
          )
        )
      })
    )
  )

  it.live("graceful shutdown: 50 in flight finish and are acked; nothing is lost", () =>
    withMessaging(
      Effect.gen(function* () {
        yield* publishAll(80)
        const started = yield* Ref.make<ReadonlyArray<number>>([])
        const finished = yield* Ref.make<ReadonlyArray<number>>([])
        const scope = yield* run(
          Subscriber.make(Happened, {
            durable: "graceful",
            concurrency: 50,
            shutdownTimeout: "10 seconds",
            handler: (envelope) =>
              Ref.update(started, (list) => [...list, envelope.data.n]).pipe(
                Effect.andThen(Effect.sleep("1 second")),
                Effect.andThen(Ref.update(finished, (list) => [...list, envelope.data.n]))
              )
          })
        )
        yield* eventually(atLeast(started, 50))
        yield* Scope.close(scope, Exit.void)
        const finishedAtClose = yield* Ref.get(finished)
        expect(finishedAtClose.length).toBeGreaterThanOrEqual(50)
        expect(new Set(finishedAtClose).size).toBe(finishedAtClose.length)
        // every message that finished is acked; the others come back to the next subscriber
        const state = yield* eventually(
          Effect.flatMap(consumerState("GLAM_EVENTS", "graceful"), (s) =>
            s !== undefined && s.numAckPending === 0 ? Effect.succeed(s) : Effect.fail("unsettled")
          )
        )
        expect(state.numAckPending).toBe(0)
        const again = yield* Ref.make<ReadonlyArray<number>>([])
        yield* run(
          Subscriber.make(Happened, {
            durable: "graceful",
            handler: (envelope) => Ref.update(again, (list) => [...list, envelope.data.n])
          })
        )
        yield* eventually(atLeast(again, 80 - finishedAtClose.length))
        const all = new Set([...finishedAtClose, ...(yield* Ref.get(again))])
        expect(all.size).toBe(80)
        expect(yield* Ref.get(again)).not.toContain(finishedAtClose[0])
      })
    )
  )

  it.live("shutdown past its deadline interrupts handlers and naks them: none is acked unfinished", () =>
    withMessaging(
      Effect.gen(function* () {
        yield* publishAll(5)
        const started = yield* Ref.make<ReadonlyArray<number>>([])
        const finished = yield* Ref.make<ReadonlyArray<number>>([])
        const scope = yield* run(
          Subscriber.make(Happened, {
            durable: "impatient",
            concurrency: 5,
            shutdownTimeout: "200 millis",
            handler: (envelope) =>
              Ref.update(started, (list) => [...list, envelope.data.n]).pipe(
                Effect.andThen(Effect.sleep("30 seconds")),
                Effect.andThen(Ref.update(finished, (list) => [...list, envelope.data.n]))
              )
          })
        )
        yield* eventually(atLeast(started, 5))
        yield* Scope.close(scope, Exit.void)
        expect(yield* Ref.get(finished)).toHaveLength(0)
        const redelivered = yield* Ref.make<ReadonlyArray<number>>([])
        yield* run(
          Subscriber.make(Happened, {
            durable: "impatient",
            concurrency: 5,
            handler: (envelope) => Ref.update(redelivered, (list) => [...list, envelope.data.n])
          })
        )
        // nak'ed without delay: back well before the 30 s ack-wait
        yield* eventually(atLeast(redelivered, 5), { timeout: "5 seconds" })
        expect([...(yield* Ref.get(redelivered))].sort()).toStrictEqual([1, 2, 3, 4, 5])
      })
    )
  )
})

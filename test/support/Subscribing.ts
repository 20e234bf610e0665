/**
 * What the subscriber tests share: two events, the typed errors their handlers fail with, publishing a
 * numbered batch, running a subscriber in a scope of its own, reading what a handler saw, and the two
 * environments (a nats-server of its own, or the recorded in-memory broker on the test's clock).
 */
import { Data, Duration, Effect, Ref, Schema, Scope, Tracer } from "effect"
import * as Event from "../../src/Event.js"
import * as Streams from "../../src/glam/Streams.js"
import * as Publisher from "../../src/Publisher.js"
import * as Subscriber from "../../src/Subscriber.js"
import * as Testing from "../../src/testing.js"
import { eventually } from "./Eventually.js"
import { consumerState, messaging } from "./Messaging.js"

export const Happened = Event.make("evt.test.happened.v1", Schema.Struct({ n: Schema.Number, key: Schema.String }))
export const FollowUp = Event.make("evt.test.followed.v1", Schema.Struct({ n: Schema.Number }))

export class Skip extends Data.TaggedError("Skip")<{}> {}
export class Fatal extends Data.TaggedError("Fatal")<{}> {}
export class Invalid extends Data.TaggedError("Invalid")<{ readonly reason: string }> {}
export class Flaky extends Data.TaggedError("Flaky")<{}> {}
export type TestError = Skip | Fatal | Invalid | Flaky

export const publishAll = (count: number, key: (n: number) => string = () => "k") =>
  Effect.flatMap(Publisher.Publisher, (publisher) =>
    publisher.publishAll(
      Array.from({ length: count }, (_, i) => ({ event: Happened, payload: { n: i + 1, key: key(i + 1) } })),
      { concurrency: 16 }
    )
  )

/** Runs a subscriber in a scope of its own, returning the scope to close it. */
export const run = <E, R>(subscriber: Effect.Effect<void, E, R>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* subscriber.pipe(Scope.provide(scope))
    return scope
  })

export const atLeast = <A>(ref: Ref.Ref<ReadonlyArray<A>>, count: number) =>
  Effect.flatMap(Ref.get(ref), (items) => (items.length >= count ? Effect.void : Effect.fail("not yet")))

export const callerTraceId = "4bf92f3577b34da6a3ce929d0e0e4736"
export const callerSpanId = "00f067aa0ba902b7"

/** Publishes one event under a caller's span and returns what `read` gave inside its handler. */
export const seenByHandler = <A, E>(durable: string, read: Effect.Effect<A, E>) =>
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
export const recordingTracer = Tracer.make({ span: (options) => Tracer.nativeTracer.span(options) })

export const withMessaging = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, messaging())

/** The recorded in-memory broker with the GLAM topology, built on the test's clock (`TestClock` under `it.effect`). */
export const withMemory = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.provide(effect, Testing.layer({ topology: Streams.topology }))

/** What became of a delivery (the first unless given) of the message at `seq` in GLAM_EVENTS. */
export const outcomeOf = (seq: number, deliveryCount?: number) =>
  Testing.Recorder.use((recorder) => recorder.outcome(Streams.eventsName, seq, deliveryCount))

/** Waits for a condition without letting time pass: the memory tests move the clock themselves. */
export const settled = <A, E, R>(check: Effect.Effect<A, E, R>) => eventually(check, { withoutTime: true })

/** The nak delay of a redelivered outcome, in milliseconds; undefined for any other outcome. */
export const delayOf = (outcome: Testing.Outcome) =>
  outcome._tag === "Redelivered" ? Duration.toMillis(outcome.delay) : undefined

/** Runs a subscriber on `durable` that records the `n` of every message it handles, in the order handled. */
export const collecting = (durable: string, concurrency = 1) =>
  Effect.gen(function* () {
    const seen = yield* Ref.make<ReadonlyArray<number>>([])
    yield* run(
      Subscriber.make(Happened, {
        durable,
        concurrency,
        handler: (envelope) => Ref.update(seen, (list) => [...list, envelope.data.n])
      })
    )
    return seen
  })

/**
 * A handler running 3 s on a 1-second ack-wait, checked after `wait` has let 4 s pass: it ran once, and
 * the consumer shows nothing redelivered or unacknowledged.
 */
export const slowHandlerKept = <E, R>(wait: (duration: Duration.Input) => Effect.Effect<void, E, R>) =>
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
    yield* wait("4 seconds")
    return { runs: yield* Ref.get(runs), state: yield* consumerState("GLAM_EVENTS", "slow") }
  })

/**
 * Purging dead letters by age: what is removed and what stays (the records `list` shows afterwards, the
 * stream's state), the exact cut-off, a record's chunks kept with it, how few messages the search reads,
 * and the typed failures. On the in-memory broker under `TestClock`, where the stored times are the
 * clock's, and on a real nats-server, whose stored times are its own wall clock.
 */
import { assert, describe, expect, it, layer } from "@effect/vitest"
import { DateTime, Duration, Effect, Layer, Option } from "effect"
import { TestClock } from "effect/testing"
import { Broker } from "../src/Broker.js"
import * as DeadLetter from "../src/DeadLetter.js"
import * as Streams from "../src/glam/Streams.js"
import * as MemoryBroker from "../src/MemoryBroker.js"
import * as Messaging from "../src/Messaging.js"
import * as Topology from "../src/Topology.js"
import { deadLettered as storeAndDeadLetter } from "./support/DeadLetters.js"
import { messaging } from "./support/Messaging.js"

const bytes = (text: string) => new TextEncoder().encode(text)

/** Stores an event and dead-letters it; the record's sequence in the dead-letter stream. */
const deadLettered = (n: number) =>
  Effect.map(storeAndDeadLetter("evt.purge.item.v1", `e-${n}`, { n }), (receipt) => receipt.seq)

const deadLetters = (from: number, count: number) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => from + i),
    deadLettered
  )

/** The events behind the dead letters `list` shows, by their `n`. */
const listed = Effect.map(DeadLetter.list(), (entries) =>
  entries.map((entry) => ({ seq: entry.seq, n: entry.record.originalData?.n }))
)

const dlqState = Effect.flatMap(
  Broker.use((broker) => broker.streamInfo(Streams.deadLettersName)),
  Effect.fromOption
).pipe(Effect.map(({ state }) => ({ messages: state.messages, firstSeq: state.firstSeq, lastSeq: state.lastSeq })))

const start = DateTime.makeUnsafe("2026-03-01T10:00:00Z")
const at = (millis: number) => DateTime.makeUnsafe(DateTime.toEpochMillis(start) + millis)

// A new in-memory stack per test, built under the test's clock, set to `start`.
const onMemory = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.andThen(
    TestClock.setTime(DateTime.toEpochMillis(start)),
    effect.pipe(
      Effect.provide(Layer.fresh(Messaging.layerMemory({ topology: Streams.topology, service: "purge-test" })))
    )
  )

describe("DeadLetter.purge on the in-memory broker (TestClock)", () => {
  it.effect("removes the records stored longer ago than olderThan and keeps the newer; list shows only those", () =>
    onMemory(
      Effect.gen(function* () {
        expect(yield* deadLetters(1, 3)).toStrictEqual([1, 2, 3])
        yield* TestClock.adjust("2 seconds")
        expect(yield* deadLetters(4, 2)).toStrictEqual([4, 5])

        const purged = yield* DeadLetter.purge({ olderThan: "1 second" })
        expect(purged).toStrictEqual({ stream: "GLAM_DLQ", removed: 3, before: 4, cutoff: at(1000) })
        expect(yield* listed).toStrictEqual([
          { seq: 4, n: 4 },
          { seq: 5, n: 5 }
        ])
        expect(yield* dlqState).toStrictEqual({ messages: 2, firstSeq: 4, lastSeq: 5 })

        const again = yield* DeadLetter.purge({ stream: "GLAM_DLQ", olderThan: "1 second" })
        expect(again).toStrictEqual({ stream: "GLAM_DLQ", removed: 0, before: 4, cutoff: at(1000) })
        expect((yield* listed).map((entry) => entry.n)).toStrictEqual([4, 5])
      })
    )
  )

  it.effect("nothing older than the cut-off: nothing removed; an empty stream likewise", () =>
    onMemory(
      Effect.gen(function* () {
        const empty = yield* DeadLetter.purge({ olderThan: "1 second" })
        expect(empty).toStrictEqual({ stream: "GLAM_DLQ", removed: 0, before: 0, cutoff: at(-1000) })
        yield* deadLetters(1, 2)
        yield* TestClock.adjust("500 millis")
        const young = yield* DeadLetter.purge({ olderThan: "1 second" })
        expect(young).toStrictEqual({ stream: "GLAM_DLQ", removed: 0, before: 1, cutoff: at(-500) })
        expect((yield* listed).map((entry) => entry.n)).toStrictEqual([1, 2])
        expect(yield* dlqState).toStrictEqual({ messages: 2, firstSeq: 1, lastSeq: 2 })
      })
    )
  )

  it.effect("a record stored exactly at the cut-off stays; one millisecond later it goes", () =>
    onMemory(
      Effect.gen(function* () {
        yield* deadLetters(1, 1)
        yield* TestClock.adjust("1 second")
        yield* deadLetters(2, 1)
        expect((yield* DeadLetter.purge({ olderThan: "1 second" })).removed).toBe(0)
        yield* TestClock.adjust("1 millis")
        expect(yield* DeadLetter.purge({ olderThan: "1 second" })).toMatchObject({ removed: 1, before: 2 })
        expect((yield* listed).map((entry) => entry.n)).toStrictEqual([2])
      })
    )
  )

  it.effect("the chunks right in front of a record that stays are kept with it", () =>
    onMemory(
      Effect.gen(function* () {
        const broker = yield* Broker
        yield* deadLetters(1, 2)
        // A chunk stored before the cut-off whose record is stored after it (the record's write was retried).
        const chunk = yield* broker.publish({
          subject: "dlq._chunk.GLAM_EVENTS",
          payload: bytes("part of the original bytes"),
          headers: [],
          timeout: Duration.seconds(5)
        })
        expect(chunk.seq).toBe(3)
        yield* TestClock.adjust("2 seconds")
        yield* deadLetters(3, 1)
        expect(yield* DeadLetter.purge({ olderThan: "1 second" })).toMatchObject({ removed: 2, before: 3 })
        const kept = yield* broker.getMessage("GLAM_DLQ", 3)
        expect(Option.map(kept, (message) => message.subject)).toStrictEqual(Option.some("dlq._chunk.GLAM_EVENTS"))
        expect((yield* listed).map((entry) => entry.n)).toStrictEqual([3])
      })
    )
  )

  it.effect("finds the cut in a long stream with a few reads: 120 old records of 200 removed", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(DateTime.toEpochMillis(start))
      const memory = yield* MemoryBroker.make
      let reads = 0
      const counting = Broker.of({
        ...memory,
        getMessage: (stream, seq) =>
          Effect.andThen(
            Effect.sync(() => reads++),
            memory.getMessage(stream, seq)
          )
      })
      yield* Effect.gen(function* () {
        yield* deadLetters(1, 120)
        yield* TestClock.adjust("1 hour")
        yield* deadLetters(121, 80)
        reads = 0
        expect(yield* DeadLetter.purge({ olderThan: "30 minutes" })).toMatchObject({ removed: 120, before: 121 })
        expect(reads).toBeLessThanOrEqual(10)
        const entries = yield* DeadLetter.list()
        expect([entries.length, entries[0]?.seq, entries[0]?.record.originalData?.n]).toStrictEqual([80, 121, 121])
      }).pipe(
        Effect.provide(Messaging.layer({ topology: Streams.topology, service: "purge-test" })),
        Effect.provideService(Broker, counting)
      )
    })
  )

  it.effect("a stream that does not exist, or no dead-letter stream at all, fails with a typed StreamNotFound", () =>
    Effect.gen(function* () {
      const named = yield* DeadLetter.purge({ stream: "NOPE", olderThan: "1 day" }).pipe(Effect.flip)
      expect(named.reason).toMatchObject({ _tag: "StreamNotFound", stream: "NOPE" })
      expect(named.message).toBe("DeadLetter.purge: stream NOPE not found")
      const none = yield* DeadLetter.purge({ olderThan: "1 day" }).pipe(Effect.flip)
      assert(none.reason._tag === "StreamNotFound")
      expect(none.message).toContain("DeadLetter.purge: no dead-letter stream")
    }).pipe(
      Effect.provide(
        Layer.fresh(
          Messaging.layerMemory({
            topology: Topology.make({ streams: [{ name: "ORDERS", subjects: ["evt.orders.>"] }] }),
            service: "purge-test"
          })
        )
      )
    )
  )
})

describe("DeadLetter.purge on a real nats-server (real clock)", () => {
  layer(messaging({ service: "purge-test" }), { excludeTestServices: true })("server timestamps", (it) => {
    it.effect(
      "removes the records older than olderThan by the server's times, keeps the newer, then has nothing left to remove",
      () =>
        Effect.gen(function* () {
          expect(yield* deadLetters(1, 3)).toStrictEqual([1, 2, 3])
          yield* Effect.sleep("1500 millis")
          expect(yield* deadLetters(4, 2)).toStrictEqual([4, 5])

          const purged = yield* DeadLetter.purge({ olderThan: "1 second" })
          expect(purged).toMatchObject({ stream: "GLAM_DLQ", removed: 3, before: 4 })
          expect(yield* listed).toStrictEqual([
            { seq: 4, n: 4 },
            { seq: 5, n: 5 }
          ])
          expect(yield* dlqState).toStrictEqual({ messages: 2, firstSeq: 4, lastSeq: 5 })

          const young = yield* DeadLetter.purge({ olderThan: "1 minute" })
          expect(young).toMatchObject({ removed: 0, before: 4 })
          expect(yield* dlqState).toStrictEqual({ messages: 2, firstSeq: 4, lastSeq: 5 })
          expect(yield* deadLetters(6, 1)).toStrictEqual([6])
        })
    )
  })
})

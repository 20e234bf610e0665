/**
 * Contract scenarios through `Publisher` and `Subscriber`, as a service uses the library: many
 * publishers and subscribers at once, stream order at concurrency 1, a subscriber closed and opened
 * again, durables sharing a subject, a new durable reading history, and graceful shutdown.
 * Messages are counted by event id: nothing may be lost, and with no crash nothing may be handled twice.
 */
import { expect } from "@effect/vitest"
import { type Duration, Effect } from "effect"
import * as Publisher from "../../src/Publisher.js"
import * as Subscriber from "../../src/Subscriber.js"
import { eventually } from "../support/Eventually.js"
import {
  check,
  consumerState,
  duplicates,
  Item,
  messageCount,
  runScoped,
  type Scenario,
  stop,
  tally
} from "./Harness.js"

const items = (from: number, count: number) =>
  Array.from({ length: count }, (_, i) => ({ event: Item, payload: { n: from + i, key: `k${(from + i) % 7}` } }))

/** Publishes `count` items numbered from `from`, one at a time, so stream order is number order. */
const publishInOrder = (from: number, count: number) =>
  Effect.flatMap(Publisher.Publisher, (publisher) => publisher.publishAll(items(from, count), { concurrency: 1 }))

/**
 * A delivery that a closing subscriber's consume had taken but not emitted can miss its nak and come
 * back only after the ack-wait (NatsBroker today: see the scenario "a consume interrupted mid-flow");
 * the scenarios that close subscribers keep the ack-wait short, so that they check that nothing is lost
 * and leave promptness to that scenario.
 */
const closingAckWait = "2 seconds"

/** A subscriber on `durable` that records what it handled into `into`. */
const recorder = (
  durable: string,
  into: Array<number>,
  options: { readonly concurrency?: number; readonly pace?: Duration.Input } = {}
) =>
  Subscriber.make(Item, {
    durable,
    concurrency: options.concurrency ?? 1,
    ackWait: closingAckWait,
    handler: (envelope) =>
      Effect.sleep(options.pace ?? 0).pipe(Effect.andThen(Effect.sync(() => void into.push(envelope.data.n))))
  })

const reached = (list: ReadonlyArray<unknown>, count: number, what: string) =>
  eventually(
    Effect.suspend(() => check(list.length >= count, `${what}: ${list.length} of ${count}`)),
    { timeout: "12 seconds" }
  )

const settled = (durable: string, lastSeq: number) =>
  eventually(
    Effect.flatMap(consumerState(durable), (state) =>
      check(
        state.ackFloor.streamSeq === lastSeq && state.numAckPending === 0 && state.numPending === 0,
        `${durable}: ack floor ${state.ackFloor.streamSeq} of ${lastSeq}, ${state.numAckPending} unacknowledged`
      )
    ),
    { timeout: "12 seconds" }
  )

/**
 * The broker counts exactly `count` messages as not acknowledged: never delivered (pending) or delivered
 * and not acked (given back with a nak but not delivered again counts as either, depending on the broker).
 */
const unfinishedOnly = (durable: string, count: number) =>
  eventually(
    Effect.flatMap(consumerState(durable), (state) =>
      check(
        state.numPending + state.numAckPending === count,
        `${durable}: ${state.numPending} pending + ${state.numAckPending} unacknowledged, want ${count} in all`
      )
    )
  )

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i)
const sorted = (ns: ReadonlyArray<number>) => [...ns].sort((a, b) => a - b)

export const manyPublishersAndSubscribers: Scenario = {
  name: "4 publishers × 1,000 (publishAll) and 2 subscribers on one durable plus 1 on another: none lost, none duplicated",
  timeout: 40_000,
  run: Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    const sharedA: Array<string> = []
    const sharedB: Array<string> = []
    const other: Array<string> = []
    const subscriber = (durable: string, into: Array<string>) =>
      runScoped(
        Subscriber.make(Item, {
          durable,
          concurrency: 8,
          prefetch: 32,
          handler: (envelope) => Effect.sync(() => void into.push(envelope.eventId))
        })
      )
    yield* subscriber("shared", sharedA)
    yield* subscriber("shared", sharedB)
    yield* subscriber("other", other)

    const batches = yield* Effect.forEach(
      range(0, 4),
      (p) => publisher.publishAll(items(p * 1000 + 1, 1000), { concurrency: 64 }),
      { concurrency: 4 }
    )
    const receipts = batches.flat()
    expect(receipts.filter((receipt) => receipt.duplicate)).toHaveLength(0)
    expect(new Set(receipts.map((receipt) => receipt.seq)).size).toBe(4000)
    const published = new Set(receipts.map((receipt) => receipt.eventId))

    yield* eventually(
      Effect.suspend(() =>
        check(
          sharedA.length + sharedB.length >= 4000 && other.length >= 4000,
          `shared ${sharedA.length}+${sharedB.length}, other ${other.length} of 4000`
        )
      ),
      { timeout: "30 seconds" }
    )
    yield* settled("shared", 4000)
    yield* settled("other", 4000)
    const shared = tally([...sharedA, ...sharedB])
    const alone = tally(other)
    expect([duplicates(shared), duplicates(alone)]).toStrictEqual([0, 0])
    expect(new Set(shared.keys())).toStrictEqual(published)
    expect(new Set(alone.keys())).toStrictEqual(published)
    // One durable shares its messages out between the instances consuming it.
    expect(sharedA.length).toBeGreaterThan(0)
    expect(sharedB.length).toBeGreaterThan(0)
    expect(yield* messageCount("GLAM_EVENTS")).toBe(4000)
  })
}

export const orderAtConcurrencyOne: Scenario = {
  name: "order: a subscriber at concurrency 1 handles messages in stream order",
  run: Effect.gen(function* () {
    const publisher = yield* Publisher.Publisher
    // Published 16 at a time: stream order, not number order, is what must be kept.
    const receipts = yield* publisher.publishAll(items(1, 200), { concurrency: 16 })
    const inStreamOrder = [...receipts].sort((a, b) => a.seq - b.seq).map((receipt) => receipt.eventId)
    const seen: Array<string> = []
    yield* runScoped(
      Subscriber.make(Item, {
        durable: "ordered",
        concurrency: 1,
        handler: (envelope) =>
          Effect.sleep(`${envelope.data.n % 3} millis`).pipe(
            Effect.andThen(Effect.sync(() => void seen.push(envelope.eventId)))
          )
      })
    )
    yield* reached(seen, 200, "ordered")
    yield* settled("ordered", 200)
    expect(seen).toStrictEqual(inStreamOrder)
  })
}

export const closeAndReopen: Scenario = {
  name: "close and reopen: a subscriber opened again continues where the closed one stopped, nothing lost or repeated",
  run: Effect.gen(function* () {
    yield* publishInOrder(1, 100)
    const firstRun: Array<number> = []
    const scope = yield* runScoped(recorder("resumable", firstRun, { pace: "10 millis" }))
    yield* reached(firstRun, 40, "first run")
    yield* stop(scope)
    const stoppedAt = [...firstRun]
    expect(stoppedAt.length).toBeLessThan(100)
    yield* publishInOrder(101, 50)
    // What it handled is acknowledged, nothing else is.
    yield* unfinishedOnly("resumable", 150 - stoppedAt.length)
    expect((yield* consumerState("resumable")).ackFloor.streamSeq).toBe(stoppedAt.length)
    const secondRun: Array<number> = []
    yield* runScoped(recorder("resumable", secondRun))
    yield* reached(secondRun, 150 - stoppedAt.length, "second run")
    yield* settled("resumable", 150)
    // The first run stopped at a point of the stream (concurrency 1 acks in order); the second handled
    // exactly the rest. Its order may differ by a delivery in flight at the close (back after the ack-wait).
    expect(stoppedAt).toStrictEqual(range(1, stoppedAt.length))
    expect(sorted(secondRun)).toStrictEqual(range(stoppedAt.length + 1, 150 - stoppedAt.length))
  })
}

export const twoDurables: Scenario = {
  name: "two durables on the same subject each receive every message once",
  run: Effect.gen(function* () {
    yield* publishInOrder(1, 50)
    const groupA: Array<number> = []
    const groupB: Array<number> = []
    yield* runScoped(recorder("group-a", groupA, { concurrency: 4 }))
    yield* runScoped(recorder("group-b", groupB, { concurrency: 4 }))
    yield* publishInOrder(51, 50)
    yield* reached(groupA, 100, "group-a")
    yield* reached(groupB, 100, "group-b")
    yield* settled("group-a", 100)
    yield* settled("group-b", 100)
    expect(sorted(groupA)).toStrictEqual(range(1, 100))
    expect(sorted(groupB)).toStrictEqual(range(1, 100))
  })
}

export const newDurableReadsHistory: Scenario = {
  name: "a new durable reads history with deliver policy all; new starts after it, last at the last message",
  run: Effect.gen(function* () {
    yield* publishInOrder(1, 50)
    const all: Array<number> = []
    const fresh: Array<number> = []
    const last: Array<number> = []
    yield* runScoped(recorder("history-all", all))
    yield* runScoped(
      Subscriber.make(Item, {
        durable: "history-new",
        deliverPolicy: "new",
        handler: (envelope) => Effect.sync(() => void fresh.push(envelope.data.n))
      })
    )
    yield* runScoped(
      Subscriber.make(Item, {
        durable: "history-last",
        deliverPolicy: "last",
        handler: (envelope) => Effect.sync(() => void last.push(envelope.data.n))
      })
    )
    yield* publishInOrder(51, 5)
    yield* reached(all, 55, "history-all")
    yield* reached(fresh, 5, "history-new")
    yield* reached(last, 6, "history-last")
    yield* settled("history-all", 55)
    yield* settled("history-new", 55)
    yield* settled("history-last", 55)
    expect(all).toStrictEqual(range(1, 55))
    expect(fresh).toStrictEqual(range(51, 5))
    expect(last).toStrictEqual(range(50, 6))
  })
}

export const gracefulShutdown: Scenario = {
  name: "graceful shutdown mid-stream: running handlers finish or are given back, a new subscriber gets the rest, nothing acked unfinished",
  run: Effect.gen(function* () {
    yield* publishInOrder(1, 60)
    const started: Array<number> = []
    const finished: Array<number> = []
    const scope = yield* runScoped(
      Subscriber.make(Item, {
        durable: "graceful",
        ackWait: closingAckWait,
        concurrency: 8,
        shutdownTimeout: "300 millis",
        // Every fifth handler outlasts the shutdown deadline and is interrupted.
        handler: (envelope) =>
          Effect.sync(() => void started.push(envelope.data.n)).pipe(
            Effect.andThen(Effect.sleep(envelope.data.n % 5 === 0 ? "5 seconds" : "100 millis")),
            Effect.andThen(Effect.sync(() => void finished.push(envelope.data.n)))
          )
      })
    )
    yield* reached(started, 20, "started")
    yield* stop(scope)
    const finishedAtClose = [...finished]
    const interrupted = started.filter((n) => !finishedAtClose.includes(n))
    expect(interrupted.length).toBeGreaterThan(0)
    yield* unfinishedOnly("graceful", 60 - finishedAtClose.length)

    const rest: Array<number> = []
    yield* runScoped(recorder("graceful", rest, { concurrency: 8 }))
    yield* reached(rest, 60 - finishedAtClose.length, "second subscriber")
    yield* settled("graceful", 60)
    // Nothing finished comes back, and everything unfinished (interrupted ones included) does.
    expect(rest.filter((n) => finishedAtClose.includes(n))).toStrictEqual([])
    expect(sorted([...finishedAtClose, ...rest])).toStrictEqual(range(1, 60))
    expect(interrupted.every((n) => rest.includes(n))).toBe(true)
  })
}

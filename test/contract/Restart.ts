/**
 * The contract scenario only a broker with a server has: the server restarted twice under a publisher
 * and a subscriber that keep going. The publisher rides it out with its retry (same `Nats-Msg-Id`, so
 * nothing is stored twice), the subscriber's consume survives it; every event is handled at least once.
 * Duplicates are possible here (acks in flight when the server stops) and are counted, not forbidden.
 */
import { expect } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as Publisher from "../../src/Publisher.js"
import * as Subscriber from "../../src/Subscriber.js"
import { eventually, NotYet } from "../support/Eventually.js"
import { check, consumerState, duplicates, Item, messageCount, runScoped, type Scenario, tally } from "./Harness.js"

const total = 10_000

export const serverRestart = <R>(restart: Effect.Effect<void, unknown, R>): Scenario<R> => ({
  name: `server restarts at one third and one half of ${total.toLocaleString("en")} messages lose nothing`,
  realTime: true,
  timeout: 60_000,
  run: Effect.gen(function* () {
    // A short timeout per attempt: publishes in flight when the server stops are retried soon.
    const publisher = yield* Publisher.make({ timeout: "1 second" })
    const handled: Array<string> = []
    yield* runScoped(
      Subscriber.make(Item, {
        durable: "survivor",
        // Acks sent while the server is down are lost: their messages come back after this ack-wait.
        ackWait: "2 seconds",
        concurrency: 16,
        prefetch: 64,
        handler: (envelope) => Effect.sync(() => void handled.push(envelope.eventId))
      })
    )
    let published = 0
    const publishing = yield* Effect.forEach(
      Array.from({ length: total }, (_, i) => i + 1),
      (n) =>
        publisher.publish(Item, { n, key: `k${n % 7}` }).pipe(Effect.tap(() => Effect.sync(() => void published++))),
      { concurrency: 64 }
    ).pipe(Effect.forkScoped)
    const restarts: Array<number> = []
    for (const at of [Math.ceil(total / 3), total / 2]) {
      // A publish that gives up fails the publishing fiber: that failure, not a timeout, is the outcome.
      yield* Effect.raceFirst(
        eventually(
          Effect.suspend(() => check(published >= at, `${published} published`)),
          { timeout: "30 seconds" }
        ),
        Effect.andThen(Fiber.join(publishing), Effect.fail(new NotYet({ message: "publishing ended early" })))
      )
      restarts.push(published)
      yield* restart
    }
    const receipts = yield* Fiber.join(publishing)
    const ids = new Set(receipts.map((receipt) => receipt.eventId))
    expect(ids.size).toBe(total)

    yield* eventually(
      Effect.suspend(() => check(new Set(handled).size >= total, `${new Set(handled).size} of ${total} handled`)),
      { timeout: "40 seconds" }
    )
    yield* eventually(
      Effect.flatMap(consumerState("survivor"), (state) =>
        check(state.numAckPending === 0 && state.numPending === 0, `${state.numAckPending} unacknowledged`)
      )
    )
    const counts = tally(handled)
    expect(new Set(counts.keys())).toStrictEqual(ids)
    // The retried publishes kept their message ids: the stream holds each event once.
    expect(yield* messageCount("GLAM_EVENTS")).toBe(total)
    yield* Effect.logInfo(
      `server restarts after ${restarts.join(" and ")} publishes: ${total} events handled, ${duplicates(counts)} duplicate handlings`
    )
  })
})

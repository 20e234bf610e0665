/**
 * A subscriber's workers on a real nats-server: concurrency and order by key, ack-wait kept by `working`,
 * handler timeouts, interruption, and shutdown that finishes or gives back what is in flight.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Ref, Scope } from "effect"
import * as Policy from "../src/Policy.js"
import * as Subscriber from "../src/Subscriber.js"
import { eventually } from "./support/Eventually.js"
import { consumerState, deadLetters } from "./support/Messaging.js"
import { atLeast, Happened, publishAll, run, withMessaging } from "./support/Subscribing.js"

describe("Subscriber workers", () => {
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

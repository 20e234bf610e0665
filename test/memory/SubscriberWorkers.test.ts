/**
 * A subscriber's workers on the in-memory broker under `TestClock`: the concurrency bound, order by key,
 * `working` keeping a long handler's message, handler timeouts, interruption, and shutdown that
 * finishes or gives back what is in flight. Handlers sleep on the test clock, which the tests move.
 * The ack-wait of a real nats-server stays in test/Subscriber.test.ts.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Exit, Fiber, Ref, Scope } from "effect"
import * as DeadLetter from "../../src/DeadLetter.js"
import * as Policy from "../../src/Policy.js"
import * as Subscriber from "../../src/Subscriber.js"
import * as Testing from "../../src/testing.js"
import { consumerState } from "../support/Messaging.js"
import {
  atLeast,
  collecting,
  delayOf,
  Happened,
  outcomeOf,
  publishAll,
  run,
  settled,
  slowHandlerKept,
  withMemory
} from "../support/Subscribing.js"

const byNumber = (list: ReadonlyArray<number>) => [...list].sort((a, b) => a - b)
const oneTo = (count: number) => Array.from({ length: count }, (_, i) => i + 1)

/** `count` messages and a subscriber whose handlers sleep `sleep`, recording which started and which finished. */
const sleepers = (options: {
  readonly durable: string
  readonly count: number
  readonly concurrency: number
  readonly shutdownTimeout: Duration.Input
  readonly sleep: Duration.Input
}) =>
  Effect.gen(function* () {
    yield* publishAll(options.count)
    const started = yield* Ref.make<ReadonlyArray<number>>([])
    const finished = yield* Ref.make<ReadonlyArray<number>>([])
    const scope = yield* run(
      Subscriber.make(Happened, {
        durable: options.durable,
        concurrency: options.concurrency,
        shutdownTimeout: options.shutdownTimeout,
        handler: (envelope) =>
          Ref.update(started, (list) => [...list, envelope.data.n]).pipe(
            Effect.andThen(Effect.sleep(options.sleep)),
            Effect.andThen(Ref.update(finished, (list) => [...list, envelope.data.n]))
          )
      })
    )
    yield* settled(atLeast(started, Math.min(options.count, options.concurrency)))
    return { started, finished, scope }
  })

/** Closes a subscriber's scope while the clock moves `by`, since its shutdown waits on handlers that sleep. */
const closeWhileAdvancing = (scope: Scope.Closeable, by: Duration.Input) =>
  Effect.gen(function* () {
    const closing = yield* Scope.close(scope, Exit.void).pipe(Effect.forkChild)
    yield* Testing.advance(by)
    yield* Fiber.join(closing)
  })

describe("Subscriber workers on the memory broker", () => {
  it.effect("at most N handlers in flight, and N are used: 24 messages of 100 ms at 4 take 600 ms", () =>
    withMemory(
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
        yield* Testing.advance("590 millis")
        expect(yield* Ref.get(done)).toHaveLength(20)
        yield* Testing.advance("10 millis")
        expect(yield* Ref.get(peak)).toBe(4)
        expect(byNumber(yield* Ref.get(done))).toStrictEqual(oneTo(24))
      })
    )
  )

  it.effect("orderBy keeps stream order per key at concurrency N", () =>
    withMemory(
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
        yield* Testing.advance("1 second")
        const all = yield* Ref.get(seen)
        expect(all).toHaveLength(60)
        for (const key of keys) {
          const ns = all.filter((s) => s.key === key).map((s) => s.n)
          expect(ns).toStrictEqual(byNumber(ns))
          expect(ns).toHaveLength(12)
        }
      })
    )
  )

  it.effect("a handler running 3× the ack-wait is kept by working, not redelivered behind its back", () =>
    withMemory(
      Effect.gen(function* () {
        const { runs, state } = yield* slowHandlerKept(Testing.advance)
        expect(runs).toStrictEqual([1])
        expect(yield* outcomeOf(1)).toStrictEqual({ _tag: "Acked", deliveryCount: 1 })
        expect(state).toMatchObject({ numRedelivered: 0, numAckPending: 0, ackFloor: { streamSeq: 1 } })
      })
    )
  )

  it.effect("an orderBy that throws makes that message a defect for the policy; the others are handled", () =>
    withMemory(
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
        const bad = yield* outcomeOf(3)
        assert(bad._tag === "DeadLettered")
        expect(bad.record.errorMessage).toBe("no ordering key")
        yield* settled(atLeast(handled, 5))
        expect(byNumber(yield* Ref.get(handled))).toStrictEqual([1, 2, 4, 5, 6])
        expect(yield* DeadLetter.list()).toHaveLength(1)
      })
    )
  )

  it.effect("a handler running past handlerTimeout is interrupted at that time and goes to the defect rule", () =>
    withMemory(
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
        yield* Testing.advance("290 millis")
        expect(yield* DeadLetter.list()).toHaveLength(0)
        yield* Testing.advance("10 millis")
        const outcome = yield* outcomeOf(1)
        assert(outcome._tag === "DeadLettered")
        expect(outcome.record.errorCode).toBe("HandlerTimeout")
        expect(outcome.record.errorMessage).toContain("300 ms")
        yield* Testing.advance("10 seconds")
        expect(yield* Ref.get(finished)).toBe(0)
      })
    )
  )

  it.effect("a handler that interrupts itself gives its message back, and its worker goes on with the next", () =>
    withMemory(
      Effect.gen(function* () {
        yield* publishAll(3)
        const deliveries = yield* Ref.make<ReadonlyArray<number>>([])
        yield* run(
          Subscriber.make(Happened, {
            durable: "self-interrupting",
            handler: (envelope) =>
              Effect.flatMap(
                Ref.updateAndGet(deliveries, (list) => [...list, envelope.data.n]),
                (list) => (envelope.data.n === 1 && list.length === 1 ? Effect.interrupt : Effect.void)
              )
          })
        )
        // message 1 is interrupted on its first delivery, nak'ed without delay, and delivered again: no time passes
        expect(delayOf(yield* outcomeOf(1, 1))).toBe(0)
        expect(yield* outcomeOf(1, 2)).toStrictEqual({ _tag: "Acked", deliveryCount: 2 })
        expect(yield* outcomeOf(2)).toStrictEqual({ _tag: "Acked", deliveryCount: 1 })
        expect(yield* outcomeOf(3)).toStrictEqual({ _tag: "Acked", deliveryCount: 1 })
        expect(byNumber(yield* Ref.get(deliveries))).toStrictEqual([1, 1, 2, 3])
      })
    )
  )

  it.effect("graceful shutdown: 50 in flight finish and are acked; nothing is lost", () =>
    withMemory(
      Effect.gen(function* () {
        const { started, finished, scope } = yield* sleepers({
          durable: "graceful",
          count: 80,
          concurrency: 50,
          shutdownTimeout: "10 seconds",
          sleep: "1 second"
        })
        yield* closeWhileAdvancing(scope, "1 second")
        const finishedAtClose = yield* Ref.get(finished)
        expect(byNumber(finishedAtClose)).toStrictEqual(byNumber(yield* Ref.get(started)))
        expect(finishedAtClose).toHaveLength(50)
        for (const n of finishedAtClose) expect((yield* outcomeOf(n))._tag).toBe("Acked")
        // The 30 held behind them (prefetch 256) were given back: pending again, none acked unhandled.
        expect((yield* consumerState("GLAM_EVENTS", "graceful"))?.numAckPending).toBe(30)
        const again = yield* collecting("graceful")
        yield* settled(atLeast(again, 30))
        expect(byNumber([...finishedAtClose, ...(yield* Ref.get(again))])).toStrictEqual(oneTo(80))
      })
    )
  )

  it.effect("shutdown past its deadline interrupts handlers and naks them: none is acked unfinished", () =>
    withMemory(
      Effect.gen(function* () {
        const { started, finished, scope } = yield* sleepers({
          durable: "impatient",
          count: 5,
          concurrency: 5,
          shutdownTimeout: "200 millis",
          sleep: "30 seconds"
        })
        expect(yield* Ref.get(started)).toHaveLength(5)
        yield* closeWhileAdvancing(scope, "200 millis")
        expect(yield* Ref.get(finished)).toHaveLength(0)
        for (const seq of oneTo(5)) expect(delayOf(yield* outcomeOf(seq))).toBe(0)
        const redelivered = yield* collecting("impatient", 5)
        // nak'ed without delay: back with no time passing, not after the 30 s ack-wait
        yield* settled(atLeast(redelivered, 5))
        expect(byNumber(yield* Ref.get(redelivered))).toStrictEqual(oneTo(5))
      })
    )
  )
})

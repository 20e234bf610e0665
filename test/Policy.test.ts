import { describe, expect, it } from "@effect/vitest"
import { Data, Duration, Effect, Exit, Fiber, Ref, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { DecodeError } from "../src/Envelope.js"
import * as Policy from "../src/Policy.js"

class Unavailable extends Data.TaggedError("Unavailable")<{}> {}
class InvalidAddress extends Data.TaggedError("InvalidAddress")<{}> {}
class Unsubscribed extends Data.TaggedError("Unsubscribed")<{}> {}
type EmailError = Unavailable | InvalidAddress | Unsubscribed

const error = <E>(e: E): Policy.Failure<E> => ({ _tag: "Error", error: e })
const decodeFailure: Policy.Failure<never> = {
  _tag: "Decode",
  error: new DecodeError({ stage: "Json", message: "not JSON", raw: new Uint8Array([1, 2]) })
}
const defect: Policy.Failure<never> = { _tag: "Defect", defect: new Error("boom") }
const millis = (settlement: Policy.Settlement) =>
  settlement._tag === "Nak" ? Duration.toMillis(settlement.delay) : settlement._tag

describe("Policy", () => {
  it("checks the rule set against the handler's error union", () => {
    // every tag has a rule: fine
    Policy.make<EmailError>({
      rules: { Unavailable: Policy.ack, InvalidAddress: Policy.term, Unsubscribed: Policy.ack }
    })
    // a default covers the tags left out: fine
    Policy.make<EmailError>({ rules: { InvalidAddress: Policy.term }, default: Policy.deadLetter })
    // @ts-expect-error a tag without a rule and no default does not compile
    Policy.make<EmailError>({ rules: { Unavailable: Policy.ack, InvalidAddress: Policy.term } })
    // @ts-expect-error a tag that is not in the union does not compile
    Policy.make<EmailError>({ rules: { Unavailable: Policy.ack, InvalidAddress: Policy.term, Nope: Policy.ack } })
    // @ts-expect-error errors without a tag need a default
    Policy.make<string>({ rules: {} })
    Policy.make<string>({ default: Policy.term })
    expect(Policy.defaults.maxDeliveries).toBe(5)
  })

  it("refuses a maxDeliveries that is not a positive integer", () => {
    expect(() => Policy.make<never>({ rules: {}, maxDeliveries: 0 })).toThrow(/maxDeliveries/)
  })

  it.effect("settles each tag by its rule", () =>
    Effect.gen(function* () {
      const policy = Policy.compile(
        Policy.make<EmailError>({
          rules: {
            Unavailable: Policy.redeliver(Schedule.exponential("1 second")),
            InvalidAddress: Policy.deadLetter,
            Unsubscribed: Policy.ack
          }
        })
      )
      expect(yield* policy.settle(error(new Unsubscribed()), 1)).toStrictEqual({ _tag: "Ack" })
      expect(yield* policy.settle(error(new InvalidAddress()), 1)).toStrictEqual({
        _tag: "DeadLetter",
        maxDeliveriesReached: false
      })
      const delays = []
      for (const deliveryCount of [1, 2, 3, 4]) {
        delays.push(millis(yield* policy.settle(error(new Unavailable()), deliveryCount)))
      }
      expect(delays).toStrictEqual([1000, 2000, 4000, 8000])
    })
  )

  it.effect("past maxDeliveries a redelivery becomes a dead letter", () =>
    Effect.gen(function* () {
      const policy = Policy.compile(
        Policy.make<Unavailable>({
          rules: { Unavailable: Policy.redeliver(Schedule.spaced("1 second")) },
          maxDeliveries: 3
        })
      )
      expect(millis(yield* policy.settle(error(new Unavailable()), 2))).toBe(1000)
      expect(yield* policy.settle(error(new Unavailable()), 3)).toStrictEqual({
        _tag: "DeadLetter",
        maxDeliveriesReached: true
      })
    })
  )

  it.effect("defaults: decode failures dead-letter, defects and unmatched errors redeliver with backoff", () =>
    Effect.gen(function* () {
      const policy = Policy.compile(
        Policy.make<EmailError>({ rules: { Unsubscribed: Policy.ack }, default: Policy.redeliverWithBackoff })
      )
      expect(yield* policy.settle(decodeFailure, 1)).toStrictEqual({ _tag: "DeadLetter", maxDeliveriesReached: false })
      const first = yield* policy.settle(defect, 1)
      const third = yield* policy.settle(error(new Unavailable()), 3)
      // 1 s and 4 s, jittered by ±20 %
      expect(millis(first)).toBeGreaterThanOrEqual(800)
      expect(millis(first)).toBeLessThanOrEqual(1200)
      expect(millis(third)).toBeGreaterThanOrEqual(3200)
      expect(millis(third)).toBeLessThanOrEqual(4800)
      expect((yield* policy.settle(defect, 5))._tag).toBe("DeadLetter")
    })
  )

  it.effect("the default backoff never waits more than 5 minutes", () =>
    Effect.gen(function* () {
      const policy = Policy.compile(Policy.make<never>({ rules: {}, maxDeliveries: 100 }))
      const late = yield* policy.settle(defect, 20)
      expect(millis(late)).toBe(300_000)
    })
  )

  it.effect("a used-up redelivery schedule falls through to the next step, and the chain ends in a dead letter", () =>
    Effect.gen(function* () {
      const chained = Policy.compile(
        Policy.make<Unavailable>({
          rules: {
            Unavailable: Policy.redeliver(Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 2 }))).pipe(
              Policy.andThen(Policy.term)
            )
          },
          maxDeliveries: 10
        })
      )
      expect(millis(yield* chained.settle(error(new Unavailable()), 2))).toBe(1000)
      expect(yield* chained.settle(error(new Unavailable()), 3)).toStrictEqual({ _tag: "Term" })
      const unchained = Policy.compile(
        Policy.make<Unavailable>({
          rules: { Unavailable: Policy.redeliver(Schedule.spaced("1 second").pipe(Schedule.upTo({ times: 2 }))) },
          maxDeliveries: 10
        })
      )
      expect(yield* unchained.settle(error(new Unavailable()), 3)).toStrictEqual({
        _tag: "DeadLetter",
        maxDeliveriesReached: false
      })
    })
  )

  it.effect("retry in process 3 times, then redeliver: the handler runs 4 times, then the message is nak'ed", () =>
    Effect.gen(function* () {
      const policy = Policy.compile(
        Policy.make<EmailError>({
          rules: {
            Unavailable: Policy.retry(Schedule.recurs(3)).pipe(
              Policy.andThen(Policy.redeliver(Schedule.exponential("10 seconds")))
            ),
            InvalidAddress: Policy.deadLetter,
            Unsubscribed: Policy.ack
          }
        })
      )
      const runs = yield* Ref.make(0)
      const handler = Ref.update(runs, (n) => n + 1).pipe(
        Effect.andThen(Effect.fail(error<EmailError>(new Unavailable())))
      )
      const exit = yield* handler.pipe(Effect.retry(policy.retrySchedule), Effect.exit)
      expect(yield* Ref.get(runs)).toBe(4)
      if (!Exit.isFailure(exit)) return expect.fail("the handler kept failing")
      const failure = exit.cause.reasons[0]
      expect(failure?._tag).toBe("Fail")
      const settlement = yield* policy.settle(error(new Unavailable()), 1)
      expect(millis(settlement)).toBe(10_000)
    })
  )

  it.effect("in-process retries stop at once for a tag whose rule does not retry, and keep state per tag", () =>
    Effect.gen(function* () {
      const policy = Policy.compile(
        Policy.make<EmailError>({
          rules: {
            Unavailable: Policy.retry(Schedule.recurs(2)),
            InvalidAddress: Policy.deadLetter,
            Unsubscribed: Policy.retry(Schedule.recurs(1))
          }
        })
      )
      // Unavailable, Unsubscribed, Unavailable, Unavailable (its 2 retries used), then stop
      const sequence: Array<EmailError> = [
        new Unavailable(),
        new Unsubscribed(),
        new Unavailable(),
        new Unavailable(),
        new Unsubscribed()
      ]
      const runs = yield* Ref.make(0)
      const handler = Ref.getAndUpdate(runs, (n) => n + 1).pipe(
        Effect.flatMap((n) => Effect.fail(error(sequence[n] ?? new InvalidAddress())))
      )
      yield* handler.pipe(Effect.retry(policy.retrySchedule), Effect.ignore)
      expect(yield* Ref.get(runs)).toBe(4)

      yield* Ref.set(runs, 0)
      const deadLettered = Ref.update(runs, (n) => n + 1).pipe(
        Effect.andThen(Effect.fail(error<EmailError>(new InvalidAddress())))
      )
      yield* deadLettered.pipe(Effect.retry(policy.retrySchedule), Effect.ignore)
      expect(yield* Ref.get(runs)).toBe(1)
    })
  )

  it.effect("in-process retries wait as their schedule says (TestClock)", () =>
    Effect.gen(function* () {
      const policy = Policy.compile(
        Policy.make<Unavailable>({
          rules: { Unavailable: Policy.retry(Schedule.spaced("1 minute").pipe(Schedule.upTo({ times: 2 }))) }
        })
      )
      const runs = yield* Ref.make(0)
      const fiber = yield* Ref.update(runs, (n) => n + 1).pipe(
        Effect.andThen(Effect.fail(error(new Unavailable()))),
        Effect.retry(policy.retrySchedule),
        Effect.exit,
        Effect.forkChild
      )
      yield* Effect.yieldNow
      expect(yield* Ref.get(runs)).toBe(1)
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(runs)).toBe(2)
      yield* TestClock.adjust("1 minute")
      expect(yield* Ref.get(runs)).toBe(3)
      yield* Fiber.join(fiber)
    })
  )

  it("retries: only a failure whose rule starts with an in-process retry is run again here", () => {
    const policy = Policy.compile(
      Policy.make<EmailError>({
        rules: {
          Unavailable: Policy.retry(Schedule.recurs(2)).pipe(Policy.andThen(Policy.deadLetter)),
          InvalidAddress: Policy.redeliver(Schedule.spaced("1 second")).pipe(
            Policy.andThen(Policy.retry(Schedule.recurs(2)))
          ),
          Unsubscribed: Policy.ack
        },
        defect: Policy.retry(Schedule.recurs(1))
      })
    )
    expect(policy.retries(error(new Unavailable()))).toBe(true)
    // a retry later in the chain is not an in-process retry of this failure
    expect(policy.retries(error(new InvalidAddress()))).toBe(false)
    expect(policy.retries(error(new Unsubscribed()))).toBe(false)
    expect(policy.retries(defect)).toBe(true)
    expect(policy.retries(decodeFailure)).toBe(false)
    expect(Policy.compile(Policy.defaults).retries(defect)).toBe(false)
  })

  it.effect("settle at delivery n: a retry step is skipped, the next step decides", () =>
    Effect.gen(function* () {
      const policy = Policy.compile(
        Policy.make<Unavailable>({
          rules: {
            Unavailable: Policy.retry(Schedule.recurs(3)).pipe(
              Policy.andThen(Policy.redeliver(Schedule.spaced("7 seconds")))
            )
          },
          maxDeliveries: 4
        })
      )
      const settlements = []
      for (const deliveryCount of [1, 2, 3, 4]) {
        settlements.push(millis(yield* policy.settle(error(new Unavailable()), deliveryCount)))
      }
      expect(settlements).toStrictEqual([7000, 7000, 7000, "DeadLetter"])
    })
  )

  it.effect("redeliveryDelay: the defect rule's delay at that delivery, the last one it redelivers at past it", () =>
    Effect.gen(function* () {
      const policy = Policy.compile(
        Policy.make<never>({ rules: {}, defect: Policy.redeliver(Schedule.exponential("2 seconds")), maxDeliveries: 4 })
      )
      const delays = []
      for (const deliveryCount of [1, 2, 3, 4, 5, 9]) {
        delays.push(Duration.toMillis(yield* policy.redeliveryDelay(deliveryCount)))
      }
      // delivery 3 is the last the defect rule redelivers at (4 = maxDeliveries dead-letters)
      expect(delays).toStrictEqual([2000, 4000, 8000, 8000, 8000, 8000])
    })
  )

  it.effect("redeliveryDelay: doubling from 1 s to 1 min when the defect rule does not redeliver", () =>
    Effect.gen(function* () {
      const delaysOf = (policy: Policy.Compiled<never>) =>
        Effect.forEach([1, 2, 3, 6, 7, 20], (deliveryCount) =>
          Effect.map(policy.redeliveryDelay(deliveryCount), Duration.toMillis)
        )
      const doubling = [1000, 2000, 4000, 32_000, 60_000, 60_000]
      expect(
        yield* delaysOf(Policy.compile(Policy.make<never>({ rules: {}, defect: Policy.deadLetter })))
      ).toStrictEqual(doubling)
      expect(yield* delaysOf(Policy.compile(Policy.make<never>({ rules: {}, defect: Policy.term })))).toStrictEqual(
        doubling
      )
      // a used-up redelivery schedule, and a policy whose every delivery is its last
      const usedUp = Policy.redeliver(Schedule.spaced("5 seconds").pipe(Schedule.upTo({ times: 2 })))
      expect(
        yield* delaysOf(Policy.compile(Policy.make<never>({ rules: {}, defect: usedUp, maxDeliveries: 10 })))
      ).toStrictEqual([5000, 5000, 4000, 32_000, 60_000, 60_000])
      expect(yield* delaysOf(Policy.compile(Policy.make<never>({ rules: {}, maxDeliveries: 1 })))).toStrictEqual(
        doubling
      )
    })
  )

  it.effect(
    "redeliveryDelay by default: the default backoff's jittered delay, whatever the clock says (TestClock)",
    () =>
      Effect.gen(function* () {
        const policy = Policy.compile(Policy.defaults)
        yield* TestClock.adjust("1 hour")
        const first = Duration.toMillis(yield* policy.redeliveryDelay(1))
        const fourth = Duration.toMillis(yield* policy.redeliveryDelay(4))
        const late = Duration.toMillis(yield* policy.redeliveryDelay(50))
        // 1 s and 8 s, jittered by ±20 %; past the 4th delivery (maxDeliveries 5) the 4th's delay
        expect(first).toBeGreaterThanOrEqual(800)
        expect(first).toBeLessThanOrEqual(1200)
        expect(fourth).toBeGreaterThanOrEqual(6400)
        expect(fourth).toBeLessThanOrEqual(9600)
        expect(late).toBeGreaterThanOrEqual(6400)
        expect(late).toBeLessThanOrEqual(9600)
      })
  )
})

/**
 * What the subscriber logs when a delivery fails, as `Logging.layer` prints it: the failure's message
 * on the line of its first failed delivery, for a defect (a thrown error, `Effect.die`) as for a typed
 * error, and the stack only when the level is Debug.
 */
import { describe, expect, it } from "@effect/vitest"
import { Data, Effect, Exit, type LogLevel, References, Schedule, Schema, Scope } from "effect"
import * as Event from "../src/Event.js"
import * as Policy from "../src/Policy.js"
import * as Publisher from "../src/Publisher.js"
import * as Subscriber from "../src/Subscriber.js"
import { eventually } from "./support/Eventually.js"
import * as Logs from "./support/Logs.js"
import { messaging } from "./support/Messaging.js"

const Failing = Event.make("evt.test.failing.v1", Schema.Struct({ n: Schema.Number }))

class Declined extends Data.TaggedError("Declined")<{ readonly n: number }> {}

const redelivered = Policy.redeliver(Schedule.spaced("1 minute"))

/** Publishes one event, runs `subscriber` at `level` until its first failed delivery is logged, and returns that line. */
const firstFailure = <R>(level: LogLevel.LogLevel, subscriber: Effect.Effect<void, unknown, R | Scope.Scope>) =>
  Effect.gen(function* () {
    const logs = Logs.captureText()
    yield* Effect.flatMap(Publisher.Publisher, (publisher) => publisher.publish(Failing, { n: 7 }))
    const scope = yield* Scope.make()
    yield* subscriber.pipe(
      Effect.provide(logs.layer),
      Effect.provideService(References.MinimumLogLevel, level),
      Scope.provide(scope)
    )
    const line = yield* eventually(
      Effect.suspend(() => Effect.fromNullishOr(logs.lines.find((l) => l.includes("delivery 1 failed")))),
      { timeout: "15 seconds", interval: "50 millis" }
    )
    yield* Scope.close(scope, Exit.void)
    return line
  })

const throwing = (durable: string) =>
  Subscriber.make(Failing, {
    durable,
    policy: Policy.make<never>({ rules: {}, defect: redelivered }),
    handler: (envelope) =>
      Effect.sync(() => {
        const missing: { readonly x?: { readonly n: number } } = {}
        if (missing.x === undefined) throw new TypeError(`x is undefined (job ${envelope.data.n})`)
      })
  })

describe("the log line of a failed delivery", () => {
  it.live("a thrown error: its message at the first failure, without its stack at Info", () =>
    Effect.gen(function* () {
      const line = yield* firstFailure("Info", throwing("thrower"))
      expect(line).toContain(" WARN  TypeError: x is undefined (job 7): delivery 1 failed, redelivery in 60 s")
      expect(line).toContain('cause="TypeError: x is undefined (job 7)"')
      expect(line).toContain("event_id=")
      expect(line).not.toContain("\n")
    }).pipe(Effect.provide(messaging()))
  )

  it.live("a thrown error at Debug: the stack follows the line", () =>
    Effect.gen(function* () {
      const [first, ...stack] = (yield* firstFailure("Debug", throwing("debugged"))).split("\n")
      expect(first).toContain(" WARN  TypeError: x is undefined (job 7): delivery 1 failed")
      expect(stack.some((line) => line.trimStart().startsWith("at "))).toBe(true)
    }).pipe(Effect.provide(messaging()))
  )

  it.live("Effect.die and a typed error read the same way: the failure, then the delivery", () =>
    Effect.gen(function* () {
      const died = yield* firstFailure(
        "Info",
        Subscriber.make(Failing, {
          durable: "dier",
          policy: Policy.make<never>({ rules: {}, defect: redelivered }),
          handler: () => Effect.die(new RangeError("balance below zero"))
        })
      )
      expect(died).toContain(" WARN  RangeError: balance below zero: delivery 1 failed")
      const declined = yield* firstFailure(
        "Info",
        Subscriber.make(Failing, {
          durable: "decliner",
          policy: Policy.make<Declined>({ rules: { Declined: redelivered } }),
          handler: (envelope) => Effect.fail(new Declined({ n: envelope.data.n }))
        })
      )
      expect(declined).toContain(' WARN  Declined: {"n":7}: delivery 1 failed, redelivery in 60 s')
      expect(declined).not.toContain("\n")
    }).pipe(Effect.provide(messaging()))
  )
})

/**
 * How the publisher rides out an outage, as an operator sees it: the log lines (one WARN when it
 * starts, a summary every 10 s, one INFO when it ends, an ERROR for publishes that give up), what is
 * stored, the defaults of the timeout and the retry budget, and how often a publish nobody answered
 * asks JetStream whether a stream covers its subject.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { connect } from "@nats-io/transport-node"
import { ConfigProvider, Deferred, Duration, Effect, Exit, Fiber, Layer, Logger, Option, References } from "effect"
import { TestClock } from "effect/testing"
import { Broker } from "../src/Broker.js"
import { Events } from "../src/glam/index.js"
import * as Streams from "../src/glam/Streams.js"
import * as MemoryBroker from "../src/MemoryBroker.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as NatsClient from "../src/NatsClient.js"
import * as NatsError from "../src/NatsError.js"
import * as Publisher from "../src/Publisher.js"
import * as ServiceIdentity from "../src/ServiceIdentity.js"
import * as Topology from "../src/Topology.js"
import { identifiers } from "./glam/samples.js"
import { eventually } from "./support/Eventually.js"
import * as NatsServer from "./support/NatsServer.js"

const lowBalance = { identifiers, balance: 4.5, email: "owner@demo-shop.example" }
const subject = "evt.credit.balance.low.v1"

interface Line {
  readonly level: string
  readonly message: string
}

/** A logger keeping every line in `lines`; `alone` drops the console logger (for runs of thousands of lines). */
const capture = (lines: Array<Line>, options: { readonly alone?: boolean } = {}) =>
  Logger.layer(
    [
      Logger.make((entry) => {
        const message = Array.isArray(entry.message) ? entry.message[0] : entry.message
        lines.push({ level: entry.logLevel, message: String(message) })
      })
    ],
    { mergeWithExisting: options.alone !== true }
  )

/** The publisher's own lines about failing publishes (not the client's "NATS disconnected" and such). */
const outageLines = (lines: ReadonlyArray<Line>) =>
  lines.filter((line) => /^(publish to |publishing |gave up on )/.test(line.message))

const unitSeconds: Readonly<Record<string, number>> = { h: 3_600, min: 60, s: 1, ms: 1e-3 }

// Log lines write a duration in one unit ("1098 ms", "35.2 s", "1.5 min"); read it back as seconds.
const secondsOf = (formatted: string): number => {
  const match = /^(\d+(?:\.\d)?) (ms|s|min|h)$/.exec(formatted)
  const unit = match?.[2] === undefined ? undefined : unitSeconds[match[2]]
  assert(match !== null && unit !== undefined, `not a duration: ${formatted}`)
  return Number(match[1]) * unit
}

/**
 * Counts the stream lookups by subject (`$JS.API.STREAM.NAMES` requests) made on a server, seen from a
 * connection of its own that never answers them. The effect returned reads the count so far.
 */
const lookupCounter = Effect.fnUntraced(function* (url: string) {
  const connection = yield* Effect.acquireRelease(
    Effect.promise(() => connect({ servers: url })),
    (c) => Effect.promise(() => c.close())
  )
  let lookups = 0
  connection.subscribe("$JS.API.STREAM.NAMES", {
    callback: () => {
      lookups++
    }
  })
  yield* Effect.promise(() => connection.flush())
  // A round trip: every request routed to this connection before it has been counted.
  return Effect.map(
    Effect.promise(() => connection.flush()),
    () => lookups
  )
})

const onServer = (server: NatsServer.Options, publisher: Publisher.Options, topology?: Topology.Topology) =>
  Publisher.layer(publisher).pipe(
    Layer.provideMerge(topology === undefined ? Layer.empty : Topology.layer(topology)),
    Layer.provideMerge(NatsBroker.layerFromClient),
    Layer.provideMerge(ServiceIdentity.layer("billing-service")),
    Layer.provideMerge(
      Layer.unwrap(
        Effect.map(NatsServer.NatsServerService, (running) =>
          NatsClient.layer({ servers: running.url, reconnectWait: "250 millis" })
        )
      )
    ),
    Layer.provideMerge(NatsServer.layer(server))
  )

describe("Publisher outages", () => {
  describe("on a broker that fails while `down` (TestClock)", () => {
    const unavailable = NatsError.make(
      "publish",
      new NatsError.Unavailable({ message: "JetStream system temporarily unavailable", code: 10008 })
    )

    const flaky = (options: Publisher.Options = {}) => {
      const state = { down: false, timeouts: [] as Array<Duration.Duration> }
      const broker = Layer.effect(
        Broker,
        Effect.map(MemoryBroker.make, (memory) =>
          Broker.of({
            ...memory,
            publish: (request) =>
              Effect.suspend(() => {
                state.timeouts.push(request.timeout)
                return state.down ? Effect.fail(unavailable) : memory.publish(request)
              })
          })
        )
      )
      const layer = Publisher.layer(options).pipe(
        Layer.provideMerge(Topology.layer(Streams.topology)),
        Layer.provideMerge(broker),
        Layer.provideMerge(ServiceIdentity.layer("billing-service"))
      )
      return { state, layer }
    }

    /** Moves the clock in small steps, so that every retry runs at its time. */
    const advance = (total: Duration.Input, step: Duration.Input = "100 millis") =>
      Effect.gen(function* () {
        const steps = Math.ceil(Duration.toMillis(Duration.fromInputUnsafe(total)) / Duration.toMillis(step))
        for (let i = 0; i < steps; i++) yield* TestClock.adjust(step)
      })

    it.effect("a 35 s outage under 200 publishes is one WARN, a summary every 10 s and one INFO", () => {
      const { state, layer } = flaky()
      const lines: Array<Line> = []
      return Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        yield* publisher.publish(Events.CreditBalanceLow, lowBalance)
        state.down = true
        const fibers = yield* Effect.forEach(Array.from({ length: 200 }), () =>
          Effect.forkChild(publisher.publish(Events.CreditBalanceLow, lowBalance), { startImmediately: true })
        )
        yield* advance("35 seconds")
        state.down = false
        yield* advance("3 seconds")
        const receipts = yield* Effect.forEach(fibers, Fiber.join)
        expect(new Set(receipts.map((r) => r.seq)).size).toBe(200)

        const logged = outageLines(lines).filter((l) => l.level !== "Debug")
        expect(logged.map((l) => l.level)).toStrictEqual(["Warn", "Warn", "Warn", "Warn", "Info"])
        expect(logged[0]?.message).toBe(
          `publish to ${subject} failed, retrying (one summary every 10 s until a publish succeeds): ` +
            "publish: JetStream system temporarily unavailable"
        )
        const summaries = logged.slice(1, 4).map((l) => l.message)
        for (const [i, summary] of summaries.entries()) {
          const match =
            /^publishing still failing after (.+): (\d+) failed attempts, 200 publishes retrying now, 0 gave up; last: publish: JetStream system temporarily unavailable$/.exec(
              summary
            )
          assert(match !== null, summary)
          const after = secondsOf(match[1] ?? "")
          expect(after).toBeGreaterThanOrEqual(10 * (i + 1))
          expect(after).toBeLessThan(10 * (i + 1) + 2.5)
        }
        const ended =
          /^publishing works again after (.+): (\d+) failed attempts, 200 publishes retried, 0 gave up$/.exec(
            logged[4]?.message ?? ""
          )
        assert(ended !== null, logged[4]?.message)
        expect(secondsOf(ended[1] ?? "")).toBeGreaterThanOrEqual(35)
        expect(secondsOf(ended[1] ?? "")).toBeLessThan(38)
        // Every attempt failed while down: about 20 per publish over 35 s, waits growing to 2 s.
        expect(Number(ended[2])).toBeGreaterThan(200 * 15)
        // Every other failed attempt is one DEBUG line.
        const debug = lines.filter(
          (l) => l.level === "Debug" && l.message.startsWith(`publish to ${subject} failed again`)
        )
        expect(debug).toHaveLength(Number(ended[2]) - 4)
      }).pipe(
        Effect.provide(
          Layer.mergeAll(layer, capture(lines, { alone: true }), Layer.succeed(References.MinimumLogLevel, "Debug"))
        )
      )
    })

    it.effect("1,000 publishes giving up together are two ERROR lines; the INFO at the end counts them", () => {
      const { state, layer } = flaky({ retryBudget: "5 seconds" })
      const lines: Array<Line> = []
      return Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        state.down = true
        const fibers = yield* Effect.forEach(Array.from({ length: 1000 }), () =>
          Effect.forkChild(publisher.publish(Events.CreditBalanceLow, lowBalance), { startImmediately: true })
        )
        yield* advance("9 seconds")
        for (const fiber of fibers) {
          const exit = fiber.pollUnsafe()
          assert(exit !== undefined && Exit.isFailure(exit), "every publish gave up")
        }
        const first = fibers[0]
        assert(first !== undefined)
        const error = yield* Fiber.join(first).pipe(Effect.flip)
        assert(error._tag === "NatsError")
        expect(error.reason._tag).toBe("Unavailable")

        state.down = false
        yield* publisher.publish(Events.CreditBalanceLow, lowBalance)

        const logged = outageLines(lines)
        expect(logged.map((l) => l.level)).toStrictEqual(["Warn", "Error", "Error", "Info"])
        expect(logged[1]?.message).toMatch(
          new RegExp(
            `^gave up on a publish to ${subject} after \\d+ failed attempts in [5-7]\\d\\d\\d ms: publish: JetStream system temporarily unavailable$`
          )
        )
        expect(logged[2]?.message).toMatch(
          new RegExp(
            `^gave up on 999 more publishes in .+; the last, a publish to ${subject} after \\d+ failed attempts`
          )
        )
        expect(logged[3]?.message).toMatch(
          /^publishing works again after .+: \d+ failed attempts, 1000 publishes retried, 1000 gave up$/
        )
      }).pipe(Effect.provide(Layer.merge(layer, capture(lines, { alone: true }))))
    })

    it.effect("defaults: each attempt waits 2 s, and a publish is retried for 90 s in all", () => {
      const { state, layer } = flaky()
      return Effect.gen(function* () {
        expect(Duration.toMillis(Publisher.defaults.timeout)).toBe(2_000)
        expect(Duration.toMillis(Publisher.defaults.retryBudget)).toBe(90_000)
        const publisher = yield* Publisher.Publisher
        state.down = true
        const fiber = yield* Effect.forkChild(publisher.publish(Events.CreditBalanceLow, lowBalance), {
          startImmediately: true
        })
        yield* advance("89 seconds", "500 millis")
        expect(fiber.pollUnsafe()).toBeUndefined()
        yield* advance("4 seconds", "500 millis")
        const exit = fiber.pollUnsafe()
        assert(exit !== undefined && Exit.isFailure(exit), "gave up after the budget")
        expect(state.timeouts.length).toBeGreaterThan(40)
        expect(new Set(state.timeouts.map(Duration.toMillis))).toStrictEqual(new Set([2_000]))
      }).pipe(Effect.provide(Layer.merge(layer, capture([], { alone: true }))))
    })

    it.effect("layerConfig reads GLAM_PUBLISH_TIMEOUT and GLAM_PUBLISH_RETRY_BUDGET", () => {
      const { state, layer } = flaky()
      const configured = Publisher.layerConfig().pipe(
        Layer.provideMerge(layer),
        Layer.provide(
          ConfigProvider.layer(
            ConfigProvider.fromUnknown({ GLAM_PUBLISH_TIMEOUT: "750 millis", GLAM_PUBLISH_RETRY_BUDGET: "3 seconds" })
          )
        )
      )
      return Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        state.down = true
        const fiber = yield* Effect.forkChild(publisher.publish(Events.CreditBalanceLow, lowBalance), {
          startImmediately: true
        })
        yield* advance("2500 millis")
        expect(fiber.pollUnsafe()).toBeUndefined()
        yield* advance("3 seconds")
        const exit = fiber.pollUnsafe()
        assert(exit !== undefined && Exit.isFailure(exit), "gave up after the configured budget")
        expect(new Set(state.timeouts.map(Duration.toMillis))).toStrictEqual(new Set([750]))
      }).pipe(Effect.provide(Layer.merge(configured, capture([], { alone: true }))))
    })
  })

  it.live(
    "a 3 s server stop under 50 publishers: one WARN, one INFO with its duration, every publish stored once",
    () => {
      const lines: Array<Line> = []
      return Effect.gen(function* () {
        const server = yield* NatsServer.NatsServerService
        const publisher = yield* Publisher.Publisher
        const broker = yield* Broker
        const receipts: Array<Publisher.Receipt> = []
        const stop = yield* Deferred.make<void>()
        const worker = Effect.gen(function* () {
          while (!(yield* Deferred.isDone(stop))) {
            receipts.push(yield* publisher.publish(Events.CreditBalanceLow, lowBalance))
          }
        })
        const workers = yield* Effect.forEach(Array.from({ length: 50 }), () => Effect.forkChild(worker))
        yield* Effect.sleep("500 millis")
        const beforeStop = receipts.length
        yield* server.stop
        yield* Effect.sleep("3 seconds")
        yield* server.start
        yield* eventually(
          Effect.suspend(() =>
            lines.some((l) => l.level === "Info" && l.message.startsWith("publishing works again"))
              ? Effect.void
              : Effect.fail("not yet")
          ),
          { timeout: "10 seconds" }
        )
        const atRecovery = receipts.length
        yield* Effect.sleep("500 millis")
        yield* Deferred.succeed(stop, undefined)
        yield* Effect.forEach(workers, Fiber.join)

        expect(beforeStop).toBeGreaterThan(50)
        expect(receipts.length).toBeGreaterThan(atRecovery + 50)
        const info = yield* broker.streamInfo("GLAM_EVENTS")
        assert(Option.isSome(info))
        expect(info.value.state.messages).toBe(receipts.length)
        expect(new Set(receipts.map((r) => r.seq)).size).toBe(receipts.length)

        const logged = outageLines(lines)
        const warnings = logged.filter((l) => l.level === "Warn")
        expect(warnings.filter((l) => l.message.startsWith("publish to "))).toHaveLength(1)
        expect(warnings[0]?.message).toMatch(
          new RegExp(
            `^publish to ${subject} failed, retrying \\(one summary every 10 s until a publish succeeds\\): publish: `
          )
        )
        expect(warnings.filter((l) => l.message.startsWith("publishing still failing")).length).toBeLessThanOrEqual(1)
        const infos = logged.filter((l) => l.level === "Info")
        expect(infos).toHaveLength(1)
        const ended =
          /^publishing works again after (.+): (\d+) failed attempts, (\d+) publishes retried, 0 gave up$/.exec(
            infos[0]?.message ?? ""
          )
        assert(ended !== null, infos[0]?.message)
        expect(secondsOf(ended[1] ?? "")).toBeGreaterThanOrEqual(3)
        expect(secondsOf(ended[1] ?? "")).toBeLessThan(10)
        expect(Number(ended[3])).toBe(50)
        expect(logged.filter((l) => l.level === "Error")).toHaveLength(0)
      }).pipe(Effect.provide(Layer.merge(onServer({}, {}, Streams.topology), capture(lines))))
    },
    20_000
  )

  describe("a publish nobody answered asks JetStream about its subject at most once per 5 s", () => {
    it.live("400 publishes to a subject no stream covers: one lookup or two, each a StreamNotFound", () =>
      Effect.gen(function* () {
        const server = yield* NatsServer.NatsServerService
        const publisher = yield* Publisher.Publisher
        const lookups = yield* lookupCounter(server.url)
        const publishAll = Effect.forEach(
          Array.from({ length: 200 }),
          () => Effect.flip(publisher.publish(Events.CreditBalanceLow, lowBalance)),
          { concurrency: "unbounded" }
        )
        const errors = [...(yield* publishAll), ...(yield* publishAll)]
        expect(errors).toHaveLength(400)
        for (const error of errors) {
          assert(error._tag === "NatsError")
          expect(error.reason._tag).toBe("StreamNotFound")
          expect(error.isRetryable).toBe(false)
          expect(error.message).toBe(`publish: no stream for subject ${subject}`)
        }
        const made = yield* lookups
        expect(made).toBeGreaterThanOrEqual(1)
        expect(made).toBeLessThanOrEqual(2)
      }).pipe(Effect.provide(onServer({}, {}, Topology.make({}))))
    )

    it.live("50 publishes with a 3 s budget while JetStream does not answer: one lookup or two, each retryable", () => {
      const lines: Array<Line> = []
      return Effect.gen(function* () {
        const server = yield* NatsServer.NatsServerService
        const publisher = yield* Publisher.Publisher
        const lookups = yield* lookupCounter(server.url)
        const errors = yield* Effect.forEach(
          Array.from({ length: 50 }),
          () => Effect.flip(publisher.publish(Events.CreditBalanceLow, lowBalance)),
          { concurrency: "unbounded" }
        )
        for (const error of errors) {
          assert(error._tag === "NatsError")
          expect(error.reason._tag).toBe("NoResponders")
          expect(error.isRetryable).toBe(true)
          expect(error.message).toBe(`publish: JetStream did not answer a publish to ${subject}`)
        }
        const made = yield* lookups
        expect(made).toBeGreaterThanOrEqual(1)
        expect(made).toBeLessThanOrEqual(2)
        const logged = outageLines(lines)
        expect(logged.filter((l) => l.level === "Warn")).toHaveLength(1)
        expect(logged.filter((l) => l.level === "Error").length).toBeLessThanOrEqual(2)
        expect(logged.filter((l) => l.level === "Error").length).toBeGreaterThanOrEqual(1)
      }).pipe(
        // A server without JetStream: nothing answers a publish, nothing answers the API.
        Effect.provide(Layer.merge(onServer({ args: ["-js=false"] }, { retryBudget: "3 seconds" }), capture(lines)))
      )
    })
  })
})

/**
 * Which dead-letter and advisory streams the dead-letter tools use when none is named: the broker's one
 * dead-letter stream, the stream that captures a consumer's advisories, and errors that name what there
 * is when that is not one. On the in-memory broker (the same lookups as on NATS, checked by the contract).
 */
import { readdirSync, readFileSync } from "node:fs"
import { join, sep } from "node:path"
import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Schedule } from "effect"
import { Broker } from "../src/Broker.js"
import * as DeadLetter from "../src/DeadLetter.js"
import * as Messaging from "../src/Messaging.js"
import * as Topology from "../src/Topology.js"
import { deadLettered as storeAndDeadLetter } from "./support/DeadLetters.js"

const orders: Topology.StreamSpec = { name: "ORDERS", subjects: ["evt.orders.>"] }
const payments: Topology.StreamSpec = { name: "PAYMENTS", subjects: ["evt.payments.>"] }

const stack = (streams: ReadonlyArray<Topology.StreamSpec>) =>
  Layer.fresh(Messaging.layerMemory({ topology: Topology.make({ streams }), service: "dead-letter-streams" }))

/** Stores an event on `subject` and dead-letters it; the dead letter's receipt. */
const deadLettered = (subject: string) => storeAndDeadLetter(subject, "e-1", {})

describe("dead-letter streams found, not assumed", () => {
  it.effect("list and replay without a stream read the broker's one dead-letter stream", () =>
    Effect.gen(function* () {
      const receipt = yield* deadLettered("evt.orders.placed.v1")
      expect(receipt.stream).toBe("ORDERS_DLQ")
      const entries = yield* DeadLetter.list()
      expect(entries.map((entry) => [entry.stream, entry.seq, entry.record.errorCode])).toEqual([
        ["ORDERS_DLQ", receipt.seq, "PaymentDeclined"]
      ])
      const outcomes = yield* DeadLetter.replay()
      expect(outcomes.map((outcome) => outcome._tag)).toEqual(["Replayed"])
    }).pipe(Effect.provide(stack(Topology.withDeadLetters(orders))))
  )

  it.effect("with several dead-letter streams, list without a stream fails naming them all", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(DeadLetter.list())
      assert.strictEqual(error.reason._tag, "StreamNotFound")
      expect(error.message).toContain(
        "several dead-letter streams (ORDERS_DLQ, PAYMENTS_DLQ): name the one to read with { stream }"
      )
      // Naming one reads it.
      yield* deadLettered("evt.payments.failed.v1")
      const entries = yield* DeadLetter.list({ stream: "PAYMENTS_DLQ" })
      expect(entries.map((entry) => entry.record.originalSubject)).toEqual(["evt.payments.failed.v1"])
    }).pipe(Effect.provide(stack([...Topology.withDeadLetters(orders), ...Topology.withDeadLetters(payments)])))
  )

  it.effect("with no dead-letter stream, list fails saying how to declare one", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(DeadLetter.list())
      assert.strictEqual(error.reason._tag, "StreamNotFound")
      expect(error.message).toContain(
        "no dead-letter stream (one whose subjects are all dlq.*) on the broker: declare it with Topology.withDeadLetters"
      )
    }).pipe(Effect.provide(stack([orders])))
  )

  it.live("watchAdvisories without an advisory stream reads the one capturing the consumer's advisories", () =>
    Effect.gen(function* () {
      const broker = yield* Broker
      const fiber = yield* Effect.forkChild(DeadLetter.watchAdvisories({ stream: "ORDERS", consumer: "billing" }))
      const durable = yield* broker
        .consumerInfo("ORDERS_ADVISORIES", "dlq-ORDERS-billing")
        .pipe(Effect.flatMap(Effect.fromOption), Effect.retry({ schedule: Schedule.spaced("10 millis"), times: 200 }))
      expect(durable.config.filterSubject).toBe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORDERS.billing")
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(stack(Topology.withDeadLetters(orders))))
  )

  it.effect("watchAdvisories with no stream for the advisories fails naming their subject", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(DeadLetter.watchAdvisories({ stream: "ORDERS", consumer: "billing" }))
      assert.strictEqual(error._tag, "NatsError")
      expect(error.message).toContain(
        "no stream captures $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.ORDERS.billing, the max-deliveries advisories of ORDERS/billing"
      )
      expect(Option.isNone(yield* Broker.use((broker) => broker.streamInfo("GLAM_ADVISORIES")))).toBe(true)
    }).pipe(Effect.provide(stack([orders])))
  )
})

describe("a generic core", () => {
  it("no module of the library outside src/glam imports the GLAM preset (the GLAM ops CLI in src/cli may)", () => {
    const root = join(import.meta.dirname, "..", "src")
    // internal/ has a folder per subsystem: every .ts below src/ but src/glam/ itself and the CLI.
    const files = readdirSync(root, { recursive: true, encoding: "utf8" }).filter(
      (file) => file.endsWith(".ts") && !file.startsWith(`glam${sep}`) && !file.startsWith(`cli${sep}`)
    )
    expect(files.length).toBeGreaterThan(20)
    const offending = files.filter((file) => {
      const code = readFileSync(join(root, file), "utf8")
        .split("\n")
        .filter((line) => !/^\s*(\*|\/\/|\/\*\*)/.test(line))
        .join("\n")
      return /from "(\.\.?\/)+glam\//.test(code)
    })
    expect(offending).toEqual([])
  })
})

/**
 * `publishAll` as a batch that can be resumed: every payload is checked before anything is sent, every
 * event id is fixed up front, and a failure half-way says what was stored and what remains, so that
 * publishing the rest again (with the same ids) stores each item exactly once, also across a server stop.
 */
import { assert, describe, expect, it, layer } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Tracer } from "effect"
import { Broker } from "../src/Broker.js"
import { Events } from "../src/glam/index.js"
import * as Streams from "../src/glam/Streams.js"
import * as Publisher from "../src/Publisher.js"
import * as ServiceIdentity from "../src/ServiceIdentity.js"
import * as Topology from "../src/Topology.js"
import { identifiers } from "./glam/samples.js"
import { eventually } from "./support/Eventually.js"
import { messaging, natsBroker, storedMessages } from "./support/Messaging.js"
import * as NatsServer from "./support/NatsServer.js"

const lowBalance = { identifiers, balance: 4.5, email: "owner@demo-shop.example" }

/** `count` items whose `balance` is their index. */
const itemsOf = (count: number): Array<Publisher.PublishItem<typeof Events.CreditBalanceLow>> =>
  Array.from({ length: count }, (_, i) => ({ event: Events.CreditBalanceLow, payload: { ...lowBalance, balance: i } }))

const events = storedMessages("GLAM_EVENTS")

const balanceOf = (payload: Uint8Array): number => JSON.parse(new TextDecoder().decode(payload)).data.balance

const messageIdOf = (headers: ReadonlyArray<readonly [string, string]>) =>
  headers.find(([name]) => name === "Nats-Msg-Id")?.[1]

const uuid = /^[0-9a-f-]{36}$/

const invalid = { ...lowBalance, identifiers: { ...identifiers, merchant_id: "not-a-uuid" } }

describe("Publisher.publishAll", () => {
  layer(messaging())("on a real nats-server", (it) => {
    it.effect("an invalid item publishes nothing; the error names its index and field, and every id", () =>
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const before = (yield* events).length
        const items = itemsOf(100)
        items[50] = { event: Events.CreditBalanceLow, payload: invalid }
        const error = yield* publisher.publishAll(items, { concurrency: 8 }).pipe(Effect.flip)

        expect(error._tag).toBe("PublishAllError")
        expect(error.index).toBe(50)
        assert(error.cause._tag === "EncodeError")
        expect(error.cause.path).toBe("data.identifiers.merchant_id")
        expect(error.message).toContain("item 50")
        expect(error.message).toContain("merchant_id")
        expect(error.stored).toStrictEqual([])
        expect(error.remaining.map((r) => r.index)).toStrictEqual(items.map((_, i) => i))
        expect((yield* events).length).toBe(before)
      })
    )

    it.effect("event ids are fixed before sending: given ones kept, the others new, and reused on retry", () =>
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const items = itemsOf(10).map((item, i) =>
          i % 2 === 0 ? { ...item, options: { eventId: `given-${i}`, correlationId: "batch-7" } } : item
        )
        const broken = [...items, { event: Events.CreditBalanceLow, payload: invalid }]
        const error = yield* publisher.publishAll(broken).pipe(Effect.flip)
        expect(error.index).toBe(10)
        const ids = error.remaining.map((r) => r.eventId)
        expect(ids.filter((_, i) => i % 2 === 0).slice(0, 5)).toStrictEqual([0, 2, 4, 6, 8].map((i) => `given-${i}`))
        const assigned = ids.filter((_, i) => i % 2 === 1)
        for (const id of assigned) expect(id).toMatch(uuid)
        expect(new Set(ids).size).toBe(11)

        // The fixed batch, published as what remained: under exactly those ids, other options kept.
        const receipts = yield* publisher.publishAll(Publisher.remainingItems(items, error))
        expect(receipts.map((r) => r.eventId)).toStrictEqual(ids.slice(0, 10))
        expect(receipts.every((r) => !r.duplicate)).toBe(true)
        const stored = (yield* events).filter((m) => ids.includes(messageIdOf(m.headers) ?? ""))
        expect(stored.map((m) => balanceOf(m.payload)).sort((a, b) => a - b)).toStrictEqual(items.map((_, i) => i))
        const first = stored.find((m) => messageIdOf(m.headers) === "given-0")
        assert(first !== undefined)
        expect(JSON.parse(new TextDecoder().decode(first.payload)).correlation_id).toBe("batch-7")
      })
    )

    it.effect(
      "a broker failure half-way: receipts of what was stored, ids of the rest; retrying the rest completes",
      () =>
        Effect.gen(function* () {
          const publisher = yield* Publisher.Publisher
          const before = (yield* events).length
          const items = itemsOf(20)
          // Item 5 expects a last sequence the stream is not at: `WrongLastSequence`, which no retry fixes.
          items[5] = {
            event: Events.CreditBalanceLow,
            payload: { ...lowBalance, balance: 5 },
            options: { expectedLastSequence: 1 }
          }
          const error = yield* publisher.publishAll(items, { concurrency: 1 }).pipe(Effect.flip)

          expect(error.index).toBe(5)
          assert(error.cause._tag === "NatsError")
          expect(error.cause.reason._tag).toBe("WrongLastSequence")
          expect(error.stored.map((s) => s.index)).toStrictEqual([0, 1, 2, 3, 4])
          expect(error.stored.map((s) => s.receipt.seq)).toStrictEqual([1, 2, 3, 4, 5].map((n) => before + n))
          expect(error.remaining.map((r) => r.index)).toStrictEqual(items.map((_, i) => i).slice(5))
          for (const { eventId } of error.remaining) expect(eventId).toMatch(uuid)
          expect((yield* events).length).toBe(before + 5)

          items[5] = { event: Events.CreditBalanceLow, payload: { ...lowBalance, balance: 5 }, options: {} }
          const rest = yield* publisher.publishAll(Publisher.remainingItems(items, error))
          expect(rest.map((r) => r.eventId)).toStrictEqual(error.remaining.map((r) => r.eventId))
          const stored = (yield* events).slice(before)
          expect(stored.map((m) => balanceOf(m.payload))).toStrictEqual(items.map((_, i) => i))
        })
    )

    it.effect("with a tracer, each item is sent in a producer span of its own, which its headers carry", () =>
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const spans: Array<Tracer.Span> = []
        const recording = Tracer.make({
          span(options) {
            const span = Tracer.nativeTracer.span(options)
            spans.push(span)
            return span
          }
        })
        const receipts = yield* publisher.publishAll(itemsOf(3)).pipe(Effect.withTracer(recording))
        const stored = yield* events
        for (const receipt of receipts) {
          const span = spans.find(
            (s) => s.name.startsWith("send ") && s.attributes.get("messaging.message.id") === receipt.eventId
          )
          assert(span !== undefined)
          const message = stored.find((m) => m.seq === receipt.seq)
          const traceparent = message?.headers.find(([name]) => name === "traceparent")?.[1]
          expect(traceparent).toBe(`00-${span.traceId}-${span.spanId}-01`)
        }
      })
    )
  })

  /**
   * A server of its own and a publisher with a 1 s retry budget whose broker holds back every publish
   * from the `at`-th on until `release`, so that the test stops the server exactly mid-batch.
   */
  const gatedOnServer = (at: number, reached: Deferred.Deferred<void>, release: Deferred.Deferred<void>) => {
    const gated = Layer.effect(
      Broker,
      Effect.map(Broker, (broker) => {
        let calls = 0
        return Broker.of({
          ...broker,
          publish: (request) =>
            Effect.suspend(() =>
              ++calls < at
                ? broker.publish(request)
                : Deferred.succeed(reached, undefined).pipe(
                    Effect.andThen(Deferred.await(release)),
                    Effect.andThen(broker.publish(request))
                  )
            )
        })
      })
    )
    return Publisher.layer({ retryBudget: "1 second", timeout: "500 millis" }).pipe(
      Layer.provide(gated),
      Layer.provideMerge(Topology.layer(Streams.topology)),
      Layer.provideMerge(ServiceIdentity.layer("billing-service")),
      Layer.provideMerge(natsBroker),
      Layer.provideMerge(NatsServer.layer())
    )
  }

  it.live("a server stopped mid-batch: the rest, published again after it is back, stores each item once", () =>
    Effect.gen(function* () {
      const reached = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      yield* Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const server = yield* NatsServer.NatsServerService
        const broker = yield* Broker
        const items = itemsOf(100)
        const publishing = yield* publisher
          .publishAll(items, { concurrency: 8 })
          .pipe(Effect.flip, Effect.forkChild({ startImmediately: true }))
        yield* Deferred.await(reached)
        yield* server.stop
        yield* Deferred.succeed(release, undefined)
        const error = yield* Fiber.join(publishing)

        assert(error.cause._tag === "NatsError")
        expect(error.cause.isRetryable).toBe(true)
        expect(error.index).toBeGreaterThanOrEqual(40)
        // Every item is either stored, with its receipt, or remaining, with its id; both in input order.
        const indexes = [...error.stored.map((s) => s.index), ...error.remaining.map((r) => r.index)]
        expect(indexes.sort((a, b) => a - b)).toStrictEqual(items.map((_, i) => i))
        expect(error.stored.map((s) => s.index)).toStrictEqual(
          [...error.stored.map((s) => s.index)].sort((a, b) => a - b)
        )
        expect(error.remaining.map((r) => r.index)).toStrictEqual(
          [...error.remaining.map((r) => r.index)].sort((a, b) => a - b)
        )
        expect(error.stored.length).toBeGreaterThanOrEqual(40)
        expect(error.remaining.length).toBeGreaterThanOrEqual(50)

        yield* server.start
        yield* eventually(broker.streamInfo("GLAM_EVENTS"))
        const rest = yield* publisher.publishAll(Publisher.remainingItems(items, error))
        expect(rest.map((r) => r.eventId)).toStrictEqual(error.remaining.map((r) => r.eventId))

        const stored = yield* events
        expect(stored.map((m) => balanceOf(m.payload)).sort((a, b) => a - b)).toStrictEqual(items.map((_, i) => i))
        const ids = [...error.stored.map((s) => s.receipt.eventId), ...error.remaining.map((r) => r.eventId)]
        expect(new Set(stored.map((m) => messageIdOf(m.headers)))).toStrictEqual(new Set(ids))
      }).pipe(Effect.provide(gatedOnServer(50, reached, release)))
    })
  )
})

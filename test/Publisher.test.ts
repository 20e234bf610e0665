import { assert, describe, expect, it, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Schedule, Tracer } from "effect"
import { TestClock } from "effect/testing"
import { Broker } from "../src/Broker.js"
import * as Envelope from "../src/Envelope.js"
import { Events } from "../src/glam/index.js"
import * as Streams from "../src/glam/Streams.js"
import * as MemoryBroker from "../src/MemoryBroker.js"
import * as MessageContext from "../src/MessageContext.js"
import * as NatsBroker from "../src/NatsBroker.js"
import * as NatsClient from "../src/NatsClient.js"
import type { NatsError } from "../src/NatsError.js"
import * as Publisher from "../src/Publisher.js"
import * as ServiceIdentity from "../src/ServiceIdentity.js"
import * as Topology from "../src/Topology.js"
import * as NatsServer from "./support/NatsServer.js"

const identifiers = {
  merchant_id: "0b5e3f5c-8d7a-4c1e-9f2b-6a4d3c2b1a00",
  platform_name: "shopify",
  platform_shop_id: "gid://shopify/Shop/1001",
  domain: "demo-shop.myshopify.com"
}

const lowBalance = { identifiers, balance: 4.5, email: "owner@demo-shop.example" }

const messaging = (
  options: { readonly retry?: Schedule.Schedule<unknown, NatsError>; readonly topology?: Topology.Topology } = {}
) =>
  Publisher.layer(options.retry === undefined ? {} : { retry: options.retry, timeout: "1 second" }).pipe(
    Layer.provideMerge(Topology.layer(options.topology ?? Streams.topology)),
    Layer.provideMerge(NatsBroker.layerFromClient),
    Layer.provideMerge(ServiceIdentity.layer("billing-service")),
    Layer.provideMerge(
      Layer.unwrap(Effect.map(NatsServer.NatsServerService, (server) => NatsClient.layer({ servers: server.url })))
    ),
    Layer.provideMerge(NatsServer.layer())
  )

/** The messages stored in GLAM_EVENTS, read back through the nats.js manager. */
const storedMessages = Effect.gen(function* () {
  const client = yield* NatsClient.NatsClient
  const info = yield* Effect.promise(() => client.manager.streams.info("GLAM_EVENTS"))
  const messages = []
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const message = yield* Effect.promise(() => client.manager.streams.getMessage("GLAM_EVENTS", { seq }))
    if (message !== null) messages.push(message)
  }
  return messages
})

describe("Publisher", () => {
  layer(messaging())("on a real nats-server with the GLAM topology", (it) => {
    it.effect("returns a receipt and stores the envelope the Python services read", () =>
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const before = (yield* storedMessages).length
        const receipt = yield* publisher.publish(Events.CreditBalanceLow, lowBalance)
        expect(receipt.subject).toBe("evt.credit.balance.low.v1")
        expect(receipt.stream).toBe("GLAM_EVENTS")
        expect(receipt.duplicate).toBe(false)
        expect(receipt.seq).toBe(before + 1)
        expect(receipt.eventId).toMatch(/^[0-9a-f-]{36}$/)

        const stored = (yield* storedMessages).find((m) => m.seq === receipt.seq)
        assert(stored !== undefined)
        expect(stored.subject).toBe("evt.credit.balance.low.v1")
        expect(stored.header.get("Nats-Msg-Id")).toBe(receipt.eventId)
        const json = JSON.parse(new TextDecoder().decode(stored.data))
        expect(Object.keys(json)).toStrictEqual([
          "event_id",
          "event_type",
          "correlation_id",
          "source_service",
          "timestamp",
          "data"
        ])
        expect(json.event_id).toBe(receipt.eventId)
        expect(json.event_type).toBe("evt.credit.balance.low.v1")
        expect(json.source_service).toBe("billing-service")
        expect(json.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$/)
        expect(json.data).toStrictEqual(lowBalance)
        const decoded = yield* Events.CreditBalanceLow.decode(stored.data)
        expect(decoded.data).toStrictEqual(lowBalance)
      })
    )

    it.effect("the same event id twice stores one message and reports the second as a duplicate", () =>
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const eventId = "5d1c1e0c-7f7a-4f38-9d7e-000000000001"
        const first = yield* publisher.publish(Events.CreditBalanceLow, lowBalance, { eventId })
        const second = yield* publisher.publish(Events.CreditBalanceLow, { ...lowBalance, balance: 1 }, { eventId })
        expect(first.duplicate).toBe(false)
        expect(second).toStrictEqual({ ...first, duplicate: true })
        const copies = (yield* storedMessages).filter((m) => m.header.get("Nats-Msg-Id") === eventId)
        expect(copies).toHaveLength(1)
        expect(JSON.parse(new TextDecoder().decode(copies[0]?.data)).data.balance).toBe(4.5)
      })
    )

    it.effect("an invalid payload is a typed error naming the field, and nothing is published", () =>
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const before = (yield* storedMessages).length
        const error = yield* publisher
          .publish(Events.CreditBalanceLow, {
            ...lowBalance,
            identifiers: { ...identifiers, merchant_id: "not-a-uuid" }
          })
          .pipe(Effect.flip)
        assert(error._tag === "EncodeError")
        expect(error.eventType).toBe("evt.credit.balance.low.v1")
        expect(error.message).toContain("merchant_id")
        expect((yield* storedMessages).length).toBe(before)
      })
    )

    it.effect("the correlation id comes from the options, else from the message being handled, else is new", () =>
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const read = (seq: number) =>
          Effect.map(storedMessages, (messages) => {
            const message = messages.find((m) => m.seq === seq)
            return JSON.parse(new TextDecoder().decode(message?.data)).correlation_id
          })
        const explicit = yield* publisher.publish(Events.CreditBalanceLow, lowBalance, { correlationId: "req-42" })
        const inherited = yield* publisher
          .publish(Events.CreditBalanceLow, lowBalance)
          .pipe(MessageContext.withMessage({ correlationId: "corr-7", eventId: "e-1", eventType: "evt.x.y.v1" }))
        const fresh1 = yield* publisher.publish(Events.CreditBalanceLow, lowBalance)
        const fresh2 = yield* publisher.publish(Events.CreditBalanceLow, lowBalance)
        expect(yield* read(explicit.seq)).toBe("req-42")
        expect(yield* read(inherited.seq)).toBe("corr-7")
        const freshIds = [yield* read(fresh1.seq), yield* read(fresh2.seq)]
        expect(freshIds[0]).toMatch(/^[0-9a-f-]{36}$/)
        expect(freshIds[0]).not.toBe(freshIds[1])
      })
    )

    it.effect("sends traceparent when a span is current, and extra headers", () =>
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const parent = Tracer.externalSpan({ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331" })
        const receipt = yield* publisher
          .publish(Events.CreditBalanceLow, lowBalance, { headers: { "X-Tenant": "eu-1" } })
          .pipe(Effect.withParentSpan(parent))
        const stored = (yield* storedMessages).find((m) => m.seq === receipt.seq)
        assert(stored !== undefined)
        expect(stored.header.get("traceparent")).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-0[01]$/)
        expect(stored.header.get("X-Tenant")).toBe("eu-1")
        const span = Envelope.parentSpanFromHeaders([["traceparent", stored.header.get("traceparent")]])
        expect(Option.map(span, (s) => s.traceId)).toStrictEqual(Option.some("0af7651916cd43dd8448eb211c80319c"))
      })
    )

    it.effect("a producer span only with a tracer; the trace goes on in the headers either way", () =>
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const parent = Tracer.externalSpan({ traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331" })
        const traceparentOf = (seq: number) =>
          Effect.map(storedMessages, (messages) => messages.find((m) => m.seq === seq)?.header.get("traceparent"))

        const spans: Array<Tracer.Span> = []
        const recording = Tracer.make({
          span(options) {
            const span = Tracer.nativeTracer.span(options)
            spans.push(span)
            return span
          }
        })
        const traced = yield* publisher
          .publish(Events.CreditBalanceLow, lowBalance)
          .pipe(Effect.withParentSpan(parent), Effect.withTracer(recording))
        const span = spans.find((s) => s.name === "send evt.credit.balance.low.v1")
        assert(span !== undefined)
        expect(span.kind).toBe("producer")
        expect(span.traceId).toBe(parent.traceId)
        expect(span.status._tag).toBe("Ended")
        expect(Object.fromEntries(span.attributes)).toMatchObject({
          "messaging.system": "nats",
          "messaging.destination.name": "evt.credit.balance.low.v1",
          "messaging.operation.name": "send",
          "messaging.operation.type": "send",
          "messaging.message.id": traced.eventId,
          "messaging.nats.stream": traced.stream,
          "messaging.nats.sequence": traced.seq,
          "server.address": "127.0.0.1"
        })
        expect(span.attributes.get("server.port")).toBe(Number(new URL((yield* NatsServer.NatsServerService).url).port))
        // The envelope's size and correlation id, read back from what was stored.
        const stored = (yield* storedMessages).find((m) => m.seq === traced.seq)
        assert(stored !== undefined)
        expect(span.attributes.get("messaging.message.body.size")).toBe(stored.data.length)
        expect(span.attributes.get("messaging.message.conversation_id")).toBe(
          JSON.parse(new TextDecoder().decode(stored.data)).correlation_id
        )
        expect(yield* traceparentOf(traced.seq)).toBe(`00-${parent.traceId}-${span.spanId}-01`)

        // Without a tracer nothing is recorded, and the caller's span is the parent the consumer sees.
        const untraced = yield* publisher
          .publish(Events.CreditBalanceLow, lowBalance)
          .pipe(Effect.withParentSpan(parent))
        expect(spans.filter((s) => s.name === "send evt.credit.balance.low.v1")).toHaveLength(1)
        expect(yield* traceparentOf(untraced.seq)).toBe(`00-${parent.traceId}-${parent.spanId}-01`)

        // No span at all: no trace headers.
        const plain = yield* publisher.publish(Events.CreditBalanceLow, lowBalance)
        expect(yield* traceparentOf(plain.seq)).toBe("")
      })
    )

    it.effect("publishAll keeps a window in flight and returns receipts in input order", () =>
      Effect.gen(function* () {
        const publisher = yield* Publisher.Publisher
        const items = Array.from({ length: 300 }, (_, i) => ({
          event: Events.CreditBalanceLow,
          payload: { ...lowBalance, balance: i }
        }))
        const receipts = yield* publisher.publishAll(items, { concurrency: 64 })
        expect(receipts).toHaveLength(300)
        const seqs = receipts.map((r) => r.seq)
        expect(new Set(seqs).size).toBe(300)
        const stored = yield* storedMessages
        for (const [i, receipt] of receipts.entries()) {
          const message = stored.find((m) => m.seq === receipt.seq)
          expect(JSON.parse(new TextDecoder().decode(message?.data)).data.balance).toBe(i)
        }
      })
    )
  })

  it.effect("each envelope carries the clock's time: within one millisecond, one second, and across seconds", () =>
    Effect.gen(function* () {
      const publisher = yield* Publisher.Publisher
      const broker = yield* Broker
      const stampAt = (epochMillis: number) =>
        Effect.gen(function* () {
          yield* TestClock.setTime(epochMillis)
          const receipt = yield* publisher.publish(Events.CreditBalanceLow, lowBalance)
          const stored = yield* broker.getMessage("GLAM_EVENTS", receipt.seq)
          assert(Option.isSome(stored))
          return JSON.parse(new TextDecoder().decode(stored.value.payload)).timestamp
        })
      const start = Date.UTC(2026, 10, 26, 12, 33, 37)
      const stamps = []
      for (const offset of [0, 0, 123, 124, 999, 1000, 1001, 43_343_500, -1])
        stamps.push(yield* stampAt(start + offset))
      expect(stamps).toStrictEqual([
        "2026-11-26T12:33:37+00:00",
        "2026-11-26T12:33:37+00:00",
        "2026-11-26T12:33:37.123000+00:00",
        "2026-11-26T12:33:37.124000+00:00",
        "2026-11-26T12:33:37.999000+00:00",
        "2026-11-26T12:33:38+00:00",
        "2026-11-26T12:33:38.001000+00:00",
        "2026-11-27T00:36:00.500000+00:00",
        "2026-11-26T12:33:36.999000+00:00"
      ])
    }).pipe(
      Effect.provide(
        Publisher.layer().pipe(
          Layer.provideMerge(Topology.layer(Streams.topology)),
          Layer.provideMerge(MemoryBroker.layer),
          Layer.provideMerge(ServiceIdentity.layer("billing-service"))
        )
      )
    )
  )

  it.live("a publish started while the server restarts succeeds once it is back, and one copy is stored", () =>
    Effect.gen(function* () {
      const server = yield* NatsServer.NatsServerService
      const publisher = yield* Publisher.Publisher
      yield* publisher.publish(Events.CreditBalanceLow, lowBalance)
      yield* server.stop
      const eventId = "5d1c1e0c-7f7a-4f38-9d7e-000000000002"
      const inFlight = yield* publisher
        .publish(Events.CreditBalanceLow, lowBalance, { eventId })
        .pipe(Effect.forkChild({ startImmediately: true }))
      yield* Effect.sleep("1500 millis")
      yield* server.start
      const receipt = yield* Fiber.join(inFlight)
      expect(receipt.stream).toBe("GLAM_EVENTS")
      expect(receipt.duplicate).toBe(false)
      const copies = (yield* storedMessages).filter((m) => m.header.get("Nats-Msg-Id") === eventId)
      expect(copies).toHaveLength(1)
    }).pipe(
      Effect.provide(
        messaging({ retry: Schedule.spaced("200 millis").pipe(Schedule.upTo({ duration: "20 seconds" })) })
      )
    )
  )

  it.live("no stream for the subject is a typed error that says so, without retrying", () =>
    Effect.gen(function* () {
      const publisher = yield* Publisher.Publisher
      const error = yield* publisher.publish(Events.CreditBalanceLow, lowBalance).pipe(Effect.flip)
      assert(error._tag === "NatsError")
      expect(error.reason._tag).toBe("StreamNotFound")
      expect(error.isRetryable).toBe(false)
      expect(error.message).toContain("no stream for subject evt.credit.balance.low.v1")
    }).pipe(Effect.provide(messaging({ topology: Topology.make({}) })))
  )

  it.live("an expected last sequence that does not match fails with WrongLastSequence and stores nothing", () =>
    Effect.gen(function* () {
      const publisher = yield* Publisher.Publisher
      const first = yield* publisher.publish(Events.CreditBalanceLow, lowBalance, { expectedLastSequence: 0 })
      const error = yield* publisher
        .publish(Events.CreditBalanceLow, lowBalance, { expectedLastSequence: 999 })
        .pipe(Effect.flip)
      assert(error._tag === "NatsError")
      expect(error.reason._tag).toBe("WrongLastSequence")
      expect(error.isRetryable).toBe(false)
      const second = yield* publisher.publish(Events.CreditBalanceLow, lowBalance, { expectedLastSequence: first.seq })
      expect(second.seq).toBe(first.seq + 1)
      expect(yield* storedMessages).toHaveLength(2)
    }).pipe(Effect.provide(messaging()))
  )
})

/**
 * Subscriber behaviour that needs a real nats-server: the trace context carried in NATS headers from
 * publisher to handler, the delivery a handler can read from `MessageContext`, and `working` reaching the server's own ack-wait timer in time. Handling,
 * policy decisions and the workers are tested on the memory broker under `TestClock`
 * (test/memory/Subscriber.test.ts and test/memory/SubscriberWorkers.test.ts).
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as MessageContext from "../src/MessageContext.js"
import { eventually } from "./support/Eventually.js"
import {
  callerSpanId,
  callerTraceId,
  recordingTracer,
  seenByHandler,
  slowHandlerKept,
  withMessaging
} from "./support/Subscribing.js"

describe("Subscriber on NATS", () => {
  // the server's own ack-wait timer runs on the wall clock: only a real server shows working reaches it in time
  it.live("a handler running 3× the ack-wait is not redelivered behind its back", () =>
    withMessaging(
      Effect.gen(function* () {
        const { runs, state } = yield* slowHandlerKept((duration) => Effect.sleep(duration))
        expect(runs).toStrictEqual([1])
        expect(state).toMatchObject({ numRedelivered: 0, numAckPending: 0, ackFloor: { streamSeq: 1 } })
      })
    )
  )

  // the trace context crosses the wire in NATS headers, written and read by the server's client
  it.live("with a tracer installed, the handler runs in a consumer span that continues the publisher's trace", () =>
    withMessaging(
      Effect.gen(function* () {
        const span = yield* seenByHandler("traced", Effect.currentSpan)
        expect(span.name).toBe("process evt.test.happened.v1")
        expect(span.kind).toBe("consumer")
        expect(span.traceId).toBe(callerTraceId)
        // the parent is the publish span, a child of the caller's span
        const parent = Option.match(span.parent, { onNone: () => "", onSome: (p) => p.spanId })
        expect(parent).toMatch(/^[0-9a-f]{16}$/)
        expect(parent).not.toBe(callerSpanId)
        expect(Object.fromEntries(span.attributes)).toMatchObject({
          "messaging.system": "nats",
          "messaging.operation.name": "process",
          "messaging.operation.type": "process",
          "messaging.destination.name": "evt.test.happened.v1",
          "messaging.consumer.group.name": "traced",
          "messaging.nats.stream": "GLAM_EVENTS",
          "messaging.nats.sequence": 1,
          "messaging.nats.delivery_count": 1,
          "server.address": "127.0.0.1"
        })
        expect(span.attributes.get("server.port")).toBeGreaterThan(0)
        expect(span.attributes.get("messaging.message.body.size")).toBeGreaterThan(100)
        // the settlement is recorded on the span once the handler returned
        yield* eventually(
          Effect.suspend(() =>
            span.attributes.get("messaging.nats.settlement") === "ack" ? Effect.void : Effect.fail("not settled yet")
          )
        )
      }).pipe(Effect.withTracer(recordingTracer))
    )
  )

  it.live(
    "without a tracer no span is made per message, and the publisher's trace context still reaches the handler",
    () =>
      withMessaging(
        Effect.gen(function* () {
          const parent = yield* seenByHandler(
            "untraced",
            Effect.map(Effect.currentParentSpan, (span) => ({ tag: span._tag, traceId: span.traceId }))
          )
          // the handler's parent is what the traceparent header said, not a span of the subscriber's own
          expect(parent).toStrictEqual({ tag: "ExternalSpan", traceId: callerTraceId })
        })
      )
  )

  // the delivery count and sequence are what the server's ack subject says, the headers what it stored
  it.live("a handler reads its delivery from MessageContext: subject, stream, sequence, count and headers", () =>
    withMessaging(
      Effect.gen(function* () {
        const delivery = yield* seenByHandler(
          "delivery-info",
          Effect.map(MessageContext.delivery, (found) =>
            Option.map(found, (info) => ({
              subject: info.subject,
              stream: info.stream,
              consumer: info.consumer,
              streamSeq: info.streamSeq,
              deliveryCount: info.deliveryCount,
              headerNames: info.headers.map(([name]) => name.toLowerCase()).sort()
            }))
          )
        )
        expect(Option.getOrThrow(delivery)).toMatchObject({
          subject: "evt.test.happened.v1",
          stream: "GLAM_EVENTS",
          consumer: "delivery-info",
          streamSeq: 1,
          deliveryCount: 1
        })
        expect(Option.getOrThrow(delivery).headerNames).toEqual(expect.arrayContaining(["nats-msg-id", "traceparent"]))
        // outside a handler there is none
        expect(yield* MessageContext.delivery).toStrictEqual(Option.none())
      })
    )
  )
})

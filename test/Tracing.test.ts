/**
 * One trace across services, as a collector receives it over OTLP from `Otlp.layer`: a caller's span,
 * the `send` span of its publish, the `process` span of the handler (continuing the producer's context
 * read from `traceparent`), the `send` of the handler's follow-up publish and the `process` of that;
 * a message another client wrote with a `traceparent` continues that client's trace; the settlement
 * and `error.type` are on the span; the library's metrics reach the collector too.
 */
import { assert, describe, expect, it } from "@effect/vitest"
import { DateTime, Deferred, Duration, Effect, Exit } from "effect"
import { Broker } from "../src/Broker.js"
import * as Otlp from "../src/Otlp.js"
import * as Policy from "../src/Policy.js"
import * as Publisher from "../src/Publisher.js"
import * as Subscriber from "../src/Subscriber.js"
import { messaging } from "./support/Messaging.js"
import * as OtlpReceiver from "./support/OtlpReceiver.js"
import { Fatal, FollowUp, Happened } from "./support/Subscribing.js"

/** Runs `program` with spans and metrics exported to `receiver`; they are all sent when it returns. */
const exportedTo = <A, E, R>(receiver: OtlpReceiver.Receiver, program: Effect.Effect<A, E, R>) =>
  Effect.scoped(program).pipe(Effect.provide(Otlp.layer({ baseUrl: receiver.url, serviceName: "tracing-test" })))

describe("traces over OTLP", () => {
  it.live(
    "caller → send → process → send (follow-up) → process: one trace, each span the child of the one before",
    () =>
      Effect.gen(function* () {
        const receiver = yield* OtlpReceiver.make
        yield* exportedTo(
          receiver,
          Effect.gen(function* () {
            const publisher = yield* Publisher.Publisher
            const done = yield* Deferred.make<void>()
            yield* Subscriber.make(Happened, {
              durable: "trace-first",
              handler: (envelope) => Effect.orDie(publisher.publish(FollowUp, { n: envelope.data.n }))
            })
            yield* Subscriber.make(FollowUp, {
              durable: "trace-second",
              handler: () => Deferred.succeed(done, undefined)
            })
            yield* publisher.publish(Happened, { n: 1, key: "k" }).pipe(Effect.withSpan("checkout", { kind: "server" }))
            yield* Deferred.await(done).pipe(Effect.timeout("10 seconds"))
          })
        )
        const caller = yield* receiver.span("checkout")
        const sendFirst = yield* receiver.span("send evt.test.happened.v1")
        const processFirst = yield* receiver.span("process evt.test.happened.v1")
        const sendSecond = yield* receiver.span("send evt.test.followed.v1")
        const processSecond = yield* receiver.span("process evt.test.followed.v1")
        const chain = [caller, sendFirst, processFirst, sendSecond, processSecond]
        expect(chain.map((span) => span.traceId)).toStrictEqual(chain.map(() => caller.traceId))
        expect(chain.map((span) => span.kind)).toStrictEqual(["server", "producer", "consumer", "producer", "consumer"])
        expect(chain.slice(1).map((span) => span.parentSpanId)).toStrictEqual(
          chain.slice(0, -1).map((span) => span.spanId)
        )
        expect(sendFirst.attributes).toMatchObject({
          "messaging.system": "nats",
          "messaging.operation.name": "send",
          "messaging.operation.type": "send",
          "messaging.destination.name": "evt.test.happened.v1",
          "messaging.nats.stream": "GLAM_EVENTS",
          "server.address": "127.0.0.1"
        })
        expect(processFirst.attributes).toMatchObject({
          "messaging.operation.name": "process",
          "messaging.operation.type": "process",
          "messaging.consumer.group.name": "trace-first",
          "messaging.message.id": sendFirst.attributes["messaging.message.id"],
          "messaging.message.conversation_id": sendFirst.attributes["messaging.message.conversation_id"],
          "messaging.nats.delivery_count": 1,
          "messaging.nats.settlement": "ack"
        })
        // the follow-up keeps the correlation id of the message it answers
        expect(sendSecond.attributes["messaging.message.conversation_id"]).toBe(
          sendFirst.attributes["messaging.message.conversation_id"]
        )
        expect(processSecond.resource["service.name"]).toBe("tracing-test")

        // the library's metrics went to the same collector
        const consumed = yield* receiver.metric("messaging.client.consumed.messages")
        const first = consumed.find((point) => point.attributes["messaging.consumer.group.name"] === "trace-first")
        assert(first !== undefined && first.type === "sum")
        expect(first.value).toBe(1)
        expect(first.attributes["messaging.glam.outcome"]).toBe("acked")
        const sent = yield* receiver.metric("messaging.client.sent.messages")
        expect(sent.map((point) => (point.type === "sum" ? point.value : 0)).reduce((a, b) => a + b, 0)).toBe(2)
      }).pipe(Effect.provide(messaging()))
  )

  it.live("a message another client wrote with a traceparent continues its trace; a failure is on the span", () =>
    Effect.gen(function* () {
      const receiver = yield* OtlpReceiver.make
      const traceId = "0af7651916cd43dd8448eb211c80319c"
      const spanId = "b7ad6b7169203331"
      yield* exportedTo(
        receiver,
        Effect.gen(function* () {
          const broker = yield* Broker
          const handled = yield* Deferred.make<void>()
          yield* Subscriber.make(Happened, {
            durable: "trace-foreign",
            policy: Policy.make<Fatal>({ rules: { Fatal: Policy.term } }),
            handler: (envelope) =>
              envelope.data.n === 2 ? Effect.fail(new Fatal()) : Deferred.succeed(handled, undefined)
          })
          // written as a Go or Python producer writes it: the envelope, the message id, a traceparent
          for (const n of [1, 2]) {
            const bytes = Happened.encode({
              eventId: `foreign-${n}`,
              eventType: Happened.subject,
              correlationId: "conversation-1",
              sourceService: "python-service",
              timestamp: yield* DateTime.now,
              data: { n, key: "k" }
            })
            assert(Exit.isSuccess(bytes))
            yield* broker.publish({
              subject: Happened.subject,
              payload: bytes.value,
              headers: [["traceparent", `00-${traceId}-${spanId}-01`]],
              messageId: `foreign-${n}`,
              timeout: Duration.seconds(2)
            })
          }
          yield* Deferred.await(handled).pipe(Effect.timeout("10 seconds"))
          yield* Effect.sleep("300 millis")
        })
      )
      const processed = (yield* receiver.spans).filter((span) => span.name === "process evt.test.happened.v1")
      expect(processed).toHaveLength(2)
      for (const span of processed) {
        expect(span.traceId).toBe(traceId)
        expect(span.parentSpanId).toBe(spanId)
        expect(span.attributes["messaging.message.conversation_id"]).toBe("conversation-1")
      }
      const failed = processed.find((span) => span.attributes["messaging.message.id"] === "foreign-2")
      assert(failed !== undefined)
      expect(failed.attributes).toMatchObject({ "messaging.nats.settlement": "term", "error.type": "Fatal" })
    }).pipe(Effect.provide(messaging()))
  )
})

/**
 * A dead letter made the way a subscriber makes one, for the tests of the dead-letter tools: an event
 * stored on its subject, then written to the dead-letter stream as a handler's `PaymentDeclined`
 * failure at its third delivery (policy decision, two retries).
 */
import { Duration, Effect } from "effect"
import { Broker } from "../../src/Broker.js"
import * as DeadLetter from "../../src/DeadLetter.js"

/** Stores `{ event_id, event_type: subject, data }` on `subject` and dead-letters it; the dead letter's receipt. */
export const deadLettered = (subject: string, eventId: string, data: unknown, consumer = "reader") =>
  Effect.gen(function* () {
    const broker = yield* Broker
    const payload = new TextEncoder().encode(JSON.stringify({ event_id: eventId, event_type: subject, data }))
    const ack = yield* broker.publish({ subject, payload, headers: [], timeout: Duration.seconds(5) })
    const stored = yield* Effect.flatMap(broker.getMessage(ack.stream, ack.seq), Effect.fromOption)
    return yield* DeadLetter.publish({
      message: stored,
      consumer,
      deliveryCount: 3,
      failure: { code: "PaymentDeclined", message: "card declined", operation: "handler" },
      decision: "policy",
      retryCount: 2,
      maxRetries: 2
    })
  })

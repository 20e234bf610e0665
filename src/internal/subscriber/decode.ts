/**
 * A subscriber's decoder, made once: a message to the envelope of its subject's event, checked to
 * carry that subject as its `event_type`. Synchronous, once per message, before it is queued.
 */
import { Exit } from "effect"
import type { Message } from "../../Broker.js"
import * as Envelope from "../../Envelope.js"
import type * as Event from "../../Event.js"
import type { Received } from "../../Subscriber.js"

export const decoder = <E extends Event.Any>(
  events: ReadonlyArray<E>,
  group: Pick<Event.Group<ReadonlyArray<Event.Any>>, "decodeExit">
): ((message: Message) => Exit.Exit<Received<E>, Envelope.DecodeError>) => {
  const bySubject = new Map<string, E>(events.map((event) => [event.subject, event]))
  return (message) => {
    const event = bySubject.get(message.subject)
    if (event === undefined) {
      // No event of the subscription has the subject: the group's error says so and lists the known ones.
      const unknown = group.decodeExit(message.subject, message.payload)
      return Exit.isFailure(unknown) ? Exit.failCause(unknown.cause) : Exit.die(`no event for ${message.subject}`)
    }
    const decoded = event.decodeExit(message.payload, message.subject)
    if (Exit.isFailure(decoded)) return Exit.failCause(decoded.cause)
    const envelope = decoded.value
    if (envelope.eventType !== message.subject) {
      return Exit.fail(
        new Envelope.DecodeError({
          stage: "Envelope",
          path: "event_type",
          message: `Envelope: event_type "${envelope.eventType}" does not match the subject "${message.subject}"`,
          raw: message.payload,
          subject: message.subject,
          eventId: envelope.eventId,
          eventType: envelope.eventType,
          correlationId: envelope.correlationId
        })
      )
    }
    // Decoded with the event of this subject, and eventType equals that subject: the pairing
    // `Received<E>` describes, which the compiler cannot follow through the union.
    return decoded as Exit.Exit<Received<E>, Envelope.DecodeError>
  }
}

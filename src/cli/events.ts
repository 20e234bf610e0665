/**
 * `glam-messaging publish` and `tail`: sending one event checked against the GLAM catalogue (or raw
 * bytes outside it), and watching what a stream stores through ordered consumers that are deleted when
 * the command ends.
 */
import { DateTime, Duration, Effect, Exit, Option, Result, Schema, Stream } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { Broker, type StoredMessage } from "../Broker.js"
import * as Envelope from "../Envelope.js"
import type * as Event from "../Event.js"
import * as Events from "../glam/Events.js"
import { type From, orderedRead } from "../internal/nats/orderedRead.js"
import { firstIssue, issueMessage } from "../internal/schemaIssues.js"
import { NatsClient } from "../NatsClient.js"
import * as Publisher from "../Publisher.js"
import * as ServiceIdentity from "../ServiceIdentity.js"
import * as connection from "./connection.js"
import { CliError } from "./errors.js"
import * as flags from "./flags.js"
import * as output from "./output.js"
import * as parse from "./parse.js"

const catalogueEvent = (subject: string): Effect.Effect<Event.Any, CliError> =>
  Option.match(Events.all.bySubject(subject), {
    onNone: () =>
      Effect.fail(
        new CliError({
          message: `no GLAM event has the subject ${subject}; --raw publishes bytes outside the catalogue (known: ${Events.all.subjects.join(", ")})`
        })
      ),
    onSome: Effect.succeed
  })

// The payload as typed on the command line is the wire form; decoding it is the check, with wire paths.
const checked = (event: Event.Any, json: unknown): Effect.Effect<unknown, Envelope.EncodeError> => {
  const decoded = Schema.decodeUnknownExit(event.payload)(json)
  if (Exit.isSuccess(decoded)) return Effect.succeed(decoded.value)
  const error = Exit.findErrorOption(decoded)
  const { path, detail } = Option.isSome(error)
    ? firstIssue(error.value, "data")
    : { path: undefined, detail: "the payload does not match its schema" }
  return Effect.fail(
    new Envelope.EncodeError({ eventType: event.subject, message: issueMessage(event.subject, path, detail), path })
  )
}

const publish = Command.make(
  "publish",
  {
    ...connection.flags,
    subject: Argument.String("subject").pipe(Argument.withDescription("The event's subject")),
    payload: Argument.String("payload").pipe(
      Argument.withDescription("The event's data as JSON, or @file to read it from a file")
    ),
    raw: flags.switchOf("raw", "Publish the bytes as they are, outside the catalogue"),
    eventId: Flag.String("event-id").pipe(
      Flag.withDescription("The event id and Nats-Msg-Id (default: a new UUID; with --raw, none)"),
      Flag.optional
    ),
    source: Flag.String("source").pipe(
      Flag.withDescription("The envelope's source_service"),
      Flag.withDefault("glam-messaging-cli")
    ),
    json: flags.switchOf("json", "Print the receipt as JSON")
  },
  (given) =>
    Effect.gen(function* () {
      if (given.raw) {
        const broker = yield* Broker
        const payload = yield* parse.bytesOf(given.payload)
        const ack = yield* broker.publish({
          subject: given.subject,
          payload,
          headers: [],
          messageId: Option.getOrUndefined(given.eventId),
          timeout: Duration.seconds(5)
        })
        const receipt = {
          subject: given.subject,
          stream: ack.stream,
          seq: ack.seq,
          duplicate: ack.duplicate,
          bytes: payload.length
        }
        if (given.json) return yield* output.json(receipt)
        return yield* output.line(
          `stored ${payload.length} bytes on ${given.subject} as ${ack.stream} #${ack.seq}${ack.duplicate ? " (duplicate: the server had it already)" : ""}`
        )
      }
      const event = yield* catalogueEvent(given.subject)
      const data = yield* checked(event, yield* parse.jsonOf(given.payload))
      const publisher = yield* Publisher.make({ retry: Publisher.retryWithin("3 seconds") }).pipe(
        Effect.provide(ServiceIdentity.layer(given.source))
      )
      const receipt = yield* publisher.publish(event, data, { eventId: Option.getOrUndefined(given.eventId) })
      if (given.json) return yield* output.json(receipt)
      yield* output.line(
        `stored ${receipt.subject} as ${receipt.stream} #${receipt.seq}, event id ${receipt.eventId}${receipt.duplicate ? " (duplicate: the server had it already)" : ""}`
      )
    }).pipe(connection.provide(given))
).pipe(Command.withDescription("Publish one event of the GLAM catalogue, checked against its schema"))

const fromOf = (text: Option.Option<string>): Effect.Effect<From, CliError> => {
  if (Option.isNone(text)) return Effect.succeed({ _tag: "New" })
  const value = text.value.trim()
  if (value === "all" || value === "start") return Effect.succeed({ _tag: "All" })
  if (/^\d+$/.test(value)) {
    const seq = Number(value)
    return seq >= 1
      ? Effect.succeed({ _tag: "Sequence", seq })
      : Effect.fail(new CliError({ message: "--from: a sequence starts at 1" }))
  }
  return Effect.map(
    parse.pointInTime("--from", value),
    (time): From => ({ _tag: "Time", iso: DateTime.formatIso(time) })
  )
}

const text = new TextDecoder("utf-8", { fatal: true })

const describe = (message: StoredMessage, pretty: boolean): string => {
  const decoded = Envelope.decodeEnvelopeExit(message.payload, message.subject)
  const where = `#${message.seq} ${message.subject}`
  if (Exit.isFailure(decoded)) {
    const error = Exit.findErrorOption(decoded)
    const reason = Option.isSome(error) ? error.value.message : "not an envelope"
    return `${where} NOT A GLAM ENVELOPE (${reason}): ${output.printable(message.payload)}`
  }
  const envelope = decoded.value
  const data = JSON.stringify(envelope.data, null, pretty ? 2 : undefined)
  return pretty
    ? [
        `${where}  ${DateTime.formatIso(envelope.timestamp)}`,
        `  event_id        ${envelope.eventId}`,
        `  correlation_id  ${envelope.correlationId}`,
        `  source_service  ${envelope.sourceService}`,
        `  data            ${data.split("\n").join("\n  ")}`
      ].join("\n")
    : `${where} ${DateTime.formatIso(envelope.timestamp)} ${envelope.sourceService} ${envelope.eventId} ${data}`
}

const jsonLine = (message: StoredMessage): string => {
  const body = Result.try((): unknown => JSON.parse(text.decode(message.payload)))
  return JSON.stringify({
    stream: message.stream,
    seq: message.seq,
    subject: message.subject,
    storedAt: DateTime.formatIso(DateTime.makeUnsafe(message.timestampMillis)),
    envelope: Result.isSuccess(body) ? body.success : null,
    raw: Result.isSuccess(body) ? undefined : output.printable(message.payload)
  })
}

const tail = Command.make(
  "tail",
  {
    ...connection.flags,
    subjects: Argument.String("subject").pipe(
      Argument.withDescription("Subjects to watch, wildcards allowed (each must be captured by one stream)"),
      Argument.atLeast(1)
    ),
    from: Flag.String("from").pipe(
      Flag.withDescription(
        "Start at a stream sequence, a time (ISO-8601 or 2h for two hours ago), or 'all' (default: new messages)"
      ),
      Flag.optional
    ),
    count: Flag.Int("count").pipe(
      Flag.withAlias("n"),
      Flag.withDescription("Stop after this many messages"),
      Flag.optional
    ),
    pretty: flags.switchOf("pretty", "One envelope per block, its data indented"),
    json: flags.switchOf("json", "One JSON object per line")
  },
  (given) =>
    Effect.gen(function* () {
      const client = yield* NatsClient
      const from = yield* fromOf(given.from)
      const prefix = `glam_tail_${crypto.randomUUID().slice(0, 8)}`
      const messages = orderedRead(client, { subjects: given.subjects, from, namePrefix: prefix })
      const limited = Option.match(given.count, { onNone: () => messages, onSome: (n) => Stream.take(messages, n) })
      yield* Stream.runForEach(limited, (message) =>
        output.line(given.json ? jsonLine(message) : describe(message, given.pretty))
      )
    }).pipe(connection.provide(given))
).pipe(Command.withDescription("Print the envelopes stored on subjects as they arrive, leaving no consumer behind"))

export { publish, tail }

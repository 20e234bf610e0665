/**
 * Dead letters for messages whose handler never decided: the server's max-deliveries advisories, kept
 * by an advisory stream, read by a durable consumer and turned into records.
 *
 * Not public: `DeadLetter` documents and exports `advisorySubject`, and `DeadLetter.watchAdvisories` is
 * `watch` writing with `DeadLetter.publish`; a `Subscriber` runs one for its consumer.
 */
import { Duration, Effect, Exit, Option, Schema, Stream } from "effect"
import { Broker, type Message, type StoredMessage } from "../../Broker.js"
import * as Envelope from "../../Envelope.js"
import * as NatsError from "../../NatsError.js"
import type { OutageLog } from "../../Publisher.js"
import type { ServiceIdentity } from "../../ServiceIdentity.js"
import * as Topology from "../../Topology.js"
import * as PublishOutages from "../publisher/outages.js"
import { asText } from "./record.js"
import { growingDelay, WriteOutages } from "./writeOutages.js"

/** Documented as `DeadLetter.advisorySubject`. */
export const advisorySubject = (stream: string, consumer: string): string =>
  `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${consumer}`

// The fields of the server's advisory that matter here (it has no subject and no data).
const Advisory = Schema.Struct({
  stream: Schema.String,
  consumer: Schema.String,
  streamSeq: Schema.Int,
  deliveries: Schema.Int,
  timestamp: Envelope.Timestamp
}).pipe(Schema.encodeKeys({ streamSeq: "stream_seq" }))

const decodeAdvisory = Schema.decodeUnknownExit(Schema.fromJsonString(Advisory))

const givenUp = (
  { stream, consumer, streamSeq: seq, deliveries, timestamp }: typeof Advisory.Type,
  original: Option.Option<StoredMessage>
) => ({
  message: Option.getOrElse(original, () => ({ stream, seq })),
  consumer,
  deliveryCount: deliveries,
  failure: {
    code: "MaxDeliveriesExceeded",
    message: Option.isSome(original)
      ? `delivered ${deliveries} times and never settled: the handler never decided (the process died or hung on it each time)`
      : `delivered ${deliveries} times and never settled, and gone from ${stream} (expired or deleted) before it could be dead-lettered: its bytes are lost`,
    operation: "handler"
  },
  decision: "max deliveries" as const,
  retryCount: deliveries - 1,
  maxRetries: deliveries - 1,
  firstFailureAt: timestamp,
  lastFailureAt: timestamp
})

/** What a watcher is told: `DeadLetter.WatchOptions` less how to publish, which its `Write` knows. */
export interface Settings {
  readonly stream: string
  readonly consumer: string
  readonly advisoryStream?: string | undefined
  readonly durable?: string | undefined
  readonly retryDelay?: Duration.Input | undefined
}

/** Writes the dead letter of a message given up on, telling retried attempts to `outages`. */
export type Write = (
  input: ReturnType<typeof givenUp>,
  outages: OutageLog
) => Effect.Effect<
  { readonly duplicate: boolean; readonly stream: string; readonly seq: number },
  NatsError.NatsError,
  Broker | ServiceIdentity
>

// The stream that captures the consumer's advisories, when none is named.
const advisoryStreamFor = (broker: Broker["Service"], { stream, consumer }: Settings) =>
  Effect.flatMap(broker.streamFor(advisorySubject(stream, consumer)), (found) =>
    Option.match(found, {
      onSome: Effect.succeed,
      onNone: () =>
        Effect.fail(
          NatsError.make(
            "DeadLetter.watchAdvisories",
            new NatsError.StreamNotFound({
              message: `no stream captures ${advisorySubject(stream, consumer)}, the max-deliveries advisories of ${stream}/${consumer}: declare one with Topology.withDeadLetters, or name it with { advisoryStream }`,
              subject: advisorySubject(stream, consumer)
            })
          )
        )
    })
  )

/**
 * The watcher, telling `up` once its consumer is provisioned and it reads advisories: a supervised
 * watcher (the `Subscriber`'s) logs its recovery then.
 */
export const watch = Effect.fnUntraced(function* (options: Settings, up: Effect.Effect<void>, write: Write) {
  const broker = yield* Broker
  const advisoryStream = options.advisoryStream ?? (yield* advisoryStreamFor(broker, options))
  const durable = options.durable ?? `dlq-${options.stream}-${options.consumer}`
  const retryDelay = Duration.fromInputUnsafe(options.retryDelay ?? "5 seconds")
  const writes = new WriteOutages(`advisory watcher ${durable}`)
  const transient = new PublishOutages.Outages()
  yield* Topology.provision(
    Topology.make({
      consumers: [
        {
          stream: advisoryStream,
          name: durable,
          description: `dead-letters what ${options.stream}/${options.consumer} never settled`,
          filterSubject: advisorySubject(options.stream, options.consumer),
          ackWait: "1 minute"
        }
      ]
    })
  )

  const handle = (message: Message) =>
    Effect.gen(function* () {
      const advisory = decodeAdvisory(asText(message.payload))
      if (Exit.isFailure(advisory)) {
        yield* Effect.logError(`${advisoryStream}#${message.streamSeq} is not a max-deliveries advisory; terminated`)
        return message.term()
      }
      const { stream, streamSeq: seq, consumer } = advisory.value
      const written = yield* broker.getMessage(stream, seq).pipe(
        Effect.flatMap((original) => write(givenUp(advisory.value, original), transient)),
        Effect.exit
      )
      if (Exit.isFailure(written)) {
        // The advisory is the message's last trace: it stays unacknowledged, and comes back later and later.
        const delay = growingDelay(retryDelay, Duration.max(retryDelay, Duration.minutes(1)), message.deliveryCount)
        yield* writes.failed(`${stream}#${seq}`, written.cause, `its advisory comes back in ${delay} ms`)
        return message.nak(delay)
      }
      yield* writes.succeeded
      message.ack()
      // A duplicate receipt: this advisory came again (its ack never reached the server, the process died
      // first) and its dead letter was written and logged the first time; `publish` says so at DEBUG.
      if (written.value.duplicate) return
      const { stream: dlq, seq: dlqSeq } = written.value
      yield* Effect.logWarning(
        `${stream}#${seq} reached max deliveries on ${consumer}: dead-lettered as ${dlq}#${dlqSeq}`
      )
    })

  yield* up
  yield* broker.consume(advisoryStream, durable, { maxMessages: 8 }).pipe(Stream.runForEach(handle))
  return yield* Effect.never
})

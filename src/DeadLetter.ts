/**
 * Dead letters: what the library writes when it gives up on a message, so that nothing is ever dropped.
 *
 * A dead letter is a `Record` (the seed's `ErrorPayload` fields plus what it takes to put the message
 * back: original subject, headers and exact bytes, stream sequence, consumer, delivery count, failure
 * times, decision) in a normal GLAM envelope on `dlq.<subject without evt./cmd.>`, stored by the stream's dead-letter
 * stream (`<NAME>_DLQ` of `Topology.withDeadLetters`, `GLAM_DLQ` for `GLAM_EVENTS`).
 * `publish` sends it as `Nats-Msg-Id: dlq:<stream>:<seq>` and succeeds only once the server stored it,
 * so a subscriber settles the original after the record is durable, and a second attempt (a crash in
 * between, another instance, the max-deliveries advisory) stores nothing new within the duplicate window.
 *
 * The original bytes: valid UTF-8 JSON is kept as text in `original_payload` (the JSON string gives the
 * bytes back exactly), anything else as base64 in `original_payload_base64`. When that record would not
 * fit in one message (a body near the 1 MiB max payload), the raw bytes go into chunk messages on
 * `dlq._chunk.<stream>` first, each as `dlq:<stream>:<seq>:chunk:<i>/<n>`, and the record lists their
 * sequences with the size and sha256 of the whole; both text fields are then null. `originalBytes`
 * reassembles and checks them. `dlq._chunk.<stream>`, `dlq._replayed.<dead-letter stream>` and
 * `dlq._missing.<stream>` are reserved subjects (before 0.2.0 chunks and markers went to `dlq._chunk` and
 * `dlq._replayed`, which are still read), so that each stream's dead letters can have a stream of their
 * own (`Topology.withDeadLetters`).
 *
 * The dedupe key is the stream message, not the consumer: when two consumers give up on the same
 * message, the first record stands for both, and one replay redelivers it to every consumer.
 *
 * `list` reads the dead-letter stream; `replay` republishes original bytes to original subjects and
 * records each replay with a marker on `dlq._replayed.<dead-letter stream>` (`replayStream` reports it
 * entry by entry); `purge` removes the part of the stream older than an age;
 * `watchAdvisories` dead-letters what a consumer was given `maxDeliver` times without ever settling it,
 * from the server's advisories that an advisory stream keeps (`<NAME>_ADVISORIES`, `GLAM_ADVISORIES`).
 *
 * Not here: when to dead-letter (`Policy`) and the consume loop (`Subscriber`).
 *
 * @since 0.1.0
 */
import { DateTime, Duration, Effect, Option, type Schedule, Stream } from "effect"
import { Broker, type Message, type StoredMessage } from "./Broker.js"
import type * as Envelope from "./Envelope.js"
import * as advisories from "./internal/deadLetter/advisories.js"
import * as publishing from "./internal/deadLetter/publish.js"
import * as purging from "./internal/deadLetter/purge.js"
import * as record from "./internal/deadLetter/record.js"
import * as replaying from "./internal/deadLetter/replay.js"
import * as subjects from "./internal/deadLetter/subjects.js"
import { matcher } from "./internal/subjects.js"
import type * as NatsError from "./NatsError.js"
import type * as Publisher from "./Publisher.js"
import type { ServiceIdentity } from "./ServiceIdentity.js"

/**
 * Why the message was given up on: its bytes could not be decoded, the policy said so, or it was
 * delivered as often as allowed.
 *
 * @category models
 * @since 0.1.0
 */
export const Decision = record.Decision

/**
 * @category models
 * @since 0.1.0
 */
export type Decision = typeof Decision.Type

/**
 * The dead-letter record, camelCase here and snake_case on the wire.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Record = record.Record

/**
 * @category models
 * @since 0.1.0
 */
export type Record = typeof Record.Type

/**
 * A message that was no longer in its stream when it was to be dead-lettered (expired or deleted).
 *
 * @category models
 * @since 0.1.0
 */
export interface Missing {
  readonly stream: string
  readonly seq: number
}

/**
 * What went wrong, as the record names it.
 *
 * @category models
 * @since 0.1.0
 */
export interface Failure {
  /** The error's tag or class name: `DecodeError`, `PaymentDeclined`, `MaxDeliveriesExceeded`. */
  readonly code: string
  readonly message: string
  /** What was being done: `decode (Payload)`, `handler`. */
  readonly operation: string
}

/**
 * Everything `publish` needs about the message given up on.
 *
 * @category models
 * @since 0.1.0
 */
export interface PublishInput {
  readonly message: Message | StoredMessage | Missing
  /** Default: the delivery's consumer, else `""`. */
  readonly consumer?: string | undefined
  /** Default: the delivery's count, else 0. */
  readonly deliveryCount?: number | undefined
  readonly failure: Failure
  readonly decision: Decision
  readonly retryCount: number
  readonly maxRetries: number
  /** Default: `lastFailureAt`. */
  readonly firstFailureAt?: DateTime.Utc | undefined
  /** Default: now. */
  readonly lastFailureAt?: DateTime.Utc | undefined
  /** The envelope, when the bytes decoded to one: its ids are preferred to those read from the bytes. */
  readonly envelope?: Envelope.Envelope<unknown> | undefined
}

/**
 * @category models
 * @since 0.1.0
 */
export interface PublishOptions {
  /** How long to wait for the server's acknowledgement of one attempt. Default `Publisher.defaults.timeout` (2 seconds). */
  readonly timeout?: Duration.Input | undefined
  /** When to try a retryable failure again. Default: `Publisher.defaultRetry`. */
  readonly retry?: Schedule.Schedule<unknown, NatsError.NatsError> | undefined
  /** The largest message the server takes (its max payload). Default 1 MiB, nats-server's default. */
  readonly maxMessageBytes?: number | undefined
  /**
   * Where retried attempts are told (since 0.2.0): give one log to many publishes so that an outage is
   * one WARN and a summary, not a WARN per dead letter. Default: a log of this publish alone.
   */
  readonly outages?: Publisher.OutageLog | undefined
}

/**
 * Where the record was stored; `duplicate` when this dead letter had already been written.
 *
 * @category models
 * @since 0.1.0
 */
export interface Receipt {
  readonly subject: string
  readonly stream: string
  readonly seq: number
  readonly messageId: string
  readonly duplicate: boolean
  /** How many chunk messages hold the original bytes (0 when they are in the record). */
  readonly chunks: number
}

/**
 * The dead-letter subject of a subject: `evt.order.created` → `dlq.order.created`, `cmd.x` → `dlq.x`,
 * anything else gets `dlq.` in front.
 *
 * @category constructors
 * @since 0.1.0
 */
export const subjectFor = subjects.subjectFor

/**
 * The `Nats-Msg-Id` of the dead letter of a stream message.
 *
 * @category constructors
 * @since 0.1.0
 */
export const messageIdFor = subjects.messageIdFor

/**
 * Writes the dead letter of a message and returns once the server has stored it. Fails with the
 * `NatsError` of the last attempt (the caller then leaves the original unsettled), never silently.
 *
 * @category constructors
 * @since 0.1.0
 */
export const publish = Effect.fn("DeadLetter.publish")(function* (
  input: PublishInput,
  options: PublishOptions = {}
): Effect.fn.Return<Receipt, NatsError.NatsError, Broker | ServiceIdentity> {
  return yield* publishing.writeRecord(input, options)
})

/**
 * One replay of a dead letter.
 *
 * @category models
 * @since 0.1.0
 */
export interface Replay {
  /** The sequence of the replay's marker in the dead-letter stream. */
  readonly seq: number
  /** Where the replayed copy was stored. */
  readonly stream: string
  readonly streamSeq: number
  readonly messageId: string
  readonly replayedAt: DateTime.Utc
}

/**
 * A dead letter as `list` reads it.
 *
 * @category models
 * @since 0.1.0
 */
export interface Entry {
  /** The dead-letter stream and the record's sequence in it. */
  readonly stream: string
  readonly seq: number
  readonly subject: string
  readonly record: Record
  /** The service that wrote the record, and when. */
  readonly recordedBy: string
  readonly recordedAt: DateTime.Utc
  /** Oldest first; empty when it was never replayed. */
  readonly replays: ReadonlyArray<Replay>
}

/**
 * Which dead letters to list or replay; every criterion given must hold.
 *
 * @category models
 * @since 0.1.0
 */
export interface Filter {
  /**
   * The dead-letter stream. Default: the broker's one stream whose subjects are all `dlq.*`; with none or
   * several, `list` and `replay` fail with a `StreamNotFound` naming them.
   */
  readonly stream?: string | undefined
  /** The original subject, exactly or as a NATS pattern (`evt.merchant.>`, `evt.*.created.v1`). */
  readonly subject?: string | undefined
  readonly errorCode?: string | undefined
  /** The original envelope's `event_type`. */
  readonly eventType?: string | undefined
  /** Last failure at or after. */
  readonly since?: DateTime.Utc | undefined
  /** Last failure before. */
  readonly until?: DateTime.Utc | undefined
  /** Only these sequences of the dead-letter stream. */
  readonly seqs?: ReadonlyArray<number> | undefined
  /** At most this many, oldest first. */
  readonly limit?: number | undefined
}

/**
 * The dead letters of the dead-letter stream that pass the filter, oldest first, each with its replays.
 * Reads the whole stream by sequence (markers of replays follow their records).
 *
 * @category accessors
 * @since 0.1.0
 */
export const list = Effect.fn("DeadLetter.list")(function* (filter: Filter = {}) {
  const broker = yield* Broker
  const stream = yield* replaying.deadLetterStream(broker, filter.stream)
  const { records, replays } = yield* replaying.readStream(broker, stream)
  const subjectMatches = filter.subject === undefined ? undefined : matcher(filter.subject)
  const matches = ({ seq, record }: Pick<Entry, "seq" | "record">): boolean =>
    (subjectMatches === undefined || (record.originalSubject !== null && subjectMatches(record.originalSubject))) &&
    (filter.errorCode === undefined || record.errorCode === filter.errorCode) &&
    (filter.eventType === undefined || record.eventType === filter.eventType) &&
    (filter.since === undefined || DateTime.isGreaterThanOrEqualTo(record.lastFailureAt, filter.since)) &&
    (filter.until === undefined || DateTime.isLessThan(record.lastFailureAt, filter.until)) &&
    (filter.seqs === undefined || filter.seqs.includes(seq))
  return records
    .filter(matches)
    .slice(0, filter.limit)
    .map((entry): Entry => ({ ...entry, replays: replays.get(entry.seq) ?? [] }))
})

/**
 * The original bytes of a dead letter, put back together from its chunks when they were too big for the
 * record; `None` when they were not kept (the message was gone) or a chunk is missing or altered.
 *
 * @category accessors
 * @since 0.1.0
 */
export const originalBytes = Effect.fnUntraced(function* (entry: Pick<Entry, "stream" | "seq" | "record">) {
  const inline = record.inlineBytes(entry.record)
  if (Option.isSome(inline) || entry.record.originalPayloadChunks.length === 0) return inline
  const broker = yield* Broker
  const parts = yield* Effect.forEach(entry.record.originalPayloadChunks, (seq) => broker.getMessage(entry.stream, seq))
  const bytes = record.joinChunks(
    entry.record,
    parts.flatMap((part) => (Option.isSome(part) ? [part.value.payload] : []))
  )
  if (Option.isNone(bytes)) {
    yield* Effect.logWarning(`the chunks of dead letter ${entry.stream}#${entry.seq} are missing or altered`)
  }
  return bytes
})

/**
 * Which dead letters to replay and how.
 *
 * @category models
 * @since 0.1.0
 */
export interface ReplayOptions extends Filter {
  /**
   * At most this many replays, oldest first; a `Failed` entry counts, a skipped one does not. Entries
   * replayed before are skipped without counting, so calling `replay` again with the same limit goes on
   * with the next ones, until every entry is skipped.
   */
  readonly limit?: number | undefined
  /** Replay entries that were replayed before once more (they then count toward `limit`). Default `false`: they are skipped. */
  readonly force?: boolean | undefined
  readonly timeout?: Duration.Input | undefined
  readonly retry?: Schedule.Schedule<unknown, NatsError.NatsError> | undefined
}

/**
 * What `replay` did with one dead letter: `Replayed`; `Skipped` with the reason (replayed before and
 * not forced, original subject unknown, original bytes not kept or a chunk of them gone); or, since
 * 0.2.0, `Failed` with the `NatsError` of a copy or marker the server refused (no stream takes the
 * subject, the message was rejected). A `Failed` entry has no marker, so the next replay tries it again.
 *
 * @category models
 * @since 0.1.0
 */
export type ReplayOutcome =
  | {
      readonly _tag: "Replayed"
      readonly seq: number
      readonly subject: string
      readonly stream: string
      readonly streamSeq: number
      readonly messageId: string
      /** The server had already stored this replay (a replay interrupted before its marker was written). */
      readonly duplicate: boolean
    }
  | { readonly _tag: "Skipped"; readonly seq: number; readonly reason: string }
  | { readonly _tag: "Failed"; readonly seq: number; readonly subject: string; readonly error: NatsError.NatsError }

/**
 * The header a replayed message carries: `<dead-letter stream>:<record seq>`.
 *
 * @category constants
 * @since 0.1.0
 */
export const replayedFromHeader = replaying.replayedFromHeader

/**
 * Publishes the original bytes of the selected dead letters to their original subjects again, with
 * their original headers but a new `Nats-Msg-Id` (`replay:<seq>:<n>`), and records each replay with a
 * marker in the dead-letter stream. An entry replayed before is skipped unless `force` is set, and a
 * skipped entry does not count toward `limit`: `replay({ limit: 100 })` called again goes on with the
 * next hundred. Returns one outcome per entry read, oldest first; `replayStream` gives them as they come.
 *
 * Fails with a `NatsError` when the dead-letter stream cannot be read, or when the server stays
 * unreachable through `retry`; what the server refuses for one entry is that entry's `Failed` outcome.
 *
 * @category constructors
 * @since 0.1.0
 */
export const replay = Effect.fn("DeadLetter.replay")(function* (options: ReplayOptions = {}) {
  return yield* Stream.runCollect(outcomes(options))
})

/**
 * `replay` one entry at a time: the stream emits each entry's outcome once that entry is done (its
 * copy and marker stored), oldest first, and ends after `limit` replays. For progress over a long
 * replay, and to stop early: interrupting it stops before the next entry, and what was replayed by then
 * is recorded.
 *
 * @example
 * ```ts
 * const replayed = yield* DeadLetter.replayStream({ subject: "evt.order.>" }).pipe(
 *   Stream.tap((outcome) => Effect.log(`${outcome._tag} #${outcome.seq}`)),
 *   Stream.runFold(() => 0, (n, outcome) => (outcome._tag === "Replayed" ? n + 1 : n))
 * )
 * ```
 *
 * @category constructors
 * @since 0.2.0
 */
export const replayStream = (options: ReplayOptions = {}): Stream.Stream<ReplayOutcome, NatsError.NatsError, Broker> =>
  outcomes(options).pipe(Stream.withSpan("DeadLetter.replayStream"))

// `replay` and `replayStream` are this stream; only `replay` is one span.
const outcomes = (options: ReplayOptions): Stream.Stream<ReplayOutcome, NatsError.NatsError, Broker> =>
  Stream.unwrap(
    Effect.gen(function* () {
      // The limit counts attempts, not entries read: skipped entries are reported but let the replay go
      // on, so each call with a limit picks up where the previous one stopped.
      const limit = options.limit ?? Number.POSITIVE_INFINITY
      if (limit <= 0) return Stream.empty
      const entries = yield* list({ ...options, limit: undefined })
      let attempts = 0
      return Stream.fromIterable(entries).pipe(
        Stream.mapEffect(replaying.replayEntry(publishing.sender(options), options.force === true, originalBytes)),
        Stream.takeUntil((outcome) => {
          if (outcome._tag !== "Skipped") attempts += 1
          return attempts >= limit
        })
      )
    })
  )

/**
 * Which dead letters `purge` removes.
 *
 * @category models
 * @since 0.3.0
 */
export interface PurgeOptions {
  /** The dead-letter stream. Default: as for `list`, the broker's one stream whose subjects are all `dlq.*`. */
  readonly stream?: string | undefined
  /** Remove what the server stored longer ago than this. */
  readonly olderThan: Duration.Input
}

/**
 * What `purge` removed: the messages below `before` (records, and the chunks and replay markers among
 * them), stored before `cutoff`.
 *
 * @category models
 * @since 0.3.0
 */
export interface PurgeResult {
  readonly stream: string
  readonly removed: number
  /** The first sequence kept (the next to be stored when nothing is left). */
  readonly before: number
  readonly cutoff: DateTime.Utc
}

/**
 * Removes the oldest part of the dead-letter stream: every message stored longer ago than `olderThan`,
 * up to the first one young enough to keep, found by a binary search over sequences (a stream keeps its
 * messages in the order it stored them). For clearing what was dealt with, sooner than the stream's
 * `maxAge` would.
 *
 * Gotchas: message ids stay in the duplicate window, so dead-lettering a removed record's message again
 * within it stores nothing; the chunks right in front of a record that stays are kept with it.
 *
 * @category provisioning
 * @since 0.3.0
 */
export const purge = Effect.fn("DeadLetter.purge")(function* (
  options: PurgeOptions
): Effect.fn.Return<PurgeResult, NatsError.NatsError, Broker> {
  const broker = yield* Broker
  const stream = yield* replaying.deadLetterStream(broker, options.stream, "DeadLetter.purge")
  return yield* purging.purgeOlder(broker, stream, Duration.fromInputUnsafe(options.olderThan))
})

/**
 * The subject of the server's max-deliveries advisories for one consumer.
 *
 * @category constructors
 * @since 0.1.0
 */
export const advisorySubject = advisories.advisorySubject

/**
 * @category models
 * @since 0.1.0
 */
export interface WatchOptions {
  /** The stream and durable consumer whose given-up messages are to be dead-lettered. */
  readonly stream: string
  readonly consumer: string
  /** Default: the stream that captures `advisorySubject(stream, consumer)`. */
  readonly advisoryStream?: string | undefined
  /** The durable consumer on the advisory stream. Default `dlq-<stream>-<consumer>`. */
  readonly durable?: string | undefined
  /**
   * How long an advisory whose dead letter could not be written waits before it is tried again, the
   * first time; the wait doubles with each of its deliveries, up to 1 minute (or this, if longer). Default 5 s.
   */
  readonly retryDelay?: Duration.Input | undefined
  readonly publish?: PublishOptions | undefined
}

/**
 * Dead-letters the messages a consumer was given as often as its `maxDeliver` allows without ever
 * settling them (the process died on them each time), until interrupted.
 *
 * It reads their max-deliveries advisories from the advisory stream (provisioning a durable consumer
 * there), fetches each original by sequence, writes its dead letter (decision "max deliveries", error
 * code `MaxDeliveriesExceeded`; without bytes when the original is gone), and only then acks the
 * advisory. The server emits the advisory when it would redeliver past `maxDeliver` while a pull waits.
 *
 * @category constructors
 * @since 0.1.0
 */
export const watchAdvisories = (options: WatchOptions) =>
  advisories.watch(options, Effect.void, (input, outages) => publish(input, { outages, ...options.publish }))

/**
 * Reading the dead-letter stream and putting dead letters back: `list` reads records and the replay
 * markers that follow them, `replayStream` republishes original bytes entry by entry and writes a marker
 * for each replay, `replay` collects its outcomes.
 *
 * Not public: `DeadLetter` documents and exports `list`, `replay`, `replayStream` and `replayedFromHeader`.
 */
import { Buffer } from "node:buffer"
import { DateTime, Effect, Exit, Option, Schema, Stream } from "effect"
import { Broker, type Headers, type StoredMessage, type StreamInfo } from "../../Broker.js"
import type { Entry, Filter, Replay, ReplayOptions, ReplayOutcome } from "../../DeadLetter.js"
import * as Envelope from "../../Envelope.js"
import * as NatsError from "../../NatsError.js"
import { matcher } from "../subjects.js"
import { sender } from "./publish.js"
import { asText, decodeEnvelope, originalBytes } from "./record.js"
import { isChunkSubject, isReplayedSubject, replayedSubject } from "./subjects.js"

const ReplayMarker = Schema.fromJsonString(
  Schema.Struct({
    deadLetterSeq: Schema.Int,
    stream: Schema.String,
    streamSeq: Schema.Int,
    messageId: Schema.String,
    replayedAt: Envelope.Timestamp
  }).pipe(
    Schema.encodeKeys({
      deadLetterSeq: "dead_letter_seq",
      streamSeq: "stream_seq",
      messageId: "message_id",
      replayedAt: "replayed_at"
    })
  )
)
const encodeMarker = Schema.encodeExit(ReplayMarker)
const decodeMarker = Schema.decodeUnknownOption(ReplayMarker)

const matches = (filter: Filter) => {
  const subjectMatches = filter.subject === undefined ? undefined : matcher(filter.subject)
  return ({ seq, record }: Pick<Entry, "seq" | "record">): boolean =>
    (subjectMatches === undefined || (record.originalSubject !== null && subjectMatches(record.originalSubject))) &&
    (filter.errorCode === undefined || record.errorCode === filter.errorCode) &&
    (filter.eventType === undefined || record.eventType === filter.eventType) &&
    (filter.since === undefined || DateTime.isGreaterThanOrEqualTo(record.lastFailureAt, filter.since)) &&
    (filter.until === undefined || DateTime.isLessThan(record.lastFailureAt, filter.until)) &&
    (filter.seqs === undefined || filter.seqs.includes(seq))
}

// A dead-letter stream takes only subjects of the `dlq.` form (`Topology.withDeadLetters` declares such).
const isDeadLetterStream = (info: StreamInfo): boolean =>
  info.config.subjects.length > 0 && info.config.subjects.every((subject) => subject.startsWith("dlq."))

// The stream named by the filter, else the broker's one dead-letter stream; none or several is an error
// that names what there is, never a guess.
const deadLetterStream = (broker: Broker["Service"], filter: Filter) =>
  filter.stream !== undefined
    ? Effect.succeed(filter.stream)
    : Effect.flatMap(broker.listStreams, (streams) => {
        const names = streams.filter(isDeadLetterStream).map((info) => info.config.name)
        const [only] = names
        if (names.length === 1 && only !== undefined) return Effect.succeed(only)
        return Effect.fail(
          NatsError.make(
            "DeadLetter.list",
            new NatsError.StreamNotFound({
              message:
                names.length === 0
                  ? "no dead-letter stream (one whose subjects are all dlq.*) on the broker: declare it with Topology.withDeadLetters, or name it with { stream }"
                  : `several dead-letter streams (${names.join(", ")}): name the one to read with { stream }`,
              subject: "dlq.>"
            })
          )
        )
      })

/** Documented as `DeadLetter.list`. */
export const list = Effect.fn("DeadLetter.list")(function* (filter: Filter = {}) {
  const broker = yield* Broker
  const stream = yield* deadLetterStream(broker, filter)
  const info = yield* broker.streamInfo(stream)
  if (Option.isNone(info)) {
    return yield* NatsError.make(
      "DeadLetter.list",
      new NatsError.StreamNotFound({ message: `no stream ${stream}`, stream })
    )
  }
  const { firstSeq, lastSeq, messages } = info.value.state
  const records: Array<Omit<Entry, "replays">> = []
  const replays = new Map<number, Array<Replay>>()
  const read = (stored: StoredMessage) =>
    Effect.gen(function* () {
      if (isChunkSubject(stored.subject)) return
      if (isReplayedSubject(stored.subject)) {
        const marker = decodeMarker(asText(stored.payload))
        if (Option.isNone(marker)) return yield* Effect.logWarning(`${stream}#${stored.seq} is not a replay marker`)
        const { deadLetterSeq, ...replay } = marker.value
        return void replays.set(deadLetterSeq, [...(replays.get(deadLetterSeq) ?? []), { ...replay, seq: stored.seq }])
      }
      const decoded = decodeEnvelope(stored.payload, stored.subject)
      if (Exit.isFailure(decoded)) {
        return yield* Effect.logWarning(`${stream}#${stored.seq} (${stored.subject}) is not a dead-letter record`)
      }
      const { data, sourceService, timestamp } = decoded.value
      records.push({
        stream,
        seq: stored.seq,
        subject: stored.subject,
        record: data,
        recordedBy: sourceService,
        recordedAt: timestamp
      })
    })
  if (messages > 0) {
    yield* Stream.range(firstSeq, lastSeq).pipe(
      Stream.mapEffect((seq) => broker.getMessage(stream, seq), { concurrency: 16 }),
      Stream.runForEach((stored) => (Option.isSome(stored) ? read(stored.value) : Effect.void))
    )
  }
  return records
    .filter(matches(filter))
    .slice(0, filter.limit)
    .map((entry): Entry => ({ ...entry, replays: replays.get(entry.seq) ?? [] }))
})

/** Documented as `DeadLetter.replayedFromHeader`. */
export const replayedFromHeader = "Glam-Replayed-From"

const keptOnReplay = (name: string): boolean => {
  const lower = name.toLowerCase()
  return lower !== "nats-msg-id" && !lower.startsWith("nats-expected-") && lower !== replayedFromHeader.toLowerCase()
}

// What the server refuses for this entry alone (no stream takes its subject, the copy is rejected): the
// next entry may well go through. Anything else (unreachable past the retry schedule, the connection
// closed) would hit every entry alike, so it ends the replay instead of being reported once per entry.
const refusesEntry = (error: NatsError.NatsError): boolean =>
  error.reason._tag === "StreamNotFound" || error.reason._tag === "Rejected"

const replayEntry = (write: ReturnType<typeof sender>, force: boolean) =>
  Effect.fnUntraced(function* (entry: Entry) {
    const skipped = (reason: string): ReplayOutcome => ({ _tag: "Skipped", seq: entry.seq, reason })
    const times = entry.replays.length
    if (times > 0 && !force) return skipped(`replayed ${times} time(s) already; force replays again`)
    const subject = entry.record.originalSubject
    if (subject === null) return skipped("the original subject is unknown")
    const bytes = yield* originalBytes(entry)
    if (Option.isNone(bytes)) {
      return skipped(
        entry.record.originalPayloadChunks.length > 0
          ? "a chunk of the original bytes is missing or altered"
          : "the original bytes were not kept"
      )
    }
    // The ids count replays, so a replay cut off before its marker was written publishes under the same
    // id when tried again and the server stores no second copy.
    const messageId = `replay:${entry.seq}:${times + 1}`
    const headers: Headers = [
      ...Object.entries(entry.record.originalHeaders).flatMap(([name, values]) =>
        keptOnReplay(name) ? values.map((value) => [name, value] as const) : []
      ),
      [replayedFromHeader, `${entry.stream}:${entry.seq}`]
    ]
    return yield* Effect.gen(function* () {
      const ack = yield* write(subject, bytes.value, messageId, headers)
      const marker = yield* Effect.orDie(
        encodeMarker({
          deadLetterSeq: entry.seq,
          stream: ack.stream,
          streamSeq: ack.seq,
          messageId,
          replayedAt: yield* DateTime.now
        })
      )
      yield* write(
        replayedSubject(entry.stream),
        Buffer.from(marker),
        `replayed:${entry.stream}:${entry.seq}:${times + 1}`
      )
      const outcome: ReplayOutcome = {
        _tag: "Replayed",
        seq: entry.seq,
        subject,
        stream: ack.stream,
        streamSeq: ack.seq,
        messageId,
        duplicate: ack.duplicate
      }
      return outcome
    }).pipe(
      Effect.catchIf(refusesEntry, (error) =>
        Effect.succeed<ReplayOutcome>({ _tag: "Failed", seq: entry.seq, subject, error })
      )
    )
  })

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
        Stream.mapEffect(replayEntry(sender(options), options.force === true)),
        Stream.takeUntil((outcome) => {
          if (outcome._tag !== "Skipped") attempts += 1
          return attempts >= limit
        })
      )
    })
  )

/** Documented as `DeadLetter.replayStream`. */
export const replayStream = (options: ReplayOptions = {}): Stream.Stream<ReplayOutcome, NatsError.NatsError, Broker> =>
  outcomes(options).pipe(Stream.withSpan("DeadLetter.replayStream"))

/** Documented as `DeadLetter.replay`. */
export const replay = Effect.fn("DeadLetter.replay")(function* (options: ReplayOptions = {}) {
  return yield* Stream.runCollect(outcomes(options))
})

/**
 * The dead-letter stream read and written back: which stream it is, its records and the replay markers
 * that follow them read in order, and a replay's copy of the original bytes with its marker.
 *
 * Not public: `DeadLetter.list`, `replay` and `replayStream` are made of these, `purge` finds its stream
 * with `deadLetterStream`; `DeadLetter` documents and exports `replayedFromHeader`.
 */
import { Buffer } from "node:buffer"
import { DateTime, Effect, Exit, Option, Schema, Stream } from "effect"
import type { Broker, Headers, StoredMessage, StreamInfo } from "../../Broker.js"
import * as Envelope from "../../Envelope.js"
import * as NatsError from "../../NatsError.js"
import type { Send } from "./publish.js"
import { asText, decodeEnvelope, type Record } from "./record.js"
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

// A dead-letter stream takes only subjects of the `dlq.` form (`Topology.withDeadLetters` declares such).
const isDeadLetterStream = (info: StreamInfo): boolean =>
  info.config.subjects.length > 0 && info.config.subjects.every((subject) => subject.startsWith("dlq."))

// The stream named, else the broker's one dead-letter stream; none or several is an error of
// `operation` that names what there is, never a guess.
export const deadLetterStream = (
  broker: Broker["Service"],
  stream: string | undefined,
  operation = "DeadLetter.list"
) =>
  stream !== undefined
    ? Effect.succeed(stream)
    : Effect.flatMap(broker.listStreams, (streams) => {
        const names = streams.filter(isDeadLetterStream).map((info) => info.config.name)
        const [only] = names
        if (names.length === 1 && only !== undefined) return Effect.succeed(only)
        return Effect.fail(
          NatsError.make(
            operation,
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

// A record as read from the dead-letter stream, before its replays are known.
const storedOf = (stream: string, { seq, subject }: StoredMessage, envelope: Envelope.Envelope<Record>) => ({
  stream,
  seq,
  subject,
  record: envelope.data,
  recordedBy: envelope.sourceService,
  recordedAt: envelope.timestamp
})

/** A record and where it is stored. */
export interface RecordAt {
  readonly stream: string
  readonly seq: number
  readonly record: Record
}

/** A replay as its marker tells it, `seq` being the marker's. */
export type Marked = Omit<typeof ReplayMarker.Type, "deadLetterSeq"> & { readonly seq: number }

/** The records of the dead-letter stream, oldest first, and the replays of each by the record's sequence. */
export const readStream = Effect.fnUntraced(function* (broker: Broker["Service"], stream: string) {
  const info = yield* broker.streamInfo(stream)
  if (Option.isNone(info)) {
    return yield* NatsError.make(
      "DeadLetter.list",
      new NatsError.StreamNotFound({ message: `no stream ${stream}`, stream })
    )
  }
  const { firstSeq, lastSeq, messages } = info.value.state
  const records: Array<ReturnType<typeof storedOf>> = []
  const replays = new Map<number, Array<Marked>>()
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
      records.push(storedOf(stream, stored, decoded.value))
    })
  if (messages > 0) {
    yield* Stream.range(firstSeq, lastSeq).pipe(
      Stream.mapEffect((seq) => broker.getMessage(stream, seq), { concurrency: 16 }),
      Stream.runForEach((stored) => (Option.isSome(stored) ? read(stored.value) : Effect.void))
    )
  }
  return { records, replays }
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

/**
 * Publishes the `times + 1`-th replay of the record at `seq` of `stream`: the original bytes to the
 * original subject with the original headers, then its marker in the dead-letter stream. Returns where
 * the copy was stored, and whether the server had stored it already.
 */
const replayCopy = Effect.fnUntraced(function* (
  write: Send,
  { stream, seq, record }: RecordAt,
  subject: string,
  bytes: Uint8Array,
  times: number
) {
  // The ids count replays, so a replay cut off before its marker was written publishes under the same
  // id when tried again and the server stores no second copy.
  const messageId = `replay:${seq}:${times + 1}`
  const headers: Headers = [
    ...Object.entries(record.originalHeaders).flatMap(([name, values]) =>
      keptOnReplay(name) ? values.map((value) => [name, value] as const) : []
    ),
    [replayedFromHeader, `${stream}:${seq}`]
  ]
  const ack = yield* write(subject, bytes, messageId, headers)
  const marker = yield* Effect.orDie(
    encodeMarker({
      deadLetterSeq: seq,
      stream: ack.stream,
      streamSeq: ack.seq,
      messageId,
      replayedAt: yield* DateTime.now
    })
  )
  yield* write(replayedSubject(stream), Buffer.from(marker), `replayed:${stream}:${seq}:${times + 1}`)
  return { stream: ack.stream, streamSeq: ack.seq, messageId, duplicate: ack.duplicate }
})

/**
 * The replay of one entry, as `DeadLetter.ReplayOutcome` tells it: skipped (replayed before and not
 * forced, subject unknown, bytes not kept), replayed, or failed when the server refused its copy. The
 * original bytes come from `bytesOf` (`DeadLetter.originalBytes`).
 */
export const replayEntry = (
  write: Send,
  force: boolean,
  bytesOf: (entry: RecordAt) => Effect.Effect<Option.Option<Uint8Array>, NatsError.NatsError, Broker>
) =>
  Effect.fnUntraced(function* (entry: RecordAt & { readonly replays: ReadonlyArray<unknown> }) {
    const skipped = (reason: string) => ({ _tag: "Skipped" as const, seq: entry.seq, reason })
    const times = entry.replays.length
    if (times > 0 && !force) return skipped(`replayed ${times} time(s) already; force replays again`)
    const subject = entry.record.originalSubject
    if (subject === null) return skipped("the original subject is unknown")
    const bytes = yield* bytesOf(entry)
    if (Option.isNone(bytes)) {
      return skipped(
        entry.record.originalPayloadChunks.length > 0
          ? "a chunk of the original bytes is missing or altered"
          : "the original bytes were not kept"
      )
    }
    return yield* replayCopy(write, entry, subject, bytes.value, times).pipe(
      Effect.map((copy) => ({ _tag: "Replayed" as const, seq: entry.seq, subject, ...copy })),
      Effect.catchIf(refusesEntry, (error) =>
        Effect.succeed({ _tag: "Failed" as const, seq: entry.seq, subject, error })
      )
    )
  })

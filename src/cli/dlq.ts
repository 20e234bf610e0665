/**
 * `glam-messaging dlq`: the dead letters of a dead-letter stream listed, one shown with its original
 * bytes, replayed (by sequence or by filter, a progress line on a terminal, one summary line
 * otherwise), and the old ones purged after a confirmation.
 *
 * The dead-letter stream is the broker's one stream whose subjects are all `dlq.*` (`GLAM_DLQ` for the
 * GLAM topology) unless `--stream` names another.
 */
import { Buffer } from "node:buffer"
import { DateTime, Effect, Option, Schema, Stdio, Stream } from "effect"
import { Argument, Command, Flag, Prompt } from "effect/cli"
import { Broker } from "../Broker.js"
import * as DeadLetter from "../DeadLetter.js"
import { deadLetterStream } from "../internal/deadLetter/replay.js"
import * as connection from "./connection.js"
import { CliError } from "./errors.js"
import * as flags from "./flags.js"
import * as output from "./output.js"
import * as parse from "./parse.js"

const jsonFlag = flags.json

const streamFlag = Flag.String("stream").pipe(
  Flag.withDescription("The dead-letter stream (default: the one stream whose subjects are all dlq.*)"),
  Flag.optional
)

const filterFlags = {
  stream: streamFlag,
  subject: Flag.String("subject").pipe(
    Flag.withDescription("The original subject, exactly or as a pattern (evt.merchant.>)"),
    Flag.optional
  ),
  since: Flag.String("since").pipe(
    Flag.withDescription("Last failure at or after: an ISO date-time, or 2h for two hours ago"),
    Flag.optional
  ),
  errorCode: Flag.String("error-code").pipe(Flag.withDescription("The record's error_code"), Flag.optional),
  eventType: Flag.String("event-type").pipe(Flag.withDescription("The original envelope's event_type"), Flag.optional)
} as const

interface FilterFlags {
  readonly stream: Option.Option<string>
  readonly subject: Option.Option<string>
  readonly since: Option.Option<string>
  readonly errorCode: Option.Option<string>
  readonly eventType: Option.Option<string>
}

const filterOf = Effect.fnUntraced(function* (given: FilterFlags) {
  const since = Option.isSome(given.since) ? yield* parse.pointInTime("--since", given.since.value) : undefined
  const filter: DeadLetter.Filter = {
    stream: Option.getOrUndefined(given.stream),
    subject: Option.getOrUndefined(given.subject),
    errorCode: Option.getOrUndefined(given.errorCode),
    eventType: Option.getOrUndefined(given.eventType),
    since
  }
  return filter
})

const encodeRecord = Schema.encodeSync(DeadLetter.Record)

const iso = DateTime.formatIso

const entryJson = (entry: DeadLetter.Entry) => ({
  stream: entry.stream,
  seq: entry.seq,
  subject: entry.subject,
  recordedBy: entry.recordedBy,
  recordedAt: iso(entry.recordedAt),
  record: encodeRecord(entry.record),
  replays: entry.replays.map((replay) => ({
    seq: replay.seq,
    stream: replay.stream,
    streamSeq: replay.streamSeq,
    messageId: replay.messageId,
    replayedAt: iso(replay.replayedAt)
  }))
})

const shorten = (text: string, width: number): string => {
  const single = text.replace(/\s+/g, " ")
  return single.length <= width ? single : `${single.slice(0, width - 1)}…`
}

const list = Command.make(
  "list",
  {
    ...connection.flags,
    ...filterFlags,
    limit: Flag.Int("limit").pipe(Flag.withDescription("At most this many, oldest first"), Flag.optional),
    json: jsonFlag
  },
  (given) =>
    Effect.gen(function* () {
      const filter = yield* filterOf(given)
      const entries = yield* DeadLetter.list({ ...filter, limit: Option.getOrUndefined(given.limit) })
      if (given.json) return yield* output.json(entries.map(entryJson))
      yield* output.table(
        ["SEQ", "LAST FAILURE", "SUBJECT", "ERROR CODE", "DECISION", "DELIVERIES", "REPLAYS", "ERROR"],
        entries.map(({ seq, record, replays }) => [
          String(seq),
          iso(record.lastFailureAt),
          record.originalSubject ?? "(unknown)",
          record.errorCode,
          record.decision,
          String(record.deliveryCount),
          String(replays.length),
          shorten(record.errorMessage, 60)
        ])
      )
    }).pipe(connection.provide(given))
).pipe(Command.withDescription("The dead letters, oldest first, with why they failed"))

const seqArgument = Argument.Int("seq").pipe(
  Argument.withDescription("The record's sequence in the dead-letter stream")
)

const bytesJson = (bytes: Option.Option<Uint8Array>) => {
  if (Option.isNone(bytes)) return null
  const text = output.utf8Of(bytes.value)
  return {
    size: bytes.value.length,
    utf8: text ?? null,
    hex: text === undefined ? Buffer.from(bytes.value).toString("hex") : null
  }
}

const show = Command.make(
  "show",
  { ...connection.flags, stream: streamFlag, seq: seqArgument, json: jsonFlag },
  (given) =>
    Effect.gen(function* () {
      const [entry] = yield* DeadLetter.list({ stream: Option.getOrUndefined(given.stream), seqs: [given.seq] })
      if (entry === undefined) {
        return yield* new CliError({ message: `no dead-letter record has the sequence ${given.seq}` })
      }
      const bytes = yield* DeadLetter.originalBytes(entry)
      if (given.json) return yield* output.json({ ...entryJson(entry), original: bytesJson(bytes) })
      const { record } = entry
      yield* output.fields(`Dead letter ${entry.stream} #${entry.seq}`, [
        ["subject", record.originalSubject ?? "(unknown: the message was gone)"],
        ["event type", record.eventType ?? "-"],
        ["event id", record.eventId ?? "-"],
        ["correlation id", record.correlationId ?? "-"],
        ["decision", record.decision],
        ["error code", record.errorCode],
        ["error", record.errorMessage],
        ["operation", record.failedOperation],
        ["deliveries", String(record.deliveryCount)],
        ["retries", `${record.retryCount} of ${record.maxRetries}`],
        ["from", `${record.stream} #${record.streamSeq}, consumer ${record.consumer}`],
        ["first failure", iso(record.firstFailureAt)],
        ["last failure", iso(record.lastFailureAt)],
        ["recorded by", `${entry.recordedBy} at ${iso(entry.recordedAt)}`]
      ])
      if (entry.replays.length === 0) yield* output.line("Replays  none")
      else {
        yield* output.fields(
          "Replays",
          entry.replays.map((replay): readonly [string, string] => [
            iso(replay.replayedAt),
            `${replay.stream} #${replay.streamSeq} (${replay.messageId})`
          ])
        )
      }
      const headers = Object.entries(record.originalHeaders)
      if (headers.length > 0) {
        yield* output.fields(
          "Original headers",
          headers.map(([name, values]): readonly [string, string] => [name, values.join(", ")])
        )
      }
      yield* output.line(
        Option.match(bytes, {
          onNone: () => "Original bytes  not kept (the message was gone, or a chunk is missing)",
          onSome: (value) => `Original bytes (${value.length})\n${output.printable(value)}`
        })
      )
    }).pipe(connection.provide(given))
).pipe(Command.withDescription("One dead letter: its record, replays, original headers and bytes (hex when not UTF-8)"))

interface Tally {
  replayed: number
  skipped: number
  failed: number
}

const summaryOf = (stream: string, tally: Tally): string =>
  `replayed ${tally.replayed}, skipped ${tally.skipped}, failed ${tally.failed} (dead letters of ${stream})`

const replay = Command.make(
  "replay",
  {
    ...connection.flags,
    ...filterFlags,
    seqs: seqArgument.pipe(Argument.variadic()),
    all: flags.switchOf("all", "Replay every dead letter the filters select"),
    force: flags.switchOf("force", "Replay entries that were replayed before once more"),
    limit: Flag.Int("limit").pipe(Flag.withDescription("At most this many replays"), Flag.optional),
    json: jsonFlag
  },
  (given) =>
    Effect.gen(function* () {
      if (given.seqs.length === 0 && !given.all) {
        return yield* new CliError({ message: "dlq replay: give the sequences to replay, or --all (with filters)" })
      }
      if (given.seqs.length > 0 && given.all) {
        return yield* new CliError({ message: "dlq replay: give sequences or --all, not both" })
      }
      const filter = yield* filterOf(given)
      const stream = yield* deadLetterStream(yield* Broker, filter.stream, "dlq replay")
      const options: DeadLetter.ReplayOptions = {
        ...filter,
        stream,
        seqs: given.seqs.length > 0 ? given.seqs : undefined,
        limit: Option.getOrUndefined(given.limit),
        force: given.force
      }
      const stdio = yield* Stdio.Stdio
      const terminal = !given.json && (yield* stdio.stderrIsTerminal)
      // The total is read only for the progress line a person watches; scripts are spared the extra read.
      const total = terminal ? (yield* DeadLetter.list({ ...options, limit: undefined })).length : undefined
      const tally: Tally = { replayed: 0, skipped: 0, failed: 0 }
      const outcomes: Array<DeadLetter.ReplayOutcome> = []
      yield* Stream.runForEach(DeadLetter.replayStream(options), (outcome) =>
        Effect.sync(() => {
          if (given.json) outcomes.push(outcome)
          if (outcome._tag === "Replayed") tally.replayed++
          else if (outcome._tag === "Skipped") tally.skipped++
          else {
            tally.failed++
            globalThis.process.stderr.write(
              `${terminal ? "\r\u001b[K" : ""}failed #${outcome.seq} ${outcome.subject}: ${outcome.error.message}\n`
            )
          }
          if (terminal) {
            const done = tally.replayed + tally.skipped + tally.failed
            globalThis.process.stderr.write(`\r\u001b[K${progressBar(done, total ?? done)}`)
          }
        })
      )
      if (terminal) globalThis.process.stderr.write("\r\u001b[K")
      if (given.json) {
        yield* output.json({ stream, ...tally, outcomes: outcomes.map(outcomeJson) })
      } else {
        yield* output.line(summaryOf(stream, tally))
      }
      if (tally.failed > 0) {
        return yield* new CliError({
          message: `${tally.failed} of ${tally.replayed + tally.failed} replays failed; they stay unmarked, run the replay again once the cause is fixed`
        })
      }
    }).pipe(connection.provide(given))
).pipe(
  Command.withDescription(
    "Publish dead letters to their original subjects again (by sequence, or --all with filters); entries replayed before are skipped unless --force"
  )
)

const progressBar = (done: number, total: number): string => {
  const width = 30
  const filled = total === 0 ? width : Math.min(width, Math.round((done / total) * width))
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${done}/${total}`
}

const outcomeJson = (outcome: DeadLetter.ReplayOutcome) =>
  outcome._tag === "Failed"
    ? { _tag: outcome._tag, seq: outcome.seq, subject: outcome.subject, error: outcome.error.message }
    : outcome

const purge = Command.make(
  "purge",
  {
    ...connection.flags,
    stream: streamFlag,
    olderThan: Flag.String("older-than").pipe(
      Flag.withDescription("Remove what was stored longer ago than this (90s, 15m, 2h, 7d, 1w)")
    ),
    yes: flags.switchOf("yes", "Do not ask for confirmation").pipe(Flag.withAlias("y")),
    json: jsonFlag
  },
  (given) =>
    Effect.gen(function* () {
      const olderThan = yield* parse.duration("--older-than", given.olderThan)
      if (!given.yes) {
        const stdio = yield* Stdio.Stdio
        if (!(yield* stdio.stdinIsTerminal)) {
          return yield* new CliError({
            message: "dlq purge removes dead letters for good: pass --yes to confirm when not at a terminal"
          })
        }
        const confirmed = yield* Prompt.run(
          Prompt.Confirm({
            message: `Remove the dead letters stored more than ${given.olderThan} ago${Option.isSome(given.stream) ? ` from ${given.stream.value}` : ""}?`
          })
        ).pipe(Effect.orElseSucceed(() => false))
        if (!confirmed) return yield* output.line("nothing removed")
      }
      const result = yield* DeadLetter.purge({ stream: Option.getOrUndefined(given.stream), olderThan })
      if (given.json) return yield* output.json({ ...result, cutoff: iso(result.cutoff) })
      yield* output.line(
        `removed ${result.removed} messages of ${result.stream} stored before ${iso(result.cutoff)}; the first kept is #${result.before}`
      )
    }).pipe(connection.provide(given))
).pipe(
  Command.withDescription("Remove the dead letters stored longer ago than --older-than (asks first; --yes for scripts)")
)

/** `glam-messaging dlq …` */
export const dlq = Command.make("dlq").pipe(
  Command.withDescription("Inspect, replay and purge dead letters"),
  Command.withSubcommands([list, show, replay, purge])
)

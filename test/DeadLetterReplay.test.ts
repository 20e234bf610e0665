/**
 * Replaying dead letters on a real nats-server: what is put back and how, what is skipped and why, how a
 * `limit` moves forward from one call to the next, and the outcomes `replayStream` reports as it goes.
 */
import { randomBytes } from "node:crypto"
import { assert, describe, expect, layer } from "@effect/vitest"
import { Duration, Effect, Stream } from "effect"
import { Broker, type Headers, type StoredMessage } from "../src/Broker.js"
import * as DeadLetter from "../src/DeadLetter.js"
import * as Streams from "../src/glam/Streams.js"
import * as NatsClient from "../src/NatsClient.js"
import * as Topology from "../src/Topology.js"
import { messaging, storedMessages } from "./support/Messaging.js"

const topology = Topology.make({ streams: [...Streams.topology.streams, { name: "OTHER", subjects: ["other.>"] }] })

const bytes = (text: string) => new TextEncoder().encode(text)
const eventId = (payload: Uint8Array) => JSON.parse(new TextDecoder().decode(payload)).event_id

/** Publishes raw bytes and returns them as the stream stored them. */
const store = (subject: string, payload: Uint8Array, headers: Headers = []) =>
  Broker.use((broker) =>
    broker.publish({ subject, payload, headers, timeout: Duration.seconds(5) }).pipe(
      Effect.flatMap((ack) => broker.getMessage(ack.stream, ack.seq)),
      Effect.flatMap(Effect.fromOption)
    )
  )

const stored = (stream: string, seq: number) =>
  Broker.use((broker) => broker.getMessage(stream, seq)).pipe(Effect.flatMap(Effect.fromOption))

const messagesIn = (stream: string) => Effect.map(storedMessages(stream), (messages) => messages.length)

const deadLetterOf = (message: DeadLetter.PublishInput["message"]) =>
  DeadLetter.publish({
    message,
    consumer: "reader",
    deliveryCount: 3,
    failure: { code: "PaymentDeclined", message: "card declined", operation: "handler" },
    decision: "policy",
    retryCount: 2,
    maxRetries: 4
  }).pipe(Effect.map((receipt) => receipt.seq))

/** `count` dead letters of distinct JSON events on `subject`; their record sequences, oldest first. */
const deadLetters = (subject: string, count: number) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => `${subject}#${i}`),
    (id) =>
      store(subject, bytes(JSON.stringify({ event_id: id, event_type: subject, data: {} }))).pipe(
        Effect.flatMap(deadLetterOf)
      )
  )

const entryAt = (seq: number) =>
  DeadLetter.list({ seqs: [seq] }).pipe(
    Effect.map((entries) => entries[0]),
    Effect.flatMap(Effect.fromNullishOr)
  )

const timesReplayed = (filter: DeadLetter.Filter) =>
  Effect.map(DeadLetter.list(filter), (entries) => entries.map((entry) => entry.replays.length))

const replayedSeqs = (outcomes: ReadonlyArray<DeadLetter.ReplayOutcome>) =>
  outcomes.flatMap((outcome) => (outcome._tag === "Replayed" ? [outcome.seq] : []))

const alreadyReplayed = (seq: number, times = 1): DeadLetter.ReplayOutcome => ({
  _tag: "Skipped",
  seq,
  reason: `replayed ${times} time(s) already; force replays again`
})

describe("DeadLetter replay", () => {
  layer(messaging({ service: "dlq-test-service", topology }), { excludeTestServices: true })(
    "on a real nats-server (real clock)",
    (it) => {
      it.effect("replay republishes the original bytes to the original subject once, and list shows it", () =>
        Effect.gen(function* () {
          const body = bytes(JSON.stringify({ event_id: "evt-r", event_type: "evt.replay.me.v1", data: { n: 1 } }))
          const headers: Headers = [
            ["Nats-Msg-Id", "evt-r"],
            ["X-Tenant", "eu-1"],
            ["X-Tenant", "eu-2"]
          ]
          const original = yield* store("evt.replay.me.v1", body, headers)
          const big = new Uint8Array(randomBytes(900 * 1024))
          const dead = yield* deadLetterOf(original)
          const bigDead = yield* deadLetterOf(yield* store("other.replay.big", big))

          const [replayed] = yield* DeadLetter.replay({ seqs: [dead] })
          assert(replayed?._tag === "Replayed")
          expect(replayed).toStrictEqual({
            _tag: "Replayed",
            seq: dead,
            subject: "evt.replay.me.v1",
            stream: "GLAM_EVENTS",
            streamSeq: replayed.streamSeq,
            messageId: `replay:${dead}:1`,
            duplicate: false
          })
          expect(replayed.streamSeq).toBeGreaterThan(original.seq)
          const copy = yield* stored("GLAM_EVENTS", replayed.streamSeq)
          expect(copy.subject).toBe("evt.replay.me.v1")
          expect(Buffer.from(copy.payload).equals(Buffer.from(body))).toBe(true)
          expect(copy.headers).toStrictEqual([
            ["X-Tenant", "eu-1"],
            ["X-Tenant", "eu-2"],
            ["Glam-Replayed-From", `GLAM_DLQ:${dead}`],
            ["Nats-Msg-Id", `replay:${dead}:1`]
          ])

          const entry = yield* entryAt(dead)
          expect(entry.replays).toHaveLength(1)
          expect(entry.replays[0]).toMatchObject({
            stream: "GLAM_EVENTS",
            streamSeq: replayed.streamSeq,
            messageId: `replay:${dead}:1`
          })
          const events = yield* messagesIn("GLAM_EVENTS")
          expect(yield* DeadLetter.replay({ seqs: [dead] })).toStrictEqual([alreadyReplayed(dead)])
          expect(yield* messagesIn("GLAM_EVENTS")).toBe(events)

          const [forced] = yield* DeadLetter.replay({ seqs: [dead], force: true })
          assert(forced?._tag === "Replayed")
          expect(forced.messageId).toBe(`replay:${dead}:2`)
          expect((yield* entryAt(dead)).replays.map((r) => r.streamSeq)).toStrictEqual([
            replayed.streamSeq,
            forced.streamSeq
          ])

          const [bigReplay] = yield* DeadLetter.replay({ seqs: [bigDead] })
          assert(bigReplay?._tag === "Replayed")
          const bigCopy = yield* stored("OTHER", bigReplay.streamSeq)
          expect(Buffer.from(bigCopy.payload).equals(Buffer.from(big))).toBe(true)
        })
      )

      it.effect("replay with a limit moves on: over 5 dead letters it replays 2, 2, 1 distinct entries, then 0", () =>
        Effect.gen(function* () {
          const subject = "evt.replay.advance.v1"
          const [a, b, c, d, e] = yield* deadLetters(subject, 5)
          assert(a !== undefined && b !== undefined && c !== undefined && d !== undefined && e !== undefined)
          const events = yield* messagesIn("GLAM_EVENTS")

          const first = yield* DeadLetter.replay({ subject, limit: 2 })
          expect(replayedSeqs(first)).toStrictEqual([a, b])
          const second = yield* DeadLetter.replay({ subject, limit: 2 })
          expect(second.map((outcome) => [outcome._tag, outcome.seq])).toStrictEqual([
            ["Skipped", a],
            ["Skipped", b],
            ["Replayed", c],
            ["Replayed", d]
          ])
          const third = yield* DeadLetter.replay({ subject, limit: 2 })
          expect(replayedSeqs(third)).toStrictEqual([e])
          const fourth = yield* DeadLetter.replay({ subject, limit: 2 })
          expect(fourth).toStrictEqual([a, b, c, d, e].map((seq) => alreadyReplayed(seq)))

          expect(yield* messagesIn("GLAM_EVENTS")).toBe(events + 5)
          const copies = yield* Effect.forEach([...first, ...second, ...third], (outcome) =>
            outcome._tag === "Replayed"
              ? Effect.map(stored(outcome.stream, outcome.streamSeq), (copy) => [eventId(copy.payload)])
              : Effect.succeed([])
          )
          expect(copies.flat()).toStrictEqual([0, 1, 2, 3, 4].map((i) => `${subject}#${i}`))
          expect(yield* timesReplayed({ subject })).toStrictEqual([1, 1, 1, 1, 1])
        })
      )

      it.effect("skipped entries are reported with their reason and do not count toward the limit", () =>
        Effect.gen(function* () {
          // Oldest first: replayed before, no subject, a chunk gone, then two that can be replayed.
          const [before] = yield* deadLetters("evt.replay.skips.v1", 1)
          assert(before !== undefined)
          yield* DeadLetter.replay({ seqs: [before] })
          const missing = yield* deadLetterOf({ stream: "GLAM_EVENTS", seq: 2_000_000 })
          const chunked = yield* deadLetterOf(
            yield* store("evt.replay.skips.big.v1", new Uint8Array(randomBytes(900 * 1024)))
          )
          const [chunk] = (yield* entryAt(chunked)).record.originalPayloadChunks
          assert(chunk !== undefined)
          const { manager } = yield* NatsClient.NatsClient
          yield* Effect.promise(() => manager.streams.deleteMessage("GLAM_DLQ", chunk))
          const [fresh, later] = yield* deadLetters("evt.replay.skips.v1", 2)
          assert(fresh !== undefined && later !== undefined)

          const outcomes = yield* DeadLetter.replay({ seqs: [before, missing, chunked, fresh, later], limit: 1 })
          assert(outcomes[3]?._tag === "Replayed")
          expect(outcomes).toStrictEqual([
            alreadyReplayed(before),
            { _tag: "Skipped", seq: missing, reason: "the original subject is unknown" },
            { _tag: "Skipped", seq: chunked, reason: "a chunk of the original bytes is missing or altered" },
            outcomes[3]
          ])
          expect(outcomes[3].seq).toBe(fresh)
          expect((yield* entryAt(later)).replays).toStrictEqual([])
        })
      )

      it.effect("force replays entries replayed before once more, and they count toward the limit", () =>
        Effect.gen(function* () {
          const subject = "evt.replay.force.v1"
          const [a, b, c] = yield* deadLetters(subject, 3)
          assert(a !== undefined && b !== undefined && c !== undefined)
          expect(replayedSeqs(yield* DeadLetter.replay({ subject }))).toStrictEqual([a, b, c])

          const forced = yield* DeadLetter.replay({ subject, force: true, limit: 2 })
          expect(
            forced.map((outcome) => (outcome._tag === "Replayed" ? outcome.messageId : outcome._tag))
          ).toStrictEqual([`replay:${a}:2`, `replay:${b}:2`])
          expect(yield* timesReplayed({ subject })).toStrictEqual([2, 2, 1])
        })
      )

      it.effect("an entry whose copy the server refuses is Failed with its NatsError, and the others go on", () =>
        Effect.gen(function* () {
          const nowhere: StoredMessage = {
            stream: "GLAM_EVENTS",
            seq: 3_000_000,
            subject: "nowhere.replay.v1",
            payload: bytes("{}"),
            headers: [],
            timestampMillis: 0
          }
          const refused = yield* deadLetterOf(nowhere)
          const [fine] = yield* deadLetters("evt.replay.refused.v1", 1)
          assert(fine !== undefined)

          const [failed, replayed] = yield* DeadLetter.replay({ seqs: [refused, fine] })
          assert(failed?._tag === "Failed")
          expect(failed.seq).toBe(refused)
          expect(failed.subject).toBe("nowhere.replay.v1")
          expect(failed.error._tag).toBe("NatsError")
          expect(failed.error.reason._tag).toBe("StreamNotFound")
          expect(replayed).toMatchObject({ _tag: "Replayed", seq: fine })
          // Nothing was recorded, so the next replay tries it again.
          expect((yield* entryAt(refused)).replays).toStrictEqual([])
          expect((yield* DeadLetter.replay({ seqs: [refused] }))[0]?._tag).toBe("Failed")
        })
      )

      it.effect("replayStream emits one outcome per entry, in order, each once that entry is done", () =>
        Effect.gen(function* () {
          const subject = "evt.replay.progress.v1"
          const [a, b, c, d] = yield* deadLetters(subject, 4)
          assert(a !== undefined && b !== undefined && c !== undefined && d !== undefined)
          yield* DeadLetter.replay({ seqs: [b] })

          const progress = yield* DeadLetter.replayStream({ subject }).pipe(
            Stream.mapEffect((outcome) =>
              Effect.map(timesReplayed({ subject }), (replays) => ({ tag: outcome._tag, seq: outcome.seq, replays }))
            ),
            Stream.runCollect
          )
          expect(progress).toStrictEqual([
            { tag: "Replayed", seq: a, replays: [1, 1, 0, 0] },
            { tag: "Skipped", seq: b, replays: [1, 1, 0, 0] },
            { tag: "Replayed", seq: c, replays: [1, 1, 1, 0] },
            { tag: "Replayed", seq: d, replays: [1, 1, 1, 1] }
          ])
          expect(yield* Stream.runCollect(DeadLetter.replayStream({ subject, limit: 0 }))).toStrictEqual([])
        })
      )
    }
  )
})

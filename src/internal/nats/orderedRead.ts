/**
 * Reading what a stream stores without taking part in its delivery: one nats.js ordered consumer per
 * subject (ephemeral, no acks, re-created by nats.js from the last sequence seen after a gap or a server
 * restart), deleted when the stream ends so that nothing is left behind; a process killed before that
 * leaves one that the server removes after `inactiveThreshold`.
 *
 * One consumer per subject, because nats-server 2.9 has no `filter_subjects` and a consumer that asked
 * for several would be given every subject of the stream. Across subjects, messages come as they
 * arrive; each subject's own come in stream order. For `glam-messaging tail`.
 */
import type { ConsumerMessages, JsMsg } from "@nats-io/jetstream"
import { DeliverPolicy } from "@nats-io/jetstream"
import { Effect, Stream } from "effect"
import type { StoredMessage } from "../../Broker.js"
import type { NatsClient } from "../../NatsClient.js"
import type { NatsError } from "../../NatsError.js"
import { fromCause } from "./errors.js"
import { headerPairs } from "./pull.js"

/** Where a read starts: new messages only, everything, from a sequence, or from a time. */
export type From =
  | { readonly _tag: "New" }
  | { readonly _tag: "All" }
  | { readonly _tag: "Sequence"; readonly seq: number }
  | { readonly _tag: "Time"; readonly iso: string }

export interface ReadOptions {
  readonly subjects: ReadonlyArray<string>
  readonly from: From
  /** The consumers' names start with this, so that an operator can tell them apart. */
  readonly namePrefix: string
}

/** The server forgets a consumer of a killed reader after this long without a pull. */
const inactiveThresholdNanos = 30 * 1_000_000_000

const startOf = (from: From) => {
  switch (from._tag) {
    case "New":
      return { deliver_policy: DeliverPolicy.New }
    case "All":
      return { deliver_policy: DeliverPolicy.All }
    case "Sequence":
      return { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: from.seq }
    case "Time":
      return { deliver_policy: DeliverPolicy.StartTime, opt_start_time: from.iso }
  }
}

const storedOf = (stream: string, message: JsMsg): StoredMessage => ({
  stream,
  subject: message.subject,
  seq: message.seq,
  payload: message.data,
  headers: headerPairs(message.headers),
  timestampMillis: Number(BigInt(message.info.timestampNanos) / 1_000_000n)
})

const readSubject = (client: NatsClient["Service"], options: ReadOptions, subject: string, index: number) =>
  Effect.gen(function* () {
    const stream = yield* Effect.tryPromise({
      try: () => client.manager.streams.find(subject),
      catch: fromCause("tail", { subject })
    })
    const consumer = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () =>
          client.jetstream.consumers.get(stream, {
            name_prefix: `${options.namePrefix}_${index}`,
            filter_subjects: subject,
            inactive_threshold: inactiveThresholdNanos,
            ...startOf(options.from)
          }),
        catch: fromCause("tail", { stream, subject })
      }),
      (consumer) =>
        Effect.promise(() => consumer.delete().catch(() => false)).pipe(Effect.timeout("2 seconds"), Effect.ignore)
    )
    const messages = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => consumer.consume(), catch: fromCause("tail", { stream, subject }) }),
      (messages: ConsumerMessages) =>
        Effect.promise(() =>
          messages.close().then(
            () => undefined,
            () => undefined
          )
        )
    )
    return Stream.fromAsyncIterable(messages, fromCause("tail", { stream, subject })).pipe(
      Stream.map((message) => storedOf(stream, message))
    )
  })

/** The messages of `subjects` from `from` on, until the stream is interrupted; nothing is left on the server. */
export const orderedRead = (
  client: NatsClient["Service"],
  options: ReadOptions
): Stream.Stream<StoredMessage, NatsError> =>
  Stream.mergeAll(
    options.subjects.map((subject, index) => Stream.unwrap(readSubject(client, options, subject, index))),
    { concurrency: "unbounded" }
  )

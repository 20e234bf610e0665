/**
 * The reasons that name their object, worded once for both brokers: a stream or consumer that does not
 * exist (`stream ORDERS not found`, `consumer ORDERS/billing not found`), and a stream whose subjects
 * overlap those of others (`stream ORDERS (orders.>) overlaps stream LEGACY (orders.placed.>): ...`).
 *
 * nats-server says only "stream not found" or "subjects overlap with an existing stream"; the brokers
 * know what they asked about, and which other streams are in the way, so the message says it.
 *
 * Not here: finding the overlapping streams on a server (`NatsBroker`), or any other reason.
 */
import * as NatsError from "../NatsError.js"
import { overlaps } from "./subjects.js"

/** A stream as far as overlaps go: its name and subjects. */
export interface StreamSubjects {
  readonly name: string
  readonly subjects: ReadonlyArray<string>
}

/** nats-server's text for API error 10065. */
export const OVERLAP_TEXT = "subjects overlap with an existing stream"

/** nats-server's code for "subjects overlap with an existing stream". */
export const OVERLAP_CODE = 10065

const withCause = (cause: unknown): { readonly cause?: unknown } => (cause === undefined ? {} : { cause })

/** The stream named `stream` does not exist. */
export const streamNotFound = (stream: string, cause?: unknown): NatsError.StreamNotFound =>
  new NatsError.StreamNotFound({ message: `stream ${stream} not found`, stream, ...withCause(cause) })

/** The durable `consumer` does not exist on `stream`. */
export const consumerNotFound = (stream: string, consumer: string, cause?: unknown): NatsError.ConsumerNotFound =>
  new NatsError.ConsumerNotFound({
    message: `consumer ${stream}/${consumer} not found`,
    stream,
    consumer,
    ...withCause(cause)
  })

// A stream created without subjects takes its name as its only subject.
const subjectsOf = (stream: StreamSubjects): ReadonlyArray<string> =>
  stream.subjects.length === 0 ? [stream.name] : stream.subjects

/** `stream ORDERS (orders.>, orders.v2.*)`, for messages. */
export const describeSubjects = (stream: StreamSubjects): string =>
  `stream ${stream.name} (${subjectsOf(stream).join(", ")})`

/** The streams among `others` (by name, itself left out) that share a subject with `stream`. */
export const overlapping = (stream: StreamSubjects, others: Iterable<StreamSubjects>): Array<StreamSubjects> => {
  const found = new Map<string, StreamSubjects>()
  for (const other of others) {
    if (other.name === stream.name || found.has(other.name)) continue
    if (subjectsOf(stream).some((mine) => subjectsOf(other).some((theirs) => overlaps(mine, theirs)))) {
      found.set(other.name, other)
    }
  }
  return [...found.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}

/**
 * `stream` cannot have its subjects: they overlap those of `existing`. When the others could not be
 * found (`existing` empty), the message still names the stream and its subjects.
 */
export const subjectsOverlap = (
  stream: StreamSubjects,
  existing: ReadonlyArray<StreamSubjects>,
  cause?: unknown
): NatsError.Rejected => {
  const others = existing.length === 0 ? "" : ` overlaps ${existing.map(describeSubjects).join(", ")}`
  return new NatsError.Rejected({
    message: `${describeSubjects(stream)}${others}: ${OVERLAP_TEXT}`,
    code: OVERLAP_CODE,
    ...withCause(cause)
  })
}

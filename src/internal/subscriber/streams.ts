/**
 * The streams a subscriber cannot work without, checked before it consumes: the stream it reads, a
 * stream that stores the dead letters of each of its subjects (`dlq.…`), and one that captures the
 * max-deliveries advisories of its durable. Without the second and third a poison message has nowhere to
 * go: its dead letter cannot be written, and it is redelivered for ever (or, past max deliveries,
 * dropped with its advisory). So a subscriber refuses to start without them, naming what is missing.
 *
 * Without a stream named, the subscriber reads the one that captures its events' subjects (asked of the
 * broker), and fails, naming the subject, when none does.
 *
 * At start-up the streams may still be on their way (a `Topology.layer` built beside the subscriber,
 * a cluster electing leaders): the check waits for them, up to a bound, before it fails.
 */
import { type Duration, Effect, Option, Schedule } from "effect"
import type { Broker } from "../../Broker.js"
import type { NatsError } from "../../NatsError.js"
import * as Topology from "../../Topology.js"
import { TopologyError } from "../../TopologyError.js"
import { advisorySubject } from "../deadLetter/advisories.js"
import { subjectFor } from "../deadLetter/subjects.js"
import { formatDuration } from "../durations.js"
import { matcher } from "../subjects.js"

export interface Needs {
  /** The stream it reads; `undefined`: the one that captures the subjects of its events. */
  readonly stream: string | undefined
  readonly durable: string
  /** The subjects of the subscription's events. */
  readonly subjects: ReadonlyArray<string>
}

/** The stream it reads and where its advisories are captured, once every stream it needs is there. */
export interface Found {
  readonly _tag: "Found"
  readonly stream: string
  readonly advisoryStream: string
}

type Missing = {
  readonly _tag: "Missing"
  readonly what: ReadonlyArray<string>
  /** The subscriber's stream, when it is known (named, or found by subject). */
  readonly stream: string | undefined
  /** The subjects of the subscriber's stream, when it exists. */
  readonly streamSubjects: ReadonlyArray<string> | undefined
}

/** The stream each subject is captured by, when that is known for every one of them. */
const streamOf = (broker: Broker["Service"], needs: Needs) =>
  needs.stream === undefined
    ? Effect.map(
        Effect.forEach(needs.subjects, (subject) =>
          Effect.map(broker.streamFor(subject), (stream) => [subject, stream] as const)
        ),
        (found) => {
          const uncaptured = found.flatMap(([subject, stream]) => (Option.isNone(stream) ? [subject] : []))
          const names = [...new Set(found.flatMap(([, stream]) => (Option.isSome(stream) ? [stream.value] : [])))]
          return { uncaptured, names, found }
        }
      )
    : Effect.succeed({ uncaptured: [], names: [needs.stream], found: [] })

const look = (broker: Broker["Service"], needs: Needs): Effect.Effect<Found | Missing, NatsError | TopologyError> =>
  Effect.gen(function* () {
    const { uncaptured, names, found } = yield* streamOf(broker, needs)
    if (names.length > 1) {
      // Not a matter of waiting: one consumer reads one stream.
      return yield* new TopologyError({
        field: "stream",
        consumer: needs.durable,
        message:
          `subscriber ${needs.durable}: its events are captured by different streams ` +
          `(${found.map(([subject, stream]) => `${subject} by ${Option.getOrElse(stream, () => "none")}`).join(", ")}); ` +
          "a subscriber reads one stream: subscribe to each stream's events apart, or give `stream`"
      })
    }
    const streams = yield* broker.listStreams
    const covering = (subject: string) =>
      streams.find((info) => info.config.subjects.some((pattern) => matcher(pattern)(subject)))?.config.name
    const what: Array<string> = uncaptured.map((subject) => `a stream capturing ${subject}`)
    const stream = uncaptured.length === 0 ? names[0] : undefined
    const own = stream === undefined ? undefined : streams.find((info) => info.config.name === stream)
    if (stream !== undefined && own === undefined) what.push(`the stream ${stream}`)
    for (const subject of needs.subjects) {
      const dlq = subjectFor(subject)
      if (covering(dlq) === undefined) what.push(`a stream on ${dlq} for the dead letters of ${subject}`)
    }
    // Where the advisories go depends on the stream's name: asked only once that is known.
    const advisory = stream === undefined ? undefined : advisorySubject(stream, needs.durable)
    const advisoryStream = advisory === undefined ? undefined : covering(advisory)
    if (advisory !== undefined && advisoryStream === undefined) {
      what.push(`a stream on ${advisory} for its max-deliveries advisories`)
    }
    return what.length > 0 || stream === undefined || advisoryStream === undefined
      ? { _tag: "Missing", what, stream, streamSubjects: own?.config.subjects }
      : { _tag: "Found", stream, advisoryStream }
  })

// How to declare what is missing: for GLAM_EVENTS the GLAM preset (named here only as advice), the
// stream's own dead letters otherwise.
const advice = (needs: Needs, missing: Missing): string => {
  const topologyIn = "in the topology provisioned with it (Messaging.layer({ topology }) or Topology.layer)"
  if (missing.stream === "GLAM_EVENTS") {
    return (
      `Declare them ${topologyIn}: Streams.topology of @glam/messaging/glam (provisioned by Glam.layer) has GLAM_EVENTS, GLAM_DLQ on dlq.> ` +
      "and GLAM_ADVISORIES on $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"
    )
  }
  if (missing.stream === undefined) {
    return (
      `Declare a stream capturing ${needs.subjects.join(", ")} with its dead letters ${topologyIn}: ` +
      "Topology.make({ streams: Topology.withDeadLetters(spec) }) adds <NAME>_DLQ and <NAME>_ADVISORIES to the " +
      "stream of spec; for GLAM_EVENTS, Streams.topology of @glam/messaging/glam declares it with GLAM_DLQ and GLAM_ADVISORIES"
    )
  }
  const name = missing.stream
  const subjects = missing.streamSubjects ?? needs.subjects
  const [, deadLetters, advisories] = Topology.withDeadLetters({ name, subjects })
  return (
    `Declare them with the stream ${topologyIn}: ` +
    `Topology.make({ streams: Topology.withDeadLetters(${name}) }), with ${name} the StreamSpec of the stream, ` +
    `adds ${deadLetters.name} on ${deadLetters.subjects.join(", ")} and ${advisories.name} on ${advisories.subjects.join(", ")}; ` +
    "or streams of your own on those subjects"
  )
}

const isMissing = (value: Found | Missing | NatsError | TopologyError): value is Missing => value._tag === "Missing"

/**
 * Waits up to `timeout` for every stream the subscriber needs, then fails with a `TopologyError` that
 * names what is missing and how to declare it. JetStream not answering meanwhile is waited for too.
 */
export const requireStreams = (broker: Broker["Service"], needs: Needs, timeout: Duration.Duration) =>
  Effect.gen(function* () {
    let logged = false
    const attempt = look(broker, needs).pipe(
      Effect.flatMap((result) => {
        if (!isMissing(result)) return Effect.succeed(result)
        const note = logged
          ? Effect.void
          : Effect.logInfo(`subscriber ${needs.durable}: waiting for ${result.what.join("; ")}`)
        logged = true
        return Effect.andThen(note, Effect.fail(result))
      })
    )
    const retried = attempt.pipe(
      Effect.retry({
        while: (error) => error._tag === "Missing" || (error._tag === "NatsError" && error.isRetryable),
        schedule: Schedule.spaced("250 millis").pipe(Schedule.upTo({ duration: timeout }))
      })
    )
    return yield* Effect.catchIf(retried, isMissing, (missing) =>
      Effect.fail(
        new TopologyError({
          field: "streams",
          ...(needs.stream === undefined ? {} : { stream: needs.stream }),
          consumer: needs.durable,
          message: `subscriber ${needs.durable}: missing after ${formatDuration(timeout)}: ${missing.what.join("; ")}. ${advice(needs, missing)}`
        })
      )
    )
  })

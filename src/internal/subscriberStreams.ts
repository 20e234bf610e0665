/**
 * The streams a subscriber cannot work without, checked before it consumes: the stream it reads, a
 * stream that stores the dead letters of each of its subjects (`dlq.…`), and one that captures the
 * max-deliveries advisories of its durable. Without the second and third a poison message has nowhere to
 * go: its dead letter cannot be written, and it is redelivered for ever (or, past max deliveries,
 * dropped with its advisory). So a subscriber refuses to start without them, naming what is missing.
 *
 * At start-up the streams may still be on their way (a `Topology.layer` built beside the subscriber,
 * a cluster electing leaders): the check waits for them, up to a bound, before it fails.
 */
import { type Duration, Effect, Schedule } from "effect"
import type { Broker } from "../Broker.js"
import type { NatsError } from "../NatsError.js"
import { advisorySubject } from "./deadLetterAdvisories.js"
import { subjectFor } from "./deadLetterRecord.js"
import { formatDuration } from "./durations.js"
import { matcher } from "./subjects.js"
import { TopologyError } from "./topologySpec.js"

export interface Needs {
  readonly stream: string
  readonly durable: string
  /** The subjects of the subscription's events. */
  readonly subjects: ReadonlyArray<string>
}

/** Where the subscriber's advisories are captured, once every stream it needs is there. */
export interface Found {
  readonly _tag: "Found"
  readonly advisoryStream: string
}

type Missing = { readonly _tag: "Missing"; readonly what: ReadonlyArray<string> }

const look = (broker: Broker["Service"], needs: Needs): Effect.Effect<Found | Missing, NatsError> =>
  Effect.map(broker.listStreams, (streams): Found | Missing => {
    const covering = (subject: string) =>
      streams.find((info) => info.config.subjects.some((pattern) => matcher(pattern)(subject)))?.config.name
    const what: Array<string> = []
    if (!streams.some((info) => info.config.name === needs.stream)) what.push(`the stream ${needs.stream}`)
    for (const subject of needs.subjects) {
      const dlq = subjectFor(subject)
      if (covering(dlq) === undefined) what.push(`a stream on ${dlq} for the dead letters of ${subject}`)
    }
    const advisory = advisorySubject(needs.stream, needs.durable)
    const advisoryStream = covering(advisory)
    if (advisoryStream === undefined) what.push(`a stream on ${advisory} for its max-deliveries advisories`)
    return what.length > 0 || advisoryStream === undefined
      ? { _tag: "Missing", what }
      : { _tag: "Found", advisoryStream }
  })

const isMissing = (value: Found | Missing | NatsError): value is Missing => value._tag === "Missing"

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
        while: (error) => error._tag === "Missing" || error.isRetryable,
        schedule: Schedule.spaced("250 millis").pipe(Schedule.upTo({ duration: timeout }))
      })
    )
    return yield* Effect.catchIf(retried, isMissing, (missing) =>
      Effect.fail(
        new TopologyError({
          field: "streams",
          stream: needs.stream,
          consumer: needs.durable,
          message:
            `subscriber ${needs.durable}: missing after ${formatDuration(timeout)}: ${missing.what.join("; ")}. ` +
            "Declare them in the topology provisioned before it, e.g. Topology.glam (GLAM_EVENTS, GLAM_DLQ on dlq.> " +
            "and GLAM_ADVISORIES on $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>), or streams of your own on those subjects"
        })
      )
    )
  })

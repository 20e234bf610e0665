/**
 * The GLAM streams, shared with the Python services: `GLAM_EVENTS` for events and commands, `GLAM_DLQ`
 * for the dead letters of every service, `GLAM_ADVISORIES` for the server's max-deliveries advisories.
 *
 * `topology` is `Topology.withDeadLetters(events)` with these names and subjects; `topologyConfig` and
 * `layerTopology` take the replicas of all three from `GLAM_STREAM_REPLICAS`. `Glam.layer` provisions it.
 *
 * Migrating from the Python package: its `GLAM_EVENTS` stream also carried `dlq.>`. Provisioning
 * `topology` over it first removes `dlq.>` from `GLAM_EVENTS`, then creates `GLAM_DLQ` on `dlq.>` (the
 * other order is refused: two streams may not share subjects). Dead letters already stored in
 * `GLAM_EVENTS` stay there under their `dlq.*` subjects and expire with its 24 h max age; nothing copies
 * them. New dead letters land in `GLAM_DLQ` and are kept for 30 days.
 *
 * @since 0.2.0
 */
import { Config, Duration, Effect, Layer, Option, Schema } from "effect"
import type { Broker } from "../Broker.js"
import type { NatsError } from "../NatsError.js"
import * as Topology from "../Topology.js"

/**
 * The name of the GLAM event stream.
 *
 * @category constants
 * @since 0.2.0
 */
export const eventsName = "GLAM_EVENTS"

/**
 * The name of the GLAM dead-letter stream.
 *
 * @category constants
 * @since 0.2.0
 */
export const deadLettersName = "GLAM_DLQ"

/**
 * The name of the stream that keeps the server's max-deliveries advisories.
 *
 * @category constants
 * @since 0.2.0
 */
export const advisoriesName = "GLAM_ADVISORIES"

/**
 * `GLAM_EVENTS` on `evt.>` and `cmd.>`: limits retention, file storage, 24 h, 1,000,000 messages (the
 * Python package's values), 2-minute duplicate window.
 *
 * @category constants
 * @since 0.2.0
 */
export const events: Topology.StreamSpec = {
  name: eventsName,
  subjects: ["evt.>", "cmd.>"],
  retention: "limits",
  storage: "file",
  maxAge: Duration.hours(24),
  maxMessages: 1_000_000,
  duplicateWindow: Duration.minutes(2)
}

/**
 * `GLAM_DLQ` on `dlq.>`: file storage, dead letters kept 30 days, longer than the events they replace.
 *
 * The duplicate window is one hour, not two minutes: a dead letter is written under the id
 * `dlq:<stream>:<seq>` before its original is settled, and the same message can come back for a second
 * write long after the first (its redelivery after a crash, or the max-deliveries advisory of a message
 * whose subscriber died between writing and settling). Within the window the server stores it once.
 *
 * @category constants
 * @since 0.2.0
 */
export const deadLetters: Topology.StreamSpec = {
  name: deadLettersName,
  subjects: ["dlq.>"],
  retention: "limits",
  storage: "file",
  maxAge: Duration.days(30),
  duplicateWindow: Duration.hours(1)
}

/**
 * `GLAM_ADVISORIES` on `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>`, kept 30 days.
 *
 * Advisories are core NATS messages, lost when nobody listens at the moment the server gives up on a
 * message; this stream keeps them until `DeadLetter.watchAdvisories` has written their dead letters.
 *
 * @category constants
 * @since 0.2.0
 */
export const advisories: Topology.StreamSpec = {
  name: advisoriesName,
  subjects: ["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"],
  retention: "limits",
  storage: "file",
  maxAge: Duration.days(30)
}

/**
 * The GLAM topology: `Topology.withDeadLetters(events)` under the Python services' names and subjects
 * (equal to `events`, `deadLetters` and `advisories`); no consumers (subscribers declare theirs).
 *
 * @category constants
 * @since 0.2.0
 */
export const topology: Topology.Topology = Topology.make({
  streams: Topology.withDeadLetters(events, {
    deadLetters: { name: deadLettersName, subjects: deadLetters.subjects },
    advisories: { name: advisoriesName, subjects: advisories.subjects }
  })
})

const Replicas = Schema.Int.check(Schema.isBetween({ minimum: 1, maximum: 5 }))

/**
 * `topology` with the replicas of `GLAM_EVENTS`, `GLAM_DLQ` and `GLAM_ADVISORIES` read from the
 * environment variable `GLAM_STREAM_REPLICAS`, an integer from 1 to 5. Unset, it is `topology`: the
 * streams keep the replicas the server has. Any other value is a `ConfigError` naming the variable.
 *
 * A number lower than the streams have is refused by `Topology.provision` (the spec does not allow
 * fewer): to lower them, do it on purpose with a spec that sets `allowFewerReplicas`.
 *
 * @category constructors
 * @since 0.2.0
 */
export const topologyConfig: Config.Config<Topology.Topology> = Config.option(
  Config.schema(Replicas, "GLAM_STREAM_REPLICAS")
).pipe(
  Config.map(
    Option.match({
      onNone: () => topology,
      onSome: (replicas) => Topology.make({ streams: topology.streams.map((stream) => ({ ...stream, replicas })) })
    })
  )
)

/**
 * Provisions the topology of `topologyConfig` (replicas from `GLAM_STREAM_REPLICAS`) when the layer is
 * built.
 *
 * @category layers
 * @since 0.2.0
 */
export const layerTopology = (
  options: Topology.ProvisionOptions = {}
): Layer.Layer<never, Topology.TopologyError | NatsError | Config.ConfigError, Broker> =>
  Layer.effectDiscard(Effect.flatMap(topologyConfig, (resolved) => Topology.provision(resolved, options)))

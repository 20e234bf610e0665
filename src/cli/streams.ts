/**
 * `glam-messaging streams` and `consumers`: what JetStream holds (streams with their state, limits,
 * leader and replicas; the consumers of a stream with their lag), and provisioning the GLAM topology
 * with its plan shown first.
 */
import { Clock, Duration, Effect, Option } from "effect"
import { Argument, Command } from "effect/cli"
import { Broker, type ClusterInfo, type ConsumerInfo, type StreamInfo } from "../Broker.js"
import * as Streams from "../glam/Streams.js"
import * as Topology from "../Topology.js"
import * as connection from "./connection.js"
import { CliError } from "./errors.js"
import * as flags from "./flags.js"
import * as output from "./output.js"

const jsonFlag = flags.json

const millis = (duration: Duration.Duration | undefined): number | null =>
  duration === undefined ? null : Duration.toMillis(duration)

const limit = (value: number | undefined): string => (value === undefined ? "unlimited" : String(value))

const clusterJson = (cluster: ClusterInfo | undefined) =>
  cluster === undefined
    ? null
    : { name: cluster.name ?? null, leader: cluster.leader ?? null, replicas: cluster.replicas }

const streamJson = ({ config, state, cluster }: StreamInfo) => ({
  name: config.name,
  subjects: config.subjects,
  description: config.description ?? null,
  retention: config.retention,
  storage: config.storage,
  discard: config.discard,
  maxAgeMillis: millis(config.maxAge),
  maxMessages: config.maxMessages ?? null,
  maxBytes: config.maxBytes ?? null,
  maxMessageSize: config.maxMessageSize ?? null,
  maxMessagesPerSubject: config.maxMessagesPerSubject ?? null,
  duplicateWindowMillis: millis(config.duplicateWindow),
  replicas: config.replicas,
  state,
  cluster: clusterJson(cluster)
})

const consumerJson = ({ config, state, cluster }: ConsumerInfo) => ({
  stream: config.stream,
  durable: config.name,
  filterSubject: config.filterSubject ?? null,
  deliverPolicy: config.deliverPolicy,
  ackWaitMillis: millis(config.ackWait),
  maxDeliver: config.maxDeliver ?? null,
  maxAckPending: config.maxAckPending,
  state: { ...state, lastDelivered: state.lastDelivered?.toISOString() ?? null },
  cluster: clusterJson(cluster)
})

const leaderOf = (cluster: ClusterInfo | undefined): string =>
  cluster === undefined ? "-" : (cluster.leader ?? "NONE")

const list = Command.make("list", { ...connection.flags, json: jsonFlag }, (given) =>
  Effect.gen(function* () {
    const broker = yield* Broker
    const streams = yield* broker.listStreams
    if (given.json) return yield* output.json(streams.map(streamJson))
    yield* output.table(
      ["NAME", "SUBJECTS", "MESSAGES", "BYTES", "CONSUMERS", "REPLICAS", "LEADER"],
      streams.map(({ config, state, cluster }) => [
        config.name,
        config.subjects.join(", "),
        String(state.messages),
        output.bytes(state.bytes),
        String(state.consumerCount),
        String(config.replicas),
        leaderOf(cluster)
      ])
    )
  }).pipe(connection.provide(given))
).pipe(Command.withDescription("List the streams with their state"))

const streamNotFound = (name: string) => new CliError({ message: `stream ${name} not found` })

const info = Command.make(
  "info",
  { ...connection.flags, json: jsonFlag, name: Argument.String("name").pipe(Argument.withDescription("Stream name")) },
  (given) =>
    Effect.gen(function* () {
      const broker = yield* Broker
      const found = yield* broker.streamInfo(given.name)
      if (Option.isNone(found)) return yield* streamNotFound(given.name)
      const stream = found.value
      if (given.json) return yield* output.json(streamJson(stream))
      const { config, state, cluster } = stream
      yield* output.fields(`Stream ${config.name}`, [
        ["subjects", config.subjects.join(", ")],
        ["description", config.description ?? "-"],
        ["retention", config.retention],
        ["storage", config.storage],
        ["replicas", String(config.replicas)]
      ])
      yield* output.fields("State", [
        ["messages", String(state.messages)],
        ["bytes", output.bytes(state.bytes)],
        ["first seq", String(state.firstSeq)],
        ["last seq", String(state.lastSeq)],
        ["consumers", String(state.consumerCount)]
      ])
      yield* output.fields("Limits", [
        ["max age", config.maxAge === undefined ? "unlimited" : Duration.format(config.maxAge)],
        ["max messages", limit(config.maxMessages)],
        ["max bytes", limit(config.maxBytes)],
        ["max message size", limit(config.maxMessageSize)],
        ["max per subject", limit(config.maxMessagesPerSubject)],
        ["discard", config.discard],
        ["duplicate window", Duration.format(config.duplicateWindow)]
      ])
      if (cluster === undefined) return yield* output.line("Cluster  not clustered")
      yield* output.fields(`Cluster ${cluster.name ?? ""}`.trimEnd(), [
        ["leader", cluster.leader ?? "NONE (no leader elected)"],
        ...cluster.replicas.map((replica): readonly [string, string] => [
          replica.name,
          `${replica.offline ? "OFFLINE" : replica.current ? "current" : "behind"}, lag ${replica.lag}, seen ${replica.activeMillis} ms ago`
        ])
      ])
    }).pipe(connection.provide(given))
).pipe(Command.withDescription("A stream's configuration, state, limits, leader and replicas"))

const changesText = (changes: ReadonlyArray<Topology.FieldChange>): string =>
  changes.map((change) => `${change.field}: ${change.current} → ${change.desired}`).join("; ") || "-"

const planJson = (plan: Topology.Plan) => {
  const entry = (planned: Topology.PlanEntry) => ({
    ...planned,
    consumer: planned.consumer ?? null,
    reasons: planned.reasons.map((reason) => reason.message)
  })
  return { streams: plan.streams.map(entry), consumers: plan.consumers.map(entry) }
}

const provision = Command.make(
  "provision",
  {
    ...connection.flags,
    json: jsonFlag,
    dryRun: flags.switchOf("dry-run", "Show the plan and change nothing")
  },
  (given) =>
    Effect.gen(function* () {
      const topology = yield* Streams.topologyConfig
      const plan = yield* Topology.plan(topology)
      const entries = [...plan.streams, ...plan.consumers]
      const refused = entries.filter((entry) => entry.action === "refused")
      const pending = entries.filter((entry) => entry.action === "create" || entry.action === "update")
      const applied =
        given.dryRun || refused.length > 0 || pending.length === 0 ? undefined : yield* Topology.provision(topology)
      if (given.json) {
        yield* output.json({ plan: planJson(plan), applied: applied ?? null })
      } else {
        const on = yield* output.colours
        yield* output.table(
          ["PLAN", "STREAM", "CONSUMER", "CHANGES"],
          entries.map((entry) => [
            entry.action === "refused" ? output.style.red(on, "refused") : entry.action,
            entry.stream,
            entry.consumer ?? "-",
            entry.action === "refused"
              ? entry.reasons.map((reason) => reason.message).join("; ")
              : changesText(entry.changes)
          ])
        )
        if (applied !== undefined) {
          const done = [...applied.streams, ...applied.consumers].filter((outcome) => outcome.action !== "unchanged")
          yield* output.line(
            `applied: ${done.map((outcome) => `${outcome.action} ${outcome.consumer ?? outcome.stream}`).join(", ") || "nothing to do"}`
          )
        } else if (given.dryRun) {
          yield* output.line("dry run: nothing changed")
        } else if (refused.length === 0) {
          yield* output.line("nothing to do: every stream is as declared")
        }
      }
      if (refused.length > 0) {
        return yield* new CliError({
          message: `provisioning refused for ${refused.map((entry) => entry.consumer ?? entry.stream).join(", ")}: nothing was changed`
        })
      }
    }).pipe(connection.provide(given))
).pipe(
  Command.withDescription(
    "Create or update the GLAM streams (GLAM_EVENTS, GLAM_DLQ, GLAM_ADVISORIES; replicas from GLAM_STREAM_REPLICAS)"
  )
)

/** `glam-messaging streams …` */
export const streams = Command.make("streams").pipe(
  Command.withDescription("Inspect and provision streams"),
  Command.withSubcommands([list, info, provision])
)

/** `glam-messaging consumers list <stream>` */
export const consumers = Command.make("consumers").pipe(
  Command.withDescription("Inspect consumers"),
  Command.withSubcommands([
    Command.make(
      "list",
      {
        ...connection.flags,
        json: jsonFlag,
        stream: Argument.String("stream").pipe(Argument.withDescription("Stream name"))
      },
      (given) =>
        Effect.gen(function* () {
          const broker = yield* Broker
          const found = yield* broker.listConsumers(given.stream)
          if (given.json) return yield* output.json(found.map(consumerJson))
          const now = yield* Clock.currentTimeMillis
          yield* output.table(
            ["DURABLE", "FILTER", "PENDING", "ACK PENDING", "REDELIVERED", "WAITING", "LAST ACTIVE", "LEADER"],
            found.map(({ config, state, cluster }) => [
              config.name,
              config.filterSubject ?? ">",
              String(state.numPending),
              String(state.numAckPending),
              String(state.numRedelivered),
              String(state.numWaiting),
              output.ago(state.lastDelivered, now),
              leaderOf(cluster)
            ])
          )
        }).pipe(connection.provide(given))
    ).pipe(Command.withDescription("The consumers of a stream and how far behind they are"))
  ])
)

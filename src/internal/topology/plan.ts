/**
 * A whole topology planned: its resolved specs checked together (each name declared once, no two of
 * its streams overlapping), every stream and consumer planned against the broker in the order a run
 * applies them, and the plan as `Topology.plan` reports it, with a consumer on a stream that neither
 * exists nor is declared refused.
 *
 * Not here: specs and their validation one by one (`Topology`), the drift of one stream or consumer
 * and applying it (`drift`).
 */
import { Effect, Option } from "effect"
import { Broker, type ConsumerConfig, type StreamConfig } from "../../Broker.js"
import type { NatsError } from "../../NatsError.js"
import { describeWhere, invalid, TopologyError } from "../../TopologyError.js"
import { describeSubjects, overlapping } from "../brokerErrors.js"
import * as drift from "./drift.js"

type Call = <A>(effect: Effect.Effect<A, NatsError>) => Effect.Effect<A, NatsError>

/** A stream of the topology: its spec (for the replicas rule) and its resolved configuration. */
export interface Declared {
  readonly spec: drift.ReplicasWanted
  readonly config: StreamConfig
}

const duplicateOf = <A>(items: ReadonlyArray<A>, key: (item: A) => string): A | undefined =>
  items.find((item, index) => items.findIndex((other) => key(other) === key(item)) !== index)

/** Refuses, before the server is asked, names declared twice and two of its streams that overlap (they could never both exist). */
export const checkTogether = (
  streams: ReadonlyArray<Declared>,
  consumers: ReadonlyArray<ConsumerConfig>
): Effect.Effect<void, TopologyError> => {
  const sameStream = duplicateOf(streams, (s) => s.config.name)
  if (sameStream !== undefined) return invalid({ stream: sameStream.config.name }, "name", "is declared twice")
  const sameConsumer = duplicateOf(consumers, (c) => `${c.stream}/${c.name}`)
  if (sameConsumer !== undefined) {
    return invalid({ stream: sameConsumer.stream, consumer: sameConsumer.name }, "name", "is declared twice")
  }
  for (const [index, { config }] of streams.entries()) {
    const [other] = overlapping(
      config,
      streams.slice(index + 1).map((s) => s.config)
    )
    if (other === undefined) continue
    const message = `${describeSubjects(config)} overlaps ${describeSubjects(other)} in the same topology: the server refuses streams whose subjects overlap`
    return new TopologyError({ stream: config.name, field: "subjects", message })
  }
  return Effect.void
}

/**
 * The plans of every stream and consumer. Streams come existing ones first, then missing ones, the
 * order a run applies them in, so that subjects can move from an old stream to a new one in one run.
 */
export const plansOf = Effect.fnUntraced(function* (
  call: Call,
  streams: ReadonlyArray<Declared>,
  consumers: ReadonlyArray<ConsumerConfig>
) {
  const streamPlans = yield* Effect.forEach(streams, ({ spec, config }) => drift.planStream(call, spec, config))
  const created = new Set(streamPlans.filter((p) => !p.exists).map((p) => p.desired.name))
  const consumerPlans = yield* Effect.forEach(consumers, (desired) =>
    drift.planConsumer(call, desired, created.has(desired.stream))
  )
  return {
    streams: [...streamPlans.filter((p) => p.exists), ...streamPlans.filter((p) => !p.exists)],
    consumers: consumerPlans
  }
})

const entryOf = <C>({ where, exists, changes, refusals }: drift.Plan<C>): drift.PlanEntry => ({
  ...where,
  action: refusals.length > 0 ? "refused" : !exists ? "create" : changes.length > 0 ? "update" : "unchanged",
  changes,
  reasons: refusals
})

/** What a run would do, entry by entry, without changing anything. */
export const planOf = Effect.fnUntraced(function* (
  call: Call,
  streams: ReadonlyArray<Declared>,
  consumers: ReadonlyArray<ConsumerConfig>
) {
  const plans = yield* plansOf(call, streams, consumers)
  const declared = new Set(streams.map((s) => s.config.name))
  // A run would try to create such a consumer and fail with the server's StreamNotFound.
  const undeclared = [...new Set(consumers.map((c) => c.stream).filter((stream) => !declared.has(stream)))]
  const missing = new Set<string>()
  for (const stream of undeclared) {
    const info = yield* Broker.use((broker) => call(broker.streamInfo(stream)))
    if (Option.isNone(info)) missing.add(stream)
  }
  const consumerEntries = plans.consumers.map((p) => {
    if (!missing.has(p.desired.stream)) return entryOf(p)
    const message = `${describeWhere(p.where)}: stream ${p.desired.stream} does not exist and the topology does not declare it`
    return entryOf({ ...p, refusals: [new TopologyError({ ...p.where, field: "stream", message })] })
  })
  return { streams: plans.streams.map(entryOf), consumers: consumerEntries }
})

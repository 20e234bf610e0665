/**
 * Drift between the broker and a topology: which fields differ, which of them the server updates in
 * place, and the creates and updates that make the broker match.
 *
 * Not public: `Topology.provision` is `provision` here; the specs are checked by `topologySpec`.
 */
import { Duration, Effect, Option } from "effect"
import { Broker, type ConsumerConfig, type StreamConfig } from "../Broker.js"
import type { NatsError } from "../NatsError.js"
import type { FieldChange, Outcome, Report, Topology } from "../Topology.js"
import { describe, invalid, resolveConsumer, resolveStream, TopologyError, type Where } from "./topologySpec.js"

// Whether the server can change the field in place, and how a value of it reads in reports and errors.
type Rule<C> = readonly [updatable: boolean, render: (config: C) => string]

const limit = (value: number | undefined): string => (value === undefined ? "unlimited" : String(value))
const text = (value: string | undefined): string => (value === undefined ? "none" : JSON.stringify(value))

const streamRules: { readonly [K in Exclude<keyof StreamConfig, "name">]: Rule<StreamConfig> } = {
  subjects: [true, (c) => [...c.subjects].sort().join(", ")],
  description: [true, (c) => text(c.description)],
  retention: [false, (c) => c.retention],
  storage: [false, (c) => c.storage],
  discard: [true, (c) => c.discard],
  maxAge: [true, (c) => (c.maxAge === undefined ? "unlimited" : Duration.format(c.maxAge))],
  maxMessages: [true, (c) => limit(c.maxMessages)],
  maxBytes: [true, (c) => limit(c.maxBytes)],
  maxMessageSize: [true, (c) => limit(c.maxMessageSize)],
  maxMessagesPerSubject: [true, (c) => limit(c.maxMessagesPerSubject)],
  duplicateWindow: [true, (c) => Duration.format(c.duplicateWindow)],
  replicas: [true, (c) => String(c.replicas)]
}

const consumerRules: { readonly [K in Exclude<keyof ConsumerConfig, "stream" | "name">]: Rule<ConsumerConfig> } = {
  description: [true, (c) => text(c.description)],
  filterSubject: [true, (c) => c.filterSubject ?? ">"],
  deliverPolicy: [false, (c) => c.deliverPolicy],
  ackWait: [true, (c) => Duration.format(c.ackWait)],
  maxDeliver: [true, (c) => limit(c.maxDeliver)],
  maxAckPending: [true, (c) => String(c.maxAckPending)]
}

interface Plan<C> {
  readonly where: Where
  readonly desired: C
  readonly exists: boolean
  readonly changes: ReadonlyArray<FieldChange>
}

// Fails on the first change the server would refuse, so that nothing is applied when one is refused.
const plan = <C>(
  rules: Readonly<Record<string, Rule<C>>>,
  where: Where,
  desired: C,
  info: Option.Option<{ readonly config: C }>
): Effect.Effect<Plan<C>, TopologyError> => {
  if (Option.isNone(info)) return Effect.succeed({ where, desired, exists: false, changes: [] })
  const changes: Array<FieldChange> = []
  for (const [field, [updatable, render]] of Object.entries(rules)) {
    const [current, wanted] = [render(info.value.config), render(desired)]
    if (current === wanted) continue
    if (!updatable) {
      const message = `${describe(where)}: ${field} cannot change from ${current} to ${wanted} in place; delete and recreate it, or keep ${current}`
      return Effect.fail(new TopologyError({ ...where, field, current, desired: wanted, message }))
    }
    changes.push({ field, current, desired: wanted })
  }
  return Effect.succeed({ where, desired, exists: true, changes })
}

const apply = <C>(
  { where, desired, exists, changes }: Plan<C>,
  create: (config: C) => Effect.Effect<unknown, NatsError>,
  update: (config: C) => Effect.Effect<unknown, NatsError>
): Effect.Effect<Outcome, NatsError> => {
  const action = !exists ? "created" : changes.length > 0 ? "updated" : "unchanged"
  const outcome: Outcome = { ...where, action, changes }
  if (action === "unchanged") return Effect.succeed(outcome)
  const summary = changes.map((c) => `; ${c.field}: ${c.current} -> ${c.desired}`).join("")
  return (exists ? update : create)(desired).pipe(
    Effect.andThen(Effect.logInfo(`Topology: ${action} ${describe(where)}${summary}`)),
    Effect.as(outcome)
  )
}

const duplicateOf = <A>(items: ReadonlyArray<A>, key: (item: A) => string): A | undefined =>
  items.find((item, index) => items.findIndex((other) => key(other) === key(item)) !== index)

/** Documented as `Topology.provision`. */
export const provision = Effect.fn("Topology.provision")(function* (topology: Topology) {
  const streams = yield* Effect.forEach(topology.streams, resolveStream)
  const consumers = yield* Effect.forEach(topology.consumers, resolveConsumer)
  const sameStream = duplicateOf(streams, (s) => s.name)
  if (sameStream !== undefined) return yield* invalid({ stream: sameStream.name }, "name", "is declared twice")
  const sameConsumer = duplicateOf(consumers, (c) => `${c.stream}/${c.name}`)
  if (sameConsumer !== undefined) {
    return yield* invalid({ stream: sameConsumer.stream, consumer: sameConsumer.name }, "name", "is declared twice")
  }

  const broker = yield* Broker
  const streamPlans = yield* Effect.forEach(streams, (desired) =>
    Effect.flatMap(broker.streamInfo(desired.name), (info) =>
      plan(streamRules, { stream: desired.name }, desired, info)
    )
  )
  const created = new Set(streamPlans.filter((p) => !p.exists).map((p) => p.desired.name))
  const consumerPlans = yield* Effect.forEach(consumers, (desired) =>
    Effect.flatMap(
      created.has(desired.stream) ? Effect.succeed(Option.none()) : broker.consumerInfo(desired.stream, desired.name),
      (info) => plan(consumerRules, { stream: desired.stream, consumer: desired.name }, desired, info)
    )
  )

  // Updates before creates, so that subjects can move from an old stream to a new one in a single run.
  const updatesFirst = [...streamPlans.filter((p) => p.exists), ...streamPlans.filter((p) => !p.exists)]
  const report: Report = {
    streams: yield* Effect.forEach(updatesFirst, (p) => apply(p, broker.addStream, broker.updateStream)),
    consumers: yield* Effect.forEach(consumerPlans, (p) => apply(p, broker.addConsumer, broker.updateConsumer))
  }
  return report
})

/**
 * Drift between the broker and a topology: which fields differ, which of them the server updates in
 * place, and the creates and updates that make the broker match, each broker call retried while
 * JetStream is not answering.
 *
 * Not public: `Topology.provision` is `provision` here; the specs are checked by `spec`.
 */
import { Clock, Duration, Effect, Option, Ref, Schedule } from "effect"
import { Broker, type ConsumerConfig, type StreamConfig, type StreamInfo } from "../../Broker.js"
import type { NatsError } from "../../NatsError.js"
import type { FieldChange, Outcome, Report, StreamSpec, Topology } from "../../Topology.js"
import { describeSubjects, overlapping } from "../brokerErrors.js"
import { formatMillis } from "../durations.js"
import { describeWhere, invalid, resolveConsumer, resolveStream, TopologyError, type Where } from "./spec.js"

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
      const message = `${describeWhere(where)}: ${field} cannot change from ${current} to ${wanted} in place; delete and recreate it, or keep ${current}`
      return Effect.fail(new TopologyError({ ...where, field, current, desired: wanted, message }))
    }
    changes.push({ field, current, desired: wanted })
  }
  return Effect.succeed({ where, desired, exists: true, changes })
}

// The server lowers replicas in place without a word, and the copies it drops are the operator's
// safety margin: a spec that does not name them keeps the server's, and one that names fewer must say
// that it means it.
const withReplicas = (
  spec: StreamSpec,
  desired: StreamConfig,
  info: Option.Option<StreamInfo>
): Effect.Effect<StreamConfig, TopologyError> => {
  if (Option.isNone(info)) return Effect.succeed(desired)
  const current = info.value.config.replicas
  if (spec.replicas === undefined) return Effect.succeed({ ...desired, replicas: current })
  if (desired.replicas >= current || spec.allowFewerReplicas === true) return Effect.succeed(desired)
  const message = `${describeWhere({ stream: desired.name })}: replicas would go down from ${current} to ${desired.replicas}; set allowFewerReplicas to lower them, or leave replicas out to keep ${current}`
  return Effect.fail(
    new TopologyError({
      stream: desired.name,
      field: "replicas",
      current: String(current),
      desired: String(desired.replicas),
      message
    })
  )
}

const apply = <C>(
  { where, desired, exists, changes }: Plan<C>,
  create: (config: C) => Effect.Effect<unknown, NatsError>,
  update: (config: C) => Effect.Effect<unknown, NatsError>
): Effect.Effect<Outcome, NatsError> => {
  const action = !exists ? "created" : changes.length > 0 ? "updated" : "unchanged"
  const outcome: Outcome = { ...where, action, changes }
  if (action === "unchanged") return Effect.succeed(outcome)
  const line = `Topology: ${action} ${describeWhere(where)}${changes.map((c) => `; ${c.field}: ${c.current} -> ${c.desired}`).join("")}`
  // An update changes what others rely on (limits, subjects, replicas), so it is a warning; a creation is not.
  return (exists ? update : create)(desired).pipe(
    Effect.andThen(exists ? Effect.logWarning(line) : Effect.logInfo(line)),
    Effect.as(outcome)
  )
}

interface Waiting {
  readonly since: number
  readonly reported: number
  readonly failures: number
}

// Every broker call of one run steps the same schedule, so that its budget is spent in all and not
// call by call; a call is retried, never the plan, so that what was already applied is not planned
// again. The log says when the waiting starts, how it goes every 10 s, and when it ends.
const retrying = Effect.fnUntraced(function* (schedule: Schedule.Schedule<unknown, NatsError>) {
  const shared = Schedule.fromStep(Effect.succeed(yield* Schedule.toStep(schedule)))
  const waiting = yield* Ref.make(Option.none<Waiting>())
  const elapsed = (since: number, now: number) => formatMillis(now - since)

  const attempts = (failures: number) => (failures === 1 ? "1 failed attempt" : `${failures} failed attempts`)

  // The waiting starts with the first failed attempt, not when it failed: a request can take its whole
  // timeout to fail.
  const failed = (error: NatsError, started: number) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Ref.modify(waiting, (state): [Effect.Effect<void>, Option.Option<Waiting>] => {
        if (Option.isNone(state)) {
          const line = `Topology: waiting for JetStream, which does not answer: ${error.message} (${error.reason._tag})`
          return [Effect.logWarning(line), Option.some({ since: started, reported: now, failures: 1 })]
        }
        const { since, reported, failures } = state.value
        if (now - reported < 10_000) return [Effect.void, Option.some({ since, reported, failures: failures + 1 })]
        const line = `Topology: still waiting for JetStream after ${elapsed(since, now)} (${attempts(failures + 1)}): ${error.message}`
        return [Effect.logWarning(line), Option.some({ since, reported: now, failures: failures + 1 })]
      }).pipe(Effect.flatten)
    )

  const ended = (answered: boolean) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Ref.getAndSet(waiting, Option.none()).pipe(
        Effect.flatMap(
          Option.match({
            onNone: () => Effect.void,
            onSome: ({ since, failures }) =>
              answered
                ? Effect.logInfo(
                    `Topology: JetStream answers again, after waiting ${elapsed(since, now)} (${attempts(failures)})`
                  )
                : Effect.logWarning(
                    `Topology: gave up waiting for JetStream after ${elapsed(since, now)} (${attempts(failures)})`
                  )
          })
        )
      )
    )

  return <A>(call: Effect.Effect<A, NatsError>): Effect.Effect<A, NatsError> =>
    Effect.flatMap(Clock.currentTimeMillis, (started) =>
      Effect.tapError(call, (error) => (error.isRetryable ? failed(error, started) : Effect.void))
    ).pipe(
      Effect.retry({ while: (error) => error.isRetryable, schedule: shared }),
      Effect.tapError((error) => (error.isRetryable ? ended(false) : Effect.void)),
      Effect.tap(() => ended(true))
    )
})

const duplicateOf = <A>(items: ReadonlyArray<A>, key: (item: A) => string): A | undefined =>
  items.find((item, index) => items.findIndex((other) => key(other) === key(item)) !== index)

/** Documented as `Topology.provision`; `retry` is the schedule of the whole run. */
export const provision = Effect.fn("Topology.provision")(function* (
  topology: Topology,
  retry: Schedule.Schedule<unknown, NatsError>
) {
  const streams = yield* Effect.forEach(topology.streams, (spec) =>
    Effect.map(resolveStream(spec), (config) => ({ spec, config }))
  )
  const consumers = yield* Effect.forEach(topology.consumers, resolveConsumer)
  const sameStream = duplicateOf(streams, (s) => s.config.name)
  if (sameStream !== undefined) return yield* invalid({ stream: sameStream.config.name }, "name", "is declared twice")
  const sameConsumer = duplicateOf(consumers, (c) => `${c.stream}/${c.name}`)
  if (sameConsumer !== undefined) {
    return yield* invalid({ stream: sameConsumer.stream, consumer: sameConsumer.name }, "name", "is declared twice")
  }

  // Two of its own streams that overlap could never both exist: refused before the server is asked.
  for (const [index, { config }] of streams.entries()) {
    const [other] = overlapping(
      config,
      streams.slice(index + 1).map((s) => s.config)
    )
    if (other === undefined) continue
    const message = `${describeSubjects(config)} overlaps ${describeSubjects(other)} in the same topology: the server refuses streams whose subjects overlap`
    return yield* new TopologyError({ stream: config.name, field: "subjects", message })
  }

  const broker = yield* Broker
  const call = yield* retrying(retry)
  const streamPlans = yield* Effect.forEach(streams, ({ spec, config }) =>
    Effect.flatMap(call(broker.streamInfo(config.name)), (info) =>
      Effect.flatMap(withReplicas(spec, config, info), (desired) =>
        plan(streamRules, { stream: desired.name }, desired, info)
      )
    )
  )
  const created = new Set(streamPlans.filter((p) => !p.exists).map((p) => p.desired.name))
  const consumerPlans = yield* Effect.forEach(consumers, (desired) =>
    Effect.flatMap(
      created.has(desired.stream)
        ? Effect.succeed(Option.none())
        : call(broker.consumerInfo(desired.stream, desired.name)),
      (info) => plan(consumerRules, { stream: desired.stream, consumer: desired.name }, desired, info)
    )
  )

  // Updates before creates, so that subjects can move from an old stream to a new one in a single run.
  const updatesFirst = [...streamPlans.filter((p) => p.exists), ...streamPlans.filter((p) => !p.exists)]
  const report: Report = {
    streams: yield* Effect.forEach(updatesFirst, (p) =>
      apply(
        p,
        (config) => call(broker.addStream(config)),
        (config) => call(broker.updateStream(config))
      )
    ),
    consumers: yield* Effect.forEach(consumerPlans, (p) =>
      apply(
        p,
        (config) => call(broker.addConsumer(config)),
        (config) => call(broker.updateConsumer(config))
      )
    )
  }
  return report
})

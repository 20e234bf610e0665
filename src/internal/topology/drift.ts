/**
 * Drift between the broker and resolved stream and consumer configurations: which fields differ, which
 * of them the server updates in place and which it refuses, the replicas rule, and the creates and
 * updates that make the broker match, each broker call retried on one schedule while JetStream is not
 * answering.
 *
 * Not here: specs and their validation, and the order of a run (`plan`, `Topology.provision`).
 */
import { Clock, Duration, Effect, Option, Ref, Schedule } from "effect"
import { Broker, type ConsumerConfig, type StreamConfig, type StreamInfo } from "../../Broker.js"
import type { NatsError } from "../../NatsError.js"
import { describeWhere, TopologyError, type Where } from "../../TopologyError.js"
import { formatMillis } from "../durations.js"

/** One field that differs between the broker and the desired configuration, rendered for people. */
export interface FieldChange {
  readonly field: string
  readonly current: string
  readonly desired: string
}

/** What a run did to one stream or consumer; `changes` is empty unless it was updated. */
export interface Outcome {
  readonly stream: string
  /** Absent for a stream. */
  readonly consumer?: string | undefined
  readonly action: "created" | "updated" | "unchanged"
  readonly changes: ReadonlyArray<FieldChange>
}

/** What a run would do to one stream or consumer: documented as `Topology.PlanEntry`. */
export interface PlanEntry {
  readonly stream: string
  /** Absent for a stream. */
  readonly consumer?: string | undefined
  readonly action: "create" | "update" | "unchanged" | "refused"
  readonly changes: ReadonlyArray<FieldChange>
  readonly reasons: ReadonlyArray<TopologyError>
}

/** How a spec asks for replicas: whether it names them, and whether it may lower them. */
export interface ReplicasWanted {
  readonly replicas?: number | undefined
  readonly allowFewerReplicas?: boolean | undefined
}

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

export interface Plan<C> {
  readonly where: Where
  readonly desired: C
  readonly exists: boolean
  /** The fields the server updates in place. */
  readonly changes: ReadonlyArray<FieldChange>
  /** Why the rest cannot be applied: a plan with any is never applied. */
  readonly refusals: ReadonlyArray<TopologyError>
}

// Every change the server would refuse is a refusal, so that a run can apply nothing when there is one
// and a plan can name them all.
const planOf = <C>(
  rules: Readonly<Record<string, Rule<C>>>,
  where: Where,
  desired: C,
  info: Option.Option<{ readonly config: C }>,
  refused: ReadonlyArray<TopologyError> = []
): Plan<C> => {
  if (Option.isNone(info)) return { where, desired, exists: false, changes: [], refusals: [] }
  const changes: Array<FieldChange> = []
  const refusals = [...refused]
  for (const [field, [updatable, render]] of Object.entries(rules)) {
    const [current, wanted] = [render(info.value.config), render(desired)]
    if (current === wanted) continue
    if (updatable) changes.push({ field, current, desired: wanted })
    else {
      const message = `${describeWhere(where)}: ${field} cannot change from ${current} to ${wanted} in place; delete and recreate it, or keep ${current}`
      refusals.push(new TopologyError({ ...where, field, current, desired: wanted, message }))
    }
  }
  return { where, desired, exists: true, changes, refusals }
}

// The server lowers replicas in place without a word, and the copies it drops are the operator's
// safety margin: a spec that does not name them keeps the server's, and one that names fewer must say
// that it means it (else it is refused, and planned with the server's).
const withReplicas = (
  spec: ReplicasWanted,
  desired: StreamConfig,
  info: Option.Option<StreamInfo>
): { readonly desired: StreamConfig; readonly refused: ReadonlyArray<TopologyError> } => {
  if (Option.isNone(info)) return { desired, refused: [] }
  const current = info.value.config.replicas
  if (spec.replicas === undefined) return { desired: { ...desired, replicas: current }, refused: [] }
  if (desired.replicas >= current || spec.allowFewerReplicas === true) return { desired, refused: [] }
  const message = `${describeWhere({ stream: desired.name })}: replicas would go down from ${current} to ${desired.replicas}; set allowFewerReplicas to lower them, or leave replicas out to keep ${current}`
  const refusal = new TopologyError({
    stream: desired.name,
    field: "replicas",
    current: String(current),
    desired: String(desired.replicas),
    message
  })
  return { desired: { ...desired, replicas: current }, refused: [refusal] }
}

export const apply = <C>(
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
export const retrying = Effect.fnUntraced(function* (schedule: Schedule.Schedule<unknown, NatsError>) {
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

/** The plan of a stream: its drift from the server's, replicas kept unless the spec says otherwise. */
export const planStream = (
  call: <A>(effect: Effect.Effect<A, NatsError>) => Effect.Effect<A, NatsError>,
  spec: ReplicasWanted,
  config: StreamConfig
): Effect.Effect<Plan<StreamConfig>, NatsError, Broker> =>
  Effect.map(
    Broker.use((broker) => call(broker.streamInfo(config.name))),
    (info) => {
      const { desired, refused } = withReplicas(spec, config, info)
      return planOf(streamRules, { stream: desired.name }, desired, info, refused)
    }
  )

/** The plan of a consumer; one of a stream created in this run has nothing to ask the server. */
export const planConsumer = (
  call: <A>(effect: Effect.Effect<A, NatsError>) => Effect.Effect<A, NatsError>,
  desired: ConsumerConfig,
  streamCreated: boolean
): Effect.Effect<Plan<ConsumerConfig>, NatsError, Broker> =>
  Effect.map(
    streamCreated
      ? Effect.succeed(Option.none<{ readonly config: ConsumerConfig }>())
      : Broker.use((broker) => call(broker.consumerInfo(desired.stream, desired.name))),
    (info) => planOf(consumerRules, { stream: desired.stream, consumer: desired.name }, desired, info)
  )

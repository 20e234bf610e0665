/**
 * What the broker contract scenarios share: the shape of a scenario, the environment it runs in, raw
 * consumers whose deliveries land in a queue with the time they arrived, subscribers in scopes of their
 * own, and checks for `eventually` (test/support/Eventually.ts) to poll.
 *
 * Nothing here knows which broker it runs on: everything goes through `Broker`, `Publisher`,
 * `Subscriber` and `Topology`.
 */
import { Clock, Duration, Effect, Exit, Option, Queue, Schema, Scope, Stream } from "effect"
import { Broker, type Message } from "../../src/Broker.js"
import * as Event from "../../src/Event.js"
import * as Streams from "../../src/glam/Streams.js"
import type { NatsError } from "../../src/NatsError.js"
import type * as Publisher from "../../src/Publisher.js"
import type { ServiceIdentity } from "../../src/ServiceIdentity.js"
import * as Topology from "../../src/Topology.js"
import { eventually, NotYet } from "../support/Eventually.js"

/** The services every scenario may use. */
export type ContractEnv = Broker | Publisher.Publisher | ServiceIdentity

/** One scenario of the contract: a name, the topology it starts from, and the program that checks it. */
export interface Scenario<R = never> {
  readonly name: string
  /** Default `Streams.topology`. */
  readonly topology?: Topology.Topology | undefined
  /** It waits on ack-waits, nak delays or the duplicate window, so it needs timers on the wall clock. */
  readonly realTime?: boolean | undefined
  /** Vitest's timeout for it, in milliseconds. Default 20 s. */
  readonly timeout?: number | undefined
  readonly run: Effect.Effect<void, unknown, ContractEnv | R | Scope.Scope>
}

/** Fails with `NotYet` unless `condition` holds; the condition is read when this is built, so polling mutable state needs `Effect.suspend`. */
export const check = (condition: boolean, message: string): Effect.Effect<void, NotYet> =>
  condition ? Effect.void : Effect.fail(new NotYet({ message }))

export { bytes, text } from "../support/configs.js"
export const sameBytes = (a: Uint8Array, b: Uint8Array): boolean =>
  a.byteLength === b.byteLength && a.every((byte, i) => byte === b[i])

export const timeout = Duration.seconds(5)

/** The event most scenarios publish: a number, and a key to group by. */
export const Item = Event.make("evt.contract.item.v1", Schema.Struct({ n: Schema.Number, key: Schema.String }))

/** Creates (or updates) durable pull consumers on a stream, `GLAM_EVENTS` unless given. */
export const consumers = (...specs: ReadonlyArray<Omit<Topology.ConsumerSpec, "stream"> & { stream?: string }>) =>
  Topology.provision(
    Topology.make({
      consumers: specs.map((spec) => ({ ...spec, stream: spec.stream ?? Streams.eventsName }))
    })
  )

/** Publishes raw bytes through the broker. */
export const publishRaw = (
  subject: string,
  payload: Uint8Array,
  options: { readonly headers?: ReadonlyArray<readonly [string, string]>; readonly messageId?: string } = {}
) =>
  Effect.flatMap(Broker, (broker) =>
    broker.publish({ subject, payload, headers: options.headers ?? [], messageId: options.messageId, timeout })
  )

/** One delivery as a raw consumer saw it, with the wall-clock time it arrived. */
export interface Arrival {
  readonly message: Message
  readonly at: number
}

/** A raw consume running in the current scope; its deliveries (or its failure) land in `arrivals`. */
export interface RawConsumer {
  readonly arrivals: Queue.Queue<Arrival, NatsError>
  /** The next delivery, failing after `within`. */
  readonly next: (within?: Duration.Input) => Effect.Effect<Arrival, unknown>
  /** Fails if anything arrives within `period` (it waits the whole period). */
  readonly nothingWithin: (period: Duration.Input) => Effect.Effect<void, unknown>
}

/** Consumes a durable with `broker.consume` (on `GLAM_EVENTS` unless given), settling nothing by itself. */
export const consumeRaw = (
  consumer: string,
  options: {
    readonly stream?: string
    readonly maxMessages?: number
    readonly window?: () => number
    readonly idleHeartbeat?: Duration.Duration
  } = {}
) =>
  Effect.gen(function* () {
    const broker = yield* Broker
    const arrivals = yield* Queue.unbounded<Arrival, NatsError>()
    yield* broker
      .consume(options.stream ?? Streams.eventsName, consumer, {
        maxMessages: options.maxMessages ?? 100,
        window: options.window,
        idleHeartbeat: options.idleHeartbeat
      })
      .pipe(
        Stream.runForEach((message) =>
          Effect.flatMap(Clock.currentTimeMillis, (at) => Queue.offer(arrivals, { message, at }))
        ),
        Effect.catchCause((cause) => Queue.failCause(arrivals, cause)),
        Effect.forkScoped
      )
    const next = (within: Duration.Input = "10 seconds") =>
      Queue.take(arrivals).pipe(
        Effect.timeoutOrElse({
          duration: within,
          orElse: () => Effect.fail(new NotYet({ message: `${consumer}: nothing delivered within ${String(within)}` }))
        })
      )
    const nothingWithin = (period: Duration.Input) =>
      Effect.gen(function* () {
        yield* Effect.sleep(period)
        const early = yield* Queue.poll(arrivals)
        if (Option.isSome(early)) {
          const { message } = early.value
          return yield* Effect.fail(
            new NotYet({
              message: `${consumer}: unexpected delivery of #${message.streamSeq} (${message.subject}, delivery ${message.deliveryCount})`
            })
          )
        }
      })
    const raw: RawConsumer = { arrivals, next, nothingWithin }
    return raw
  })

/**
 * Runs a subscriber (or any scoped program) in a child scope of the current one: closing it stops the
 * program, and the scenario's end closes it at the latest (before the broker goes away).
 */
export const runScoped = <E, R>(program: Effect.Effect<void, E, R>) =>
  Effect.gen(function* () {
    const scope = yield* Scope.fork(yield* Scope.Scope)
    yield* program.pipe(Scope.provide(scope))
    return scope
  })

/** Closes a scope opened by `runScoped`. */
export const stop = (scope: Scope.Closeable) => Scope.close(scope, Exit.void)

/** Counts how often each key was recorded, to find losses and duplicates. */
export const tally = (keys: Iterable<string>): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const key of keys) counts.set(key, (counts.get(key) ?? 0) + 1)
  return counts
}

/** How many keys were recorded more than once, counting every extra time. */
export const duplicates = (counts: ReadonlyMap<string, number>): number => {
  let extra = 0
  for (const count of counts.values()) extra += Math.max(0, count - 1)
  return extra
}

/** The consumer's state on the broker; fails when the consumer does not exist. */
export const consumerState = (consumer: string, stream: string = Streams.eventsName) =>
  Effect.flatMap(Broker, (broker) => broker.consumerInfo(stream, consumer)).pipe(
    Effect.flatMap((info) =>
      Option.match(info, {
        onNone: () => Effect.fail(new NotYet({ message: `no consumer ${stream}/${consumer}` })),
        onSome: (found) => Effect.succeed(found.state)
      })
    )
  )

/** Every message up to `lastSeq` is acknowledged on `consumer` and nothing is left unacknowledged. */
export const acked = (consumer: string, lastSeq: number) =>
  eventually(
    Effect.flatMap(consumerState(consumer), (state) =>
      check(
        state.ackFloor.streamSeq === lastSeq && state.numAckPending === 0,
        `${consumer}: ack floor ${state.ackFloor.streamSeq} (want ${lastSeq}), ${state.numAckPending} unacknowledged`
      )
    )
  )

/** How many messages a stream holds (0 when it does not exist). */
export const messageCount = (stream: string) =>
  Effect.flatMap(Broker, (broker) => broker.streamInfo(stream)).pipe(
    Effect.map(Option.match({ onNone: () => 0, onSome: (info) => info.state.messages }))
  )

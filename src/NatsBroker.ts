/**
 * The `Broker` over NATS JetStream: publishing through `internal/nats/publish` (acknowledgements matched
 * on an inbox of our own), consuming through `internal/nats/consume`, and the administration of streams and durable pull consumers through the
 * JetStream manager of a `NatsClient`.
 *
 * It translates and nothing more: configurations go through `internal/nats/config`, failures through
 * `internal/nats/errors`. Retrying a publish is the `Publisher`'s job (on an Effect `Schedule`);
 * consumers never get a `backoff`, because nats-server 2.9 mistimes `nak(delay)` when one is set.
 *
 * @since 0.1.0
 */
import { type Config, Effect, Layer, Option, type Scope, Stream } from "effect"
import {
  Broker,
  type ConsumeOptions,
  type ConsumerConfig,
  type PurgeOptions,
  type ServerAddress,
  type StoredMessage,
  type StreamConfig
} from "./Broker.js"
import { OVERLAP_CODE, overlapping, subjectsOverlap } from "./internal/brokerErrors.js"
import { fromConsumerInfo, fromStreamInfo, toConsumerConfig, toStreamConfig } from "./internal/nats/config.js"
import { consume as consumeMessages } from "./internal/nats/consume.js"
import { fromCause } from "./internal/nats/errors.js"
import * as Publishing from "./internal/nats/publish.js"
import { headerPairs } from "./internal/nats/pull.js"
import * as StreamLookup from "./internal/nats/streamLookup.js"
import * as NatsClient from "./NatsClient.js"
import { type NatsError, make as natsError } from "./NatsError.js"

// Lookups answer "not found" with a value, not an error.
const noneWhen =
  (...tags: ReadonlyArray<NatsError["reason"]["_tag"]>) =>
  <A>(effect: Effect.Effect<A, NatsError>): Effect.Effect<Option.Option<A>, NatsError> =>
    effect.pipe(
      Effect.map(Option.some),
      Effect.catchIf(
        (error) => tags.includes(error.reason._tag),
        () => Effect.succeed(Option.none())
      )
    )

const falseWhen =
  (...tags: ReadonlyArray<NatsError["reason"]["_tag"]>) =>
  (effect: Effect.Effect<boolean, NatsError>): Effect.Effect<boolean, NatsError> =>
    Effect.catchIf(
      effect,
      (error) => tags.includes(error.reason._tag),
      () => Effect.succeed(false)
    )

/** How long, and over how many streams per subject, the streams in the way of an overlap are looked for. */
const overlapLookupTimeout = "2 seconds"
const maxOverlapLookup = 256

/**
 * Builds the NATS `Broker` from the `NatsClient` in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: Effect.Effect<Broker["Service"], never, NatsClient.NatsClient | Scope.Scope> = Effect.gen(
  function* () {
    const client = yield* NatsClient.NatsClient
    const { manager } = client

    // Which stream captures a subject: asked by `streamFor`, and by a publish nobody answered.
    const streams = StreamLookup.make(manager)
    // Publishes and their acknowledgements go through our own inbox: no Promise or Error per publish.
    // Its subscription ends with the broker, also on a connection the broker does not own.
    const publisher = yield* Publishing.make(client.connection, streams)

    const streamInfo = (name: string) =>
      Effect.tryPromise({
        try: () => manager.streams.info(name),
        catch: fromCause("streamInfo", { stream: name })
      }).pipe(Effect.map(fromStreamInfo), noneWhen("StreamNotFound"))

    // The server refuses overlapping subjects without saying whose they are: the streams that collide
    // with each subject are asked for, within a bound, and a lookup that fails names none of them.
    const overlappingStreams = (config: StreamConfig) =>
      Effect.forEach(config.subjects.length === 0 ? [config.name] : config.subjects, (subject) =>
        Stream.fromAsyncIterable(manager.streams.list(subject), fromCause("listStreams")).pipe(
          Stream.take(maxOverlapLookup),
          Stream.map((info) => ({ name: info.config.name, subjects: info.config.subjects ?? [] })),
          Stream.runCollect
        )
      ).pipe(
        Effect.map((found) => overlapping(config, found.flat())),
        Effect.timeout(overlapLookupTimeout),
        Effect.orElseSucceed(() => [])
      )

    const namingOverlaps =
      (operation: string, config: StreamConfig) =>
      <A>(effect: Effect.Effect<A, NatsError>): Effect.Effect<A, NatsError> =>
        Effect.catchIf(
          effect,
          (error) => error.reason._tag === "Rejected" && error.reason.code === OVERLAP_CODE,
          (error) =>
            Effect.flatMap(overlappingStreams(config), (existing) =>
              Effect.fail(natsError(operation, subjectsOverlap(config, existing, error.reason.cause)))
            )
        )

    const addStream = (config: StreamConfig) =>
      Effect.tryPromise({
        try: () => manager.streams.add(toStreamConfig(config)),
        catch: fromCause("addStream", { stream: config.name })
      }).pipe(namingOverlaps("addStream", config), Effect.map(fromStreamInfo))

    const updateStream = (config: StreamConfig) =>
      Effect.tryPromise({
        try: () => manager.streams.update(config.name, toStreamConfig(config)),
        catch: fromCause("updateStream", { stream: config.name })
      }).pipe(namingOverlaps("updateStream", config), Effect.map(fromStreamInfo))

    const deleteStream = (name: string) =>
      Effect.tryPromise({
        try: () => manager.streams.delete(name),
        catch: fromCause("deleteStream", { stream: name })
      }).pipe(falseWhen("StreamNotFound"))

    const listStreams = Effect.suspend(() =>
      Stream.fromAsyncIterable(manager.streams.list(), fromCause("listStreams")).pipe(
        Stream.map(fromStreamInfo),
        Stream.runCollect
      )
    )

    // A missing stream means the consumer is missing too.
    const consumerInfo = (stream: string, name: string) =>
      Effect.tryPromise({
        try: () => manager.consumers.info(stream, name),
        catch: fromCause("consumerInfo", { stream, consumer: name })
      }).pipe(Effect.map(fromConsumerInfo), noneWhen("ConsumerNotFound", "StreamNotFound"))

    const addConsumer = (config: ConsumerConfig) =>
      Effect.tryPromise({
        try: () => manager.consumers.add(config.stream, toConsumerConfig(config, "add")),
        catch: fromCause("addConsumer", { stream: config.stream, consumer: config.name })
      }).pipe(Effect.map(fromConsumerInfo))

    // The whole configuration goes to the server, deliver policy included, so that a change it cannot
    // make is refused rather than dropped.
    const updateConsumer = (config: ConsumerConfig) =>
      Effect.tryPromise({
        try: () => manager.consumers.update(config.stream, config.name, toConsumerConfig(config, "update")),
        catch: fromCause("updateConsumer", { stream: config.stream, consumer: config.name })
      }).pipe(Effect.map(fromConsumerInfo))

    // The server lists consumers by name; sorted here all the same, so that the order is the seam's.
    const listConsumers = (stream: string) =>
      Effect.try({
        try: () => manager.consumers.list(stream),
        catch: fromCause("listConsumers", { stream })
      }).pipe(
        Effect.flatMap((lister) =>
          Stream.fromAsyncIterable(lister, fromCause("listConsumers", { stream })).pipe(
            Stream.map(fromConsumerInfo),
            Stream.runCollect
          )
        ),
        Effect.map((infos) => infos.sort((a, b) => (a.config.name < b.config.name ? -1 : 1)))
      )

    // The server reads a sequence of 0 or 1 as "purge everything", and one past the end as "start the
    // sequences again from here": the cut is kept within the stream, and nothing is asked when it would
    // remove nothing.
    const purgeStream = (stream: string, options: PurgeOptions) => {
      const purge = (seq?: number) =>
        Effect.tryPromise({
          try: () => manager.streams.purge(stream, seq === undefined ? undefined : { seq }),
          catch: fromCause("purgeStream", { stream })
        }).pipe(Effect.map((response) => response.purged))
      const { before } = options
      if (before === undefined) return purge()
      return Effect.tryPromise({
        try: () => manager.streams.info(stream),
        catch: fromCause("purgeStream", { stream })
      }).pipe(
        Effect.flatMap(({ state }) => {
          const seq = Math.min(before, state.last_seq + 1)
          return state.messages === 0 || seq <= state.first_seq ? Effect.succeed(0) : purge(seq)
        })
      )
    }

    const deleteConsumer = (stream: string, name: string) =>
      Effect.tryPromise({
        try: () => manager.consumers.delete(stream, name),
        catch: fromCause("deleteConsumer", { stream, consumer: name })
      }).pipe(falseWhen("ConsumerNotFound", "StreamNotFound"))

    // nats.js answers a sequence with no message (code 10037) with `null`.
    const getMessage = (stream: string, seq: number) =>
      Effect.tryPromise({
        try: () => manager.streams.getMessage(stream, { seq }),
        catch: fromCause("getMessage", { stream })
      }).pipe(
        Effect.map((stored) =>
          stored === null
            ? Option.none()
            : Option.some<StoredMessage>({
                stream,
                subject: stored.subject,
                seq: stored.seq,
                payload: stored.data,
                headers: headerPairs(stored.header),
                timestampMillis: stored.time.getTime()
              })
        )
      )

    const consume = (stream: string, consumer: string, options: ConsumeOptions) =>
      consumeMessages(client, stream, consumer, options)

    // `host:port` as nats.js gives it, parsed again only when the connection moved to another server.
    let hostPort = ""
    let address: ServerAddress | undefined
    const server = () => {
      const current = client.connection.getServer()
      if (current !== hostPort) {
        hostPort = current
        const colon = current.lastIndexOf(":")
        const port = Number(current.slice(colon + 1))
        address =
          colon > 0 && Number.isInteger(port)
            ? { address: current.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port }
            : undefined
      }
      return address
    }

    return Broker.of({
      system: "nats",
      server,
      publish: publisher.publish,
      streamInfo,
      addStream,
      updateStream,
      deleteStream,
      listStreams,
      streamFor: streams.streamFor,
      consumerInfo,
      addConsumer,
      updateConsumer,
      listConsumers,
      deleteConsumer,
      purgeStream,
      getMessage,
      consume,
      supportsTermReason: client.supportsTermReason
    })
  }
)

/**
 * The NATS `Broker` over a `NatsClient` provided from elsewhere (a connection shared with other code,
 * or one built with `NatsClient.fromConnection`). The broker does not own the connection.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerFromClient: Layer.Layer<Broker, never, NatsClient.NatsClient> = Layer.effect(Broker, make)

/**
 * The connection and the broker over it: `NatsClient.layer(options)` with the NATS `Broker` on top,
 * both provided. Connected when the layer is built; drained and closed when it is released.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: NatsClient.Options = {}): Layer.Layer<Broker | NatsClient.NatsClient, NatsError> =>
  layerFromClient.pipe(Layer.provideMerge(NatsClient.layer(options)))

/**
 * The connection configured from the environment (`NATS_SERVERS`, `NATS_USER`, ...; see
 * `NatsClient.layerConfig`) and the broker over it, both provided. `overrides` win over the
 * environment where they are set.
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  overrides: NatsClient.Options = {}
): Layer.Layer<Broker | NatsClient.NatsClient, NatsError | Config.ConfigError> =>
  layerFromClient.pipe(Layer.provideMerge(NatsClient.layerConfig(overrides)))

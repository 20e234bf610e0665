/**
 * The `Broker` over NATS JetStream: publishing through `internal/natsPublish` (acknowledgements matched
 * on an inbox of our own) and the administration of streams and durable pull consumers through the
 * JetStream manager of a `NatsClient`.
 *
 * It translates and nothing more: configurations go through `internal/natsConfig`, failures through
 * `internal/natsErrors`. Retrying a publish is the `Publisher`'s job (on an Effect `Schedule`);
 * consumers never get a `backoff`, because nats-server 2.9 mistimes `nak(delay)` when one is set.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Option, type Scope, Stream } from "effect"
import {
  Broker,
  type ConsumeOptions,
  type ConsumerConfig,
  type PublishRequest,
  type StoredMessage,
  type StreamConfig
} from "./Broker.js"
import { fromConsumerInfo, fromStreamInfo, toConsumerConfig, toStreamConfig } from "./internal/natsConfig.js"
import { consume as consumeMessages } from "./internal/natsConsume.js"
import { fromCause } from "./internal/natsErrors.js"
import { JetStreamPublisher } from "./internal/natsPublish.js"
import { headerPairs } from "./internal/natsPull.js"
import { NatsClient } from "./NatsClient.js"
import { type NatsError, NoResponders, make as natsError } from "./NatsError.js"

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

/**
 * Builds the NATS `Broker` from the `NatsClient` in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: Effect.Effect<Broker["Service"], never, NatsClient | Scope.Scope> = Effect.gen(function* () {
  const client = yield* NatsClient
  const { manager } = client

  // Publishes and their acknowledgements go through our own inbox: no Promise or Error per publish.
  // Its subscription ends with the broker, also on a connection the broker does not own.
  const publisher = yield* Effect.acquireRelease(
    Effect.sync(() => new JetStreamPublisher(client.connection, (subject, error) => confirmNoStream(subject)(error))),
    (publisher) => Effect.sync(() => publisher.close())
  )
  const publish = (request: PublishRequest) => publisher.publish(request)

  // Nobody answered the publish: either no stream covers the subject, or JetStream is not ready yet
  // (right after a server restart it answers nothing for a moment). Only the JetStream API can tell;
  // when it does not answer either, the failure is transient and the publisher retries it.
  const confirmNoStream =
    (subject: string) =>
    (error: NatsError): Effect.Effect<never, NatsError> =>
      Effect.tryPromise({ try: () => manager.streams.find(subject), catch: fromCause("publish", { subject }) }).pipe(
        Effect.timeout("2 seconds"),
        Effect.matchEffect({
          onSuccess: (stream) =>
            Effect.fail(
              natsError(
                "publish",
                new NoResponders({ message: `stream ${stream} did not answer a publish to ${subject}` })
              )
            ),
          onFailure: (lookup) =>
            Effect.fail(
              lookup._tag === "NatsError" && lookup.reason._tag === "StreamNotFound"
                ? error
                : natsError(
                    "publish",
                    new NoResponders({ message: `JetStream did not answer a publish to ${subject}` })
                  )
            )
        })
      )

  const streamInfo = (name: string) =>
    Effect.tryPromise({
      try: () => manager.streams.info(name),
      catch: fromCause("streamInfo", { stream: name })
    }).pipe(Effect.map(fromStreamInfo), noneWhen("StreamNotFound"))

  const addStream = (config: StreamConfig) =>
    Effect.tryPromise({
      try: () => manager.streams.add(toStreamConfig(config)),
      catch: fromCause("addStream", { stream: config.name })
    }).pipe(Effect.map(fromStreamInfo))

  const updateStream = (config: StreamConfig) =>
    Effect.tryPromise({
      try: () => manager.streams.update(config.name, toStreamConfig(config)),
      catch: fromCause("updateStream", { stream: config.name })
    }).pipe(Effect.map(fromStreamInfo))

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

  return Broker.of({
    system: "nats",
    publish,
    streamInfo,
    addStream,
    updateStream,
    deleteStream,
    listStreams,
    consumerInfo,
    addConsumer,
    updateConsumer,
    deleteConsumer,
    getMessage,
    consume,
    supportsTermReason: client.supportsTermReason
  })
})

/**
 * The NATS `Broker`, over the `NatsClient` in context.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer: Layer.Layer<Broker, never, NatsClient> = Layer.effect(Broker, make)

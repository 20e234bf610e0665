/**
 * The `Broker` in process, with the semantics of NATS JetStream (nats-server 2.9): for unit tests of
 * handlers without a NATS server, and for the embedded demo. `Publisher`, `Subscriber`, `Policy`,
 * `DeadLetter` and `Topology` run on it unchanged.
 *
 * What it does as the server does, and reports in the same shapes as `NatsBroker`:
 * - streams on subjects with `*` and `>`, subjects shared with another stream refused; limits retention
 *   (max messages, bytes, age, messages per subject, message size; discard old or new); the duplicate
 *   window on `Nats-Msg-Id`; `expectedLastSequence`; the 1 MiB max payload; the update rules (storage
 *   and retention cannot change); purges by sequence, which move the consumers past what they removed;
 * - durable pull consumers with a filter, the deliver policies, explicit acks, `nak` with and without a
 *   delay, `term`, `working`, ack-wait expiry, `maxDeliver` with the max-deliveries advisory published to
 *   whichever stream captures `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>`,
 *   `maxAckPending`, and the counts and sequences of `consumerInfo`; the deliver policy cannot change;
 * - `consume` with the slot rule of `Broker.Message`, surviving its consumer being deleted and created.
 *
 * Time is the `Clock` of the context the broker is built in: under `TestClock`, `TestClock.adjust`
 * drives nak delays, ack-wait expiry, max age and the duplicate window. Every build of the layer is a
 * new, empty broker; nothing outlives its process.
 *
 * Not here: interest and work-queue retention (refused with `Rejected`), clustering (more than one
 * replica is refused, as by a single server), server restarts. Term reasons are accepted and kept only
 * in the terminated advisory.
 *
 * @since 0.1.0
 */
import { Clock, DateTime, Effect, Layer, Option } from "effect"
import {
  Broker,
  type ConsumeOptions,
  type ConsumerConfig,
  type ConsumerInfo,
  type PublishAck,
  type PublishRequest,
  type PurgeOptions,
  type StoredMessage,
  type StreamConfig,
  type StreamInfo
} from "./Broker.js"
import { consumerNotFound, streamNotFound } from "./internal/brokerErrors.js"
import {
  checkConsumer,
  checkConsumerUpdate,
  checkStream,
  checkStreamUpdate,
  MAX_PAYLOAD,
  resolveConsumer,
  resolveStream,
  sameConsumer,
  sameStream
} from "./internal/memory/config.js"
import { consume as consumeMessages, Pullers } from "./internal/memory/consume.js"
import { type Advise, MemoryConsumer } from "./internal/memory/consumer.js"
import { MemoryStream, type StoreRequest, storedHeaders } from "./internal/memory/stream.js"
import { isValid } from "./internal/subjects.js"
import * as NatsError from "./NatsError.js"

const encoder = new TextEncoder()

const fail = (operation: string, reason: NatsError.NatsErrorReason) => Effect.fail(NatsError.make(operation, reason))

/**
 * Builds a new, empty in-memory broker on the `Clock` in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: Effect.Effect<Broker["Service"]> = Effect.gen(function* () {
  const clock = yield* Clock.Clock
  const now = () => clock.currentTimeMillisUnsafe()
  const streams = new Map<string, MemoryStream<MemoryConsumer>>()
  const pullers = new Pullers(clock, (stream, consumer) => streams.get(stream)?.consumers.get(consumer))

  const streamFor = (subject: string): MemoryStream<MemoryConsumer> | undefined => {
    for (const stream of streams.values()) if (stream.captures(subject)) return stream
    return undefined
  }

  const store = (stream: MemoryStream<MemoryConsumer>, request: StoreRequest) => {
    const outcome = stream.store(request, now())
    if (outcome._tag === "Stored") {
      for (const consumer of stream.consumers.values()) {
        if (consumer.matches(request.subject)) pullers.signal(consumer.key)
      }
    }
    return outcome
  }

  // Advisories are core messages: kept only when a stream captures their subject.
  const advise: Advise = (subject, type, fields) => {
    const stream = streamFor(subject)
    if (stream === undefined) return
    const timestamp = DateTime.formatIso(DateTime.makeUnsafe(now()))
    const payload = encoder.encode(JSON.stringify({ type, id: crypto.randomUUID(), timestamp, ...fields }))
    store(stream, {
      subject,
      payload,
      headers: [],
      headerBytes: 0,
      messageId: undefined,
      expectedLastSequence: undefined
    })
  }

  const consumerAction = (stream: string, consumer: string, action: "create" | "delete") =>
    advise(
      `$JS.EVENT.ADVISORY.CONSUMER.${action === "create" ? "CREATED" : "DELETED"}.${stream}.${consumer}`,
      "io.nats.jetstream.advisory.v1.consumer_action",
      { stream, consumer, action }
    )

  const publish = (request: PublishRequest) =>
    Effect.suspend((): Effect.Effect<PublishAck, NatsError.NatsError> => {
      const { subject } = request
      if (!isValid(subject, { wildcards: false })) {
        return fail("publish", new NatsError.Rejected({ message: `invalid subject ${JSON.stringify(subject)}` }))
      }
      const headers = storedHeaders(request.headers, request.messageId, request.expectedLastSequence)
      if (typeof headers === "string") return fail("publish", new NatsError.Rejected({ message: headers }))
      if (headers.bytes + request.payload.byteLength > MAX_PAYLOAD) {
        return fail("publish", new NatsError.Rejected({ message: "'payload' max_payload size exceeded" }))
      }
      const stream = streamFor(subject)
      if (stream === undefined) {
        return fail("publish", new NatsError.StreamNotFound({ message: `no stream for subject ${subject}`, subject }))
      }
      const outcome = store(stream, {
        subject,
        payload: request.payload,
        headers: headers.headers,
        headerBytes: headers.bytes,
        messageId: request.messageId,
        expectedLastSequence: request.expectedLastSequence
      })
      const name = stream.config.name
      switch (outcome._tag) {
        case "Stored":
          return Effect.succeed({ stream: name, seq: outcome.record.seq, duplicate: false })
        case "Duplicate":
          return Effect.succeed({ stream: name, seq: outcome.seq, duplicate: true })
        case "WrongLastSequence":
          return fail(
            "publish",
            new NatsError.WrongLastSequence({
              message: `wrong last sequence: ${outcome.lastSeq}`,
              lastSequence: outcome.lastSeq
            })
          )
        case "Refused":
          return fail("publish", new NatsError.Rejected({ message: outcome.message, code: outcome.code }))
      }
    })

  // One process, no cluster.
  const streamInfoOf = (stream: MemoryStream<MemoryConsumer>): StreamInfo => ({
    config: stream.config,
    state: stream.state(now()),
    cluster: undefined
  })

  const consumerInfoOf = (consumer: MemoryConsumer): ConsumerInfo => {
    consumer.stream.expire(now())
    return {
      config: consumer.config,
      state: { ...consumer.state(), numWaiting: pullers.waiting(consumer.key) },
      cluster: undefined
    }
  }

  const othersThan = (name: string) =>
    [...streams.values()].filter((stream) => stream.config.name !== name).map((stream) => stream.config)

  const addStream = (input: StreamConfig) =>
    Effect.suspend((): Effect.Effect<StreamInfo, NatsError.NatsError> => {
      const config = resolveStream(input)
      const existing = streams.get(config.name)
      if (existing !== undefined) {
        return sameStream(existing.config, config)
          ? Effect.succeed(streamInfoOf(existing))
          : fail(
              "addStream",
              new NatsError.Rejected({
                message: "stream name already in use with a different configuration",
                code: 10058
              })
            )
      }
      const refused = checkStream(config, othersThan(config.name))
      if (refused !== undefined) return fail("addStream", refused)
      const stream = new MemoryStream<MemoryConsumer>(config)
      streams.set(config.name, stream)
      return Effect.succeed(streamInfoOf(stream))
    })

  const updateStream = (input: StreamConfig) =>
    Effect.suspend((): Effect.Effect<StreamInfo, NatsError.NatsError> => {
      const stream = streams.get(input.name)
      if (stream === undefined) return fail("updateStream", streamNotFound(input.name))
      const config = resolveStream(input)
      const refused = checkStreamUpdate(stream.config, config) ?? checkStream(config, othersThan(config.name))
      if (refused !== undefined) return fail("updateStream", refused)
      stream.expire(now())
      stream.configure(config)
      for (const consumer of stream.consumers.values()) pullers.signal(consumer.key)
      return Effect.succeed(streamInfoOf(stream))
    })

  const deleteStream = (name: string) => Effect.sync(() => streams.delete(name))

  const listStreams = Effect.sync(() =>
    [...streams.values()].sort((a, b) => (a.config.name < b.config.name ? -1 : 1)).map(streamInfoOf)
  )

  const streamNameFor = (subject: string) =>
    Effect.sync(() => Option.map(Option.fromUndefinedOr(streamFor(subject)), (stream) => stream.config.name))

  const streamInfo = (name: string) =>
    Effect.sync(() => Option.map(Option.fromUndefinedOr(streams.get(name)), streamInfoOf))

  const consumerInfo = (stream: string, name: string) =>
    Effect.sync(() => Option.map(Option.fromUndefinedOr(streams.get(stream)?.consumers.get(name)), consumerInfoOf))

  // On 2.9 adding an existing durable with another configuration updates it, by the update rules.
  const addConsumer = (input: ConsumerConfig) =>
    Effect.suspend((): Effect.Effect<ConsumerInfo, NatsError.NatsError> => {
      const stream = streams.get(input.stream)
      if (stream === undefined) return fail("addConsumer", streamNotFound(input.stream))
      const config = resolveConsumer(input)
      const existing = stream.consumers.get(config.name)
      if (existing !== undefined && sameConsumer(existing.config, config)) {
        return Effect.succeed(consumerInfoOf(existing))
      }
      const refused =
        checkConsumer(config, stream.config) ??
        (existing === undefined ? undefined : checkConsumerUpdate(existing.config, config))
      if (refused !== undefined) return fail("addConsumer", refused)
      stream.expire(now())
      const consumer = existing ?? new MemoryConsumer(stream, config, advise)
      if (existing === undefined) {
        stream.consumers.set(config.name, consumer)
        consumerAction(config.stream, config.name, "create")
      } else existing.configure(config)
      pullers.signal(consumer.key)
      return Effect.succeed(consumerInfoOf(consumer))
    })

  const updateConsumer = (input: ConsumerConfig) =>
    Effect.suspend((): Effect.Effect<ConsumerInfo, NatsError.NatsError> => {
      const stream = streams.get(input.stream)
      if (stream === undefined) return fail("updateConsumer", streamNotFound(input.stream))
      const existing = stream.consumers.get(input.name)
      if (existing === undefined) return fail("updateConsumer", consumerNotFound(input.stream, input.name))
      const config = resolveConsumer(input)
      const refused = checkConsumer(config, stream.config) ?? checkConsumerUpdate(existing.config, config)
      if (refused !== undefined) return fail("updateConsumer", refused)
      stream.expire(now())
      existing.configure(config)
      pullers.signal(existing.key)
      return Effect.succeed(consumerInfoOf(existing))
    })

  const listConsumers = (name: string) =>
    Effect.suspend((): Effect.Effect<ReadonlyArray<ConsumerInfo>, NatsError.NatsError> => {
      const stream = streams.get(name)
      if (stream === undefined) return fail("listConsumers", streamNotFound(name))
      return Effect.succeed(
        [...stream.consumers.values()].sort((a, b) => (a.config.name < b.config.name ? -1 : 1)).map(consumerInfoOf)
      )
    })

  const purgeStream = (name: string, options: PurgeOptions) =>
    Effect.suspend((): Effect.Effect<number, NatsError.NatsError> => {
      const stream = streams.get(name)
      if (stream === undefined) return fail("purgeStream", streamNotFound(name))
      stream.expire(now())
      const removed = stream.purge(options.before)
      // Removed deliveries count as acknowledged: there may be room under maxAckPending again.
      for (const consumer of stream.consumers.values()) pullers.signal(consumer.key)
      return Effect.succeed(removed)
    })

  const deleteConsumer = (stream: string, name: string) =>
    Effect.sync(() => {
      const deleted = streams.get(stream)?.consumers.delete(name) ?? false
      if (deleted) consumerAction(stream, name, "delete")
      return deleted
    })

  const getMessage = (name: string, seq: number) =>
    Effect.suspend((): Effect.Effect<Option.Option<StoredMessage>, NatsError.NatsError> => {
      const stream = streams.get(name)
      if (stream === undefined) return fail("getMessage", streamNotFound(name))
      stream.expire(now())
      const record = stream.get(seq)
      if (record === undefined) return Effect.succeedNone
      const { subject, payload, headers, timestampMillis } = record
      return Effect.succeedSome({ stream: name, subject, seq, payload, headers, timestampMillis })
    })

  const missing = (stream: string, consumer: string): NatsError.NatsErrorReason | undefined => {
    const found = streams.get(stream)
    if (found === undefined) return streamNotFound(stream)
    return found.consumers.has(consumer) ? undefined : consumerNotFound(stream, consumer)
  }

  const consume = (stream: string, consumer: string, options: ConsumeOptions) =>
    consumeMessages(pullers, stream, consumer, options, missing)

  return Broker.of({
    system: "memory",
    server: () => undefined,
    publish,
    streamInfo,
    addStream,
    updateStream,
    deleteStream,
    listStreams,
    streamFor: streamNameFor,
    consumerInfo,
    addConsumer,
    updateConsumer,
    listConsumers,
    deleteConsumer,
    purgeStream,
    getMessage,
    consume,
    supportsTermReason: Effect.succeed(true)
  })
})

/**
 * A new, empty in-memory `Broker` per build, on the `Clock` in context.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer: Layer.Layer<Broker> = Layer.effect(Broker, make)
